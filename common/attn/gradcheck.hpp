/// @file gradcheck.hpp
/// @brief Gradients checked against central finite differences of a float64 forward, and
///        the bound that such a check may use, derived once here (lesson 11's tests).
///
/// ## The check
/// A backward pass in float32 returns \f$g = \partial \mathcal L / \partial x\f$ for the loss
/// \f$\mathcal L(x) = \sum_e w_e\, y_e(x)\f$, where \f$y = f(x)\f$ is the forward and \f$w\f$ a
/// fixed random upstream gradient (dC, dP, dO). For a sampled coordinate \f$x_i\f$ of an
/// input, the float64 forward gives the central difference
/// \f[ \hat g_i = \frac{\sum_e w_e \big(y_e(x + h e_i) - y_e(x - h e_i)\big)}{2h}, \qquad h = 2^{-13}, \f]
/// and the test requires \f$|g_i - \hat g_i| \le E_{32} + E_{\text{trunc}} + E_{\text{round}}\f$:
///
/// 1. **Step.** The inputs are float32 numbers drawn by `Rng::uniform` in [-1, 1): multiples
///    of \f$2^{-23}\f$, so \f$x_i \pm h\f$ is exact in float64 and the divisor is exactly 2h.
/// 2. **Truncation of the float64 difference.** By Taylor's theorem,
///    \f$|\hat g_i - \mathcal L'(x_i)| \le h^2 M_3 / 6\f$, where \f$M_3\f$ bounds
///    \f$|\partial^3 \mathcal L / \partial x_i^3|\f$ on \f$[x_i - h, x_i + h]\f$. A product or
///    a rotation is linear in each input: \f$M_3 = 0\f$. For the softmax and for attention,
///    moving one input moves the scores of a row along a direction \f$a\f$ (\f$a_l\f$ the score's
///    slope), so an output \f$\mathbb E_p[X]\f$ (a row of O is \f$\mathbb E_p[v]\f$) has
///    derivatives that are the joint cumulants of \f$X\f$ and \f$a\f$ under \f$p\f$: the third
///    one is \f$\kappa(X, a, a, a) = \mathbb E[\tilde X \tilde a^3] - 3\,\mathbb E[\tilde X \tilde a]\,
///    \mathbb E[\tilde a^2]\f$ (tildes: centred). With \f$|X| \le V\f$ and \f$|a_l| \le A\f$ this is
///    at most \f$4VA^3 + 3VA^3 = 7 V A^3\f$. When only one key's score moves (a coordinate of k,
///    or one logit of a softmax), \f$\tilde a\f$ is small except at that key, and the bound is
///    \f$8 V A^3 p_j\f$: summed over the rows that see key j, \f$8 V A^3 C\f$ with C the
///    column mass \f$\max_j \sum_{\text{rows}} p_{rj}\f$. Each row's share is weighted by
///    \f$\sum_c |w_{rc}| \le W_1\f$ (the largest row sum of |dO|). So, along one coordinate of
///    q: \f$M_3 \le 7 W_1 V A_k^3\f$ with \f$A_k = \max|k| / \sqrt D\f$; of k:
///    \f$M_3 \le 8 W_1 V A_q^3 C e^{2hA_q}\f$ (the last factor: p moves by at most that much
///    within the step); of v: 0.
/// 3. **Rounding of the float64 forward.** If each \f$y_e\f$ is computed within
///    \f$\varepsilon_{64}\f$, the difference of the two sums is off by at most
///    \f$2\varepsilon_{64} \sum_e |w_e| + \gamma^{(64)}_n \sum_e |w_e (y^+_e - y^-_e)|\f$
///    (the second term, the float64 summation, is measured during the check), divided by 2h.
///    \f$\varepsilon_{64}\f$ is the attention bound of check.hpp with \f$u = 2^{-53}\f$.
/// 4. **The float32 backward** (\f$E_{32}\f$, `tol_attention_backward`), to first order in
///    \f$u = 2^{-24}\f$, with \f$\sigma = \max_{ij} \sum_c |q_{ic} k_{jc}| / \sqrt D\f$ (it bounds
///    |S|), \f$\pi = \max_{ij} \sum_c |dO_{ic} v_{jc}|\f$ (it bounds |dP|), \f$n_t\f$ key tiles
///    (1 for the naive backward):
///    - scores: \f$\Delta s = \gamma_{D+1} \sigma\f$ (check.hpp);
///    - probabilities, naive \f$e^{s - m} / \ell\f$ or recomputed \f$e^{s - L}\f$ from the
///      forward's online log-sum-exp: relative
///      \f$\varepsilon_P = 2\Delta s + (n_t + 1)(2\sigma + 2)u + \gamma_{T_k + n_t + 3} +
///      (3\sigma + 3\ln T_k + 1)u\f$ (the exponent's error: scores, the log-sum-exp's rescalings
///      by \f$e^{m - m'}\f$, the subtraction; then exp, sum, division);
///    - O and L of the flash forward: \f$|\Delta O| \le V \varepsilon_O\f$ with
///      \f$\varepsilon_O = \varepsilon_P + \gamma_{T_k + n_t}\f$, and
///      \f$|\Delta L| \le \varepsilon_P\f$;
///    - \f$dP = dO\,V^\top\f$: \f$\gamma_{D_v} \pi\f$; the row term
///      \f$\delta_i = \sum_j P_{ij} dP_{ij} = \sum_c dO_{ic} O_{ic}\f$: \f$\hat\pi(\varepsilon_O +
///      \gamma_{D_v} + \gamma_{T_k})\f$ with \f$\hat\pi = W_1 \max|v| \ge \pi\f$;
///    - \f$dS = P \circ (dP - \delta)\f$, scaled by \f$1/\sqrt D\f$: \f$|dS_{ij}| \le 2\hat\pi P_{ij}\f$
///      and its error is at most \f$P_{ij} \hat\pi \varepsilon_{dS}\f$ with
///      \f$\varepsilon_{dS} = 2\varepsilon_P + \varepsilon_O + 2\gamma_{D_v} + \gamma_{T_k} + 6u\f$;
///    - \f$dQ_i = \sum_j dS_{ij} K_j / \sqrt D\f$, where \f$\sum_j P_{ij} = 1\f$:
///      \f$|\Delta dQ| \le \max|k| \hat\pi (\varepsilon_{dS} + 2\gamma_{T_k + n_t + 1}) / \sqrt D\f$;
///    - \f$dK_j = \sum_r dS_{rj} Q_r / \sqrt D\f$ over the \f$n_r = (H/G)\,T_q\f$ rows of the
///      group, where \f$\sum_r P_{rj} \le C\f$:
///      \f$|\Delta dK| \le \max|q| \hat\pi C (\varepsilon_{dS} + 2\gamma_{2 n_r + 1}) / \sqrt D\f$;
///    - \f$dV_j = \sum_r P_{rj} dO_r\f$: \f$|\Delta dV| \le \max|dO|\, C (\varepsilon_P + \gamma_{2 n_r})\f$.
///
///    When q and k themselves carry an error of at most \f$\eta \max|q|\f$ and
///    \f$\eta \max|k|\f$ (RoPE rotated them in float32), \f$\Delta s\f$ grows by
///    \f$2\eta\sigma_{\max}\f$ (\f$\sigma_{\max} = \sqrt D \max|q| \max|k|\f$), dQ by
///    \f$2\eta \max|k| \hat\pi / \sqrt D\f$ and dK by \f$2\eta \max|q| \hat\pi C / \sqrt D\f$.
///
/// Worst-case bounds, like those of check.hpp: they are far above the errors seen in
/// practice, and far below what a wrong formula gives (a missing term of the softmax
/// backward or of a group sum changes a gradient by a sizeable fraction of itself).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "attn/check.hpp"
#include "attn/random.hpp"

namespace attn {

/// float64 unit roundoff u = 2^-53.
inline constexpr double kUnitRoundoff64 = 0x1p-53;

/// gamma_n for float64 (u = 2^-53).
constexpr double gamma64(std::size_t n) { return gamma_for(n, kUnitRoundoff64); }

/// The step h of the central differences: a power of two, so that x +- h is exact for the
/// tests' inputs (multiples of 2^-23 in [-1, 1)).
inline constexpr double kFdStep = 0x1p-13;

/// Up to `count` distinct flat indices in [0, size), in increasing order, fully determined by
/// `seed`: all of them when size <= count.
inline std::vector<std::size_t> sample_indices(std::size_t size, std::size_t count,
                                               std::uint64_t seed) {
  std::vector<std::size_t> all(size);
  for (std::size_t i = 0; i < size; ++i) all[i] = i;
  if (size <= count) return all;
  Rng rng(seed);
  for (std::size_t i = 0; i < count; ++i) {  // a partial Fisher-Yates shuffle
    const std::size_t j = i + static_cast<std::size_t>(rng.next() % (size - i));
    std::swap(all[i], all[j]);
  }
  all.resize(count);
  std::sort(all.begin(), all.end());
  return all;
}

/// A central difference and the bound of its float64 rounding (item 3 above).
struct Difference {
  double value = 0.0;     ///< sum_e w_e (y_e(x + h e_i) - y_e(x - h e_i)) / 2h
  double rounding = 0.0;  ///< (2 eps64 sum|w| + gamma64_n sum|w (y+ - y-)|) / 2h
};

/// The central difference of L(x) = sum_e w_e y_e(x) along flat coordinate `flat` of x.
/// @param forward  callable: const xt::xtensor<double, N>& -> a float64 tensor y
/// @param x        the point, in float64 (a copy: perturbed here)
/// @param flat     the coordinate
/// @param w        the upstream gradient, the shape of y
/// @param y_error  eps64, a bound on the float64 rounding of each y_e
/// @param step     h
template <class F, std::size_t N, class W>
Difference central_difference(F&& forward, xt::xtensor<double, N> x, std::size_t flat, const W& w,
                              double y_error, double step = kFdStep) {
  const double x0 = x.flat(flat);
  x.flat(flat) = x0 + step;
  const auto y_plus = forward(x);
  x.flat(flat) = x0 - step;
  const auto y_minus = forward(x);
  double sum = 0.0, magnitude = 0.0, w_sum = 0.0;
  for (std::size_t e = 0; e < y_plus.size(); ++e) {
    const double term = static_cast<double>(w.flat(e)) * (y_plus.flat(e) - y_minus.flat(e));
    sum += term;
    magnitude += std::abs(term);
    w_sum += std::abs(static_cast<double>(w.flat(e)));
  }
  const double width = (x0 + step) - (x0 - step);  // exactly 2h for the tests' inputs
  return {sum / width,
          (2.0 * y_error * w_sum + gamma64(2 * y_plus.size()) * magnitude) / width};
}

/// Truncation of a central difference with step h, from a bound m3 on |L'''| (item 2).
inline double fd_truncation(double m3, double step = kFdStep) { return step * step * m3 / 6.0; }

/// The magnitudes that the bounds of an attention's gradients depend on, measured in float64
/// from the inputs. Query head h reads KV head h / (H/G).
struct AttentionScales {
  std::size_t d = 0;         ///< D, the head dimension of q and k
  std::size_t dv = 0;        ///< the head dimension of v
  std::size_t tq = 0;        ///< Tq, the query rows
  std::size_t tk = 0;        ///< Tk, the keys
  std::size_t group = 1;     ///< H / G, the query heads that read one KV head
  double q_max = 0.0;        ///< max |q|
  double k_max = 0.0;        ///< max |k|
  double v_max = 0.0;        ///< max |v|
  double dout_max = 0.0;     ///< max |dO|
  double dout_row_l1 = 0.0;  ///< W_1 = max over rows of sum_c |dO_ic|
  double score_abs = 0.0;    ///< sigma = max_ij sum_c |q_ic k_jc| / sqrt(D)
  double column_mass = 0.0;  ///< C = max over keys of sum_{rows of the group} p_rj
};

/// Measures AttentionScales of q (B,H,Tq,D), k (B,G,Tk,D), v (B,G,Tk,Dv), dout (B,H,Tq,Dv).
template <class Q, class K, class V, class O>
AttentionScales measure_attention(const Q& q, const K& k, const V& v, const O& dout, bool causal,
                                  std::size_t q_offset) {
  AttentionScales s;
  const std::size_t nb = q.shape(0), nh = q.shape(1), ng = k.shape(1);
  s.tq = q.shape(2);
  s.d = q.shape(3);
  s.tk = k.shape(2);
  s.dv = v.shape(3);
  s.group = nh / ng;
  auto max_abs_of = [](const auto& t) {
    double m = 0.0;
    for (auto x : t) m = std::max(m, std::abs(static_cast<double>(x)));
    return m;
  };
  s.q_max = max_abs_of(q);
  s.k_max = max_abs_of(k);
  s.v_max = max_abs_of(v);
  s.dout_max = max_abs_of(dout);
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.d));
  std::vector<double> p(s.tk), mass(s.tk);
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g) {
      std::fill(mass.begin(), mass.end(), 0.0);
      for (std::size_t h = g * s.group; h < (g + 1) * s.group; ++h)
        for (std::size_t i = 0; i < s.tq; ++i) {
          double row = 0.0;
          for (std::size_t c = 0; c < s.dv; ++c) row += std::abs(static_cast<double>(dout(b, h, i, c)));
          s.dout_row_l1 = std::max(s.dout_row_l1, row);
          const std::size_t visible = causal ? q_offset + i + 1 : s.tk;
          double m = -std::numeric_limits<double>::infinity(), total = 0.0;
          for (std::size_t j = 0; j < visible; ++j) {
            double dot = 0.0, dot_abs = 0.0;
            for (std::size_t c = 0; c < s.d; ++c) {
              const double t = static_cast<double>(q(b, h, i, c)) * static_cast<double>(k(b, g, j, c));
              dot += t;
              dot_abs += std::abs(t);
            }
            s.score_abs = std::max(s.score_abs, dot_abs * scale);
            p[j] = dot * scale;
            m = std::max(m, p[j]);
          }
          for (std::size_t j = 0; j < visible; ++j) total += (p[j] = std::exp(p[j] - m));
          for (std::size_t j = 0; j < visible; ++j) mass[j] += p[j] / total;
        }
      for (double c : mass) s.column_mass = std::max(s.column_mass, c);
    }
  return s;
}

/// The relative error eps_P of a recomputed probability (item 4), for `key_tiles` tiles of
/// keys (1: the naive softmax), with q and k off by at most eta times their maxima.
inline double probability_error(const AttentionScales& s, std::size_t key_tiles, double eta = 0.0) {
  constexpr double u = kUnitRoundoff;
  const double sigma = s.score_abs;
  const double sigma_max = std::sqrt(static_cast<double>(s.d)) * s.q_max * s.k_max;
  const double ds = gamma_n(s.d + 1) * sigma + 2.0 * eta * sigma_max;
  const double nt = static_cast<double>(key_tiles);
  return 2.0 * ds + (nt + 1.0) * (2.0 * sigma + 2.0) * u + gamma_n(s.tk + key_tiles + 3) +
         (3.0 * sigma + 3.0 * std::log(static_cast<double>(s.tk)) + 1.0) * u;
}

/// Bounds of the flash forward's O and L against the exact ones (item 4).
struct FlashForwardTolerance {
  Tolerance out;  ///< O (B, H, Tq, Dv)
  Tolerance lse;  ///< L (B, H, Tq)
};

/// The float32 errors of O and L of a tiled forward with `key_tiles` tiles of keys.
inline FlashForwardTolerance tol_flash_forward(const AttentionScales& s, std::size_t key_tiles) {
  const double ep = probability_error(s, key_tiles);
  const double eo = ep + gamma_n(s.tk + key_tiles);
  return {{s.v_max * eo, 0.0, "V eps_O, common/attn/gradcheck.hpp item 4"},
          {ep, 0.0, "eps_P, common/attn/gradcheck.hpp item 4"}};
}

/// Bounds of dQ, dK and dV.
struct AttentionGradTolerance {
  Tolerance dq;  ///< the bound of dQ
  Tolerance dk;  ///< the bound of dK
  Tolerance dv;  ///< the bound of dV
};

/// E_32 of item 4: the float32 errors of dQ, dK, dV of an attention backward with `key_tiles`
/// tiles of keys (1 for the naive backward), q and k off by at most eta times their maxima.
inline AttentionGradTolerance tol_attention_backward(const AttentionScales& s,
                                                     std::size_t key_tiles = 1,
                                                     double eta = 0.0) {
  constexpr double u = kUnitRoundoff;
  const double ep = probability_error(s, key_tiles, eta);
  const double eo = ep + gamma_n(s.tk + key_tiles);
  const double pi_hat = s.dout_row_l1 * s.v_max;
  const double eds = 2.0 * ep + eo + 2.0 * gamma_n(s.dv) + gamma_n(s.tk) + 6.0 * u;
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.d));
  const std::size_t rows = s.group * s.tq;
  const double c = s.column_mass;
  const std::string why = ", common/attn/gradcheck.hpp item 4";
  return {
      {scale * s.k_max * pi_hat * (eds + 2.0 * gamma_n(s.tk + key_tiles + 1) + 2.0 * eta), 0.0,
       "dQ: max|k| pi (eps_dS + 2 gamma_{Tk+nt+1}) / sqrt(D)" + why},
      {scale * s.q_max * pi_hat * c * (eds + 2.0 * gamma_n(2 * rows + 1) + 2.0 * eta), 0.0,
       "dK: max|q| pi C (eps_dS + 2 gamma_{2 n_r + 1}) / sqrt(D)" + why},
      {s.dout_max * c * (ep + gamma_n(2 * rows)), 0.0,
       "dV: max|dO| C (eps_P + gamma_{2 n_r})" + why}};
}

/// eps64: the float64 rounding of each output of the reference attention (check.hpp's
/// bound with u = 2^-53), q and k off by at most eta64 times their maxima.
inline double attention_error64(const AttentionScales& s, double eta64 = 0.0) {
  const double sigma = s.score_abs;
  const double sigma_max = std::sqrt(static_cast<double>(s.d)) * s.q_max * s.k_max;
  const double ds = gamma64(s.d + 1) * sigma + 2.0 * eta64 * sigma_max;
  return s.v_max * (2.0 * ds + 4.0 * sigma * kUnitRoundoff64 + 2.0 * gamma64(s.tk + 2));
}

/// M_3 of item 2 along one coordinate of q, of k and of v. `slope` multiplies the bounds
/// A_k = max|k| / sqrt(D) and A_q = max|q| / sqrt(D) of a score's slope: 1 when the coordinate
/// is q or k itself, 2 when it is an input of RoPE (a rotated channel mixes two: |cos| + |sin|).
struct ThirdDerivatives {
  double q = 0.0;  ///< along a coordinate of q
  double k = 0.0;  ///< along a coordinate of k
  double v = 0.0;  ///< along a coordinate of v
};

/// Bounds of |L'''| for L = sum dO o O along one coordinate of q, k or v (item 2).
inline ThirdDerivatives attention_third_derivatives(const AttentionScales& s, double slope = 1.0,
                                                    double step = kFdStep) {
  const double root = std::sqrt(static_cast<double>(s.d));
  const double ak = slope * s.k_max / root, aq = slope * (s.q_max + step) / root;
  return {7.0 * s.dout_row_l1 * s.v_max * ak * ak * ak,
          8.0 * s.dout_row_l1 * s.v_max * aq * aq * aq * s.column_mass * std::exp(2.0 * step * aq),
          0.0};
}

}  // namespace attn
