/// @file reference.hpp
/// @brief Independent float64 references in plain loops, for the tests.
///
/// Written as directly as the math, with no xtensor expression and no code shared
/// with the lessons, so that a test compares two independent computations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "attn/core.hpp"

namespace attn::ref {

using Matrix = xt::xtensor<double, 2>;  ///< float64 (rows, cols)
using Array4 = xt::xtensor<double, 4>;  ///< float64 (B, H, T, D)

namespace detail {
/// C = A B in float64 for inputs of element type T (float or double); see ref::matmul.
template <class T>
Matrix matmul(const xt::xtensor<T, 2>& a, const xt::xtensor<T, 2>& b) {
  const std::size_t m = a.shape(0), kk = a.shape(1), n = b.shape(1);
  if (b.shape(0) != kk) throw std::invalid_argument("ref::matmul: inner dimensions differ");
  Matrix c({m, n});
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (std::size_t k = 0; k < kk; ++k) s += double(a(i, k)) * double(b(k, j));
      c(i, j) = s;
    }
  return c;
}

/// Row softmax in float64 for inputs of element type T; see ref::softmax_rows.
template <class T>
Matrix softmax_rows(const xt::xtensor<T, 2>& x) {
  Matrix y({x.shape(0), x.shape(1)});
  for (std::size_t i = 0; i < x.shape(0); ++i) {
    double m = -std::numeric_limits<double>::infinity(), s = 0.0;
    for (std::size_t j = 0; j < x.shape(1); ++j) m = std::max(m, double(x(i, j)));
    for (std::size_t j = 0; j < x.shape(1); ++j) s += std::exp(double(x(i, j)) - m);
    for (std::size_t j = 0; j < x.shape(1); ++j) y(i, j) = std::exp(double(x(i, j)) - m) / s;
  }
  return y;
}
}  // namespace detail

/// C = A B in float64: (M,K) x (K,N) -> (M,N).
inline Matrix matmul(const Tensor2& a, const Tensor2& b) { return detail::matmul(a, b); }
/// The same product of float64 matrices.
inline Matrix matmul(const Matrix& a, const Matrix& b) { return detail::matmul(a, b); }

/// Softmax of each row in float64, shifted by the row maximum.
inline Matrix softmax_rows(const Tensor2& x) { return detail::softmax_rows(x); }
/// The same softmax of float64 logits.
inline Matrix softmax_rows(const Matrix& x) { return detail::softmax_rows(x); }

namespace detail {
/// Attention in float64 for inputs of element type T (float or double); see ref::attention.
template <class T>
Array4 attention(const xt::xtensor<T, 4>& q, const xt::xtensor<T, 4>& k, const xt::xtensor<T, 4>& v,
                 bool causal, std::size_t q_offset, xt::xtensor<double, 3>* lse = nullptr) {
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t ng = k.shape(1), tk = k.shape(2), dv = v.shape(3);
  if (ng == 0 || nh % ng != 0 || k.shape(3) != d || v.shape(2) != tk || k.shape(0) != nb ||
      v.shape(0) != nb || v.shape(1) != ng || (causal && q_offset + tq > tk))
    throw std::invalid_argument("ref::attention: inconsistent shapes");
  const std::size_t group = nh / ng;
  const double scale = 1.0 / std::sqrt(double(d));
  Array4 out({nb, nh, tq, dv});
  if (lse) *lse = xt::xtensor<double, 3>::from_shape({nb, nh, tq});
  std::vector<double> w(tk);
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h) {
      const std::size_t g = h / group;
      for (std::size_t i = 0; i < tq; ++i) {
        const std::size_t visible = causal ? q_offset + i + 1 : tk;
        double m = -std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < visible; ++j) {
          double s = 0.0;
          for (std::size_t c = 0; c < d; ++c) s += double(q(b, h, i, c)) * double(k(b, g, j, c));
          w[j] = s * scale;
          m = std::max(m, w[j]);
        }
        double total = 0.0;
        for (std::size_t j = 0; j < visible; ++j) total += (w[j] = std::exp(w[j] - m));
        if (lse) (*lse)(b, h, i) = m + std::log(total);
        for (std::size_t c = 0; c < dv; ++c) {
          double o = 0.0;
          for (std::size_t j = 0; j < visible; ++j) o += w[j] * double(v(b, g, j, c));
          out(b, h, i, c) = o / total;
        }
      }
    }
  return out;
}
}  // namespace detail

/// Attention in float64. q (B,H,Tq,D), k (B,G,Tk,D), v (B,G,Tk,Dv) with G dividing H;
/// query head h reads key/value head h / (H/G). With `causal`, query row i sits at
/// position q_offset + i and sees keys j <= q_offset + i.
inline Array4 attention(const Tensor4& q, const Tensor4& k, const Tensor4& v, bool causal,
                        std::size_t q_offset) {
  return detail::attention(q, k, v, causal, q_offset);
}

/// The same attention on float64 inputs (finite differences perturb them by steps that
/// float32 cannot hold).
inline Array4 attention(const Array4& q, const Array4& k, const Array4& v, bool causal,
                        std::size_t q_offset) {
  return detail::attention(q, k, v, causal, q_offset);
}

/// The log-sum-exp of every row of scores, L(b, h, i) = log sum_j exp(q_i . k_j / sqrt(D))
/// over the keys row i may attend (the statistic FlashAttention's forward saves), in float64.
inline xt::xtensor<double, 3> attention_lse(const Tensor4& q, const Tensor4& k, bool causal,
                                            std::size_t q_offset) {
  xt::xtensor<double, 3> lse;
  const Tensor4 v = Tensor4::from_shape({k.shape(0), k.shape(1), k.shape(2), 0});
  detail::attention(q, k, v, causal, q_offset, &lse);
  return lse;
}

/// RoPE in float64: row t of x at position first_position + t, pair i turned by
/// p theta^(-2i/D); pairs (2i, 2i+1) if adjacent, else (i, i + D/2).
template <class T>
xt::xtensor<double, 4> rope(const xt::xtensor<T, 4>& x, std::size_t first_position, bool adjacent,
                            double theta = 10000.0) {
  const std::size_t nb = x.shape(0), nh = x.shape(1), nt = x.shape(2), d = x.shape(3);
  xt::xtensor<double, 4> y({nb, nh, nt, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t t = 0; t < nt; ++t)
        for (std::size_t i = 0; i < d / 2; ++i) {
          const double angle = static_cast<double>(first_position + t) *
                               std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
          const std::size_t a = adjacent ? 2 * i : i, c = adjacent ? 2 * i + 1 : i + d / 2;
          const double xa = static_cast<double>(x(b, h, t, a)), xb = static_cast<double>(x(b, h, t, c));
          y(b, h, t, a) = xa * std::cos(angle) - xb * std::sin(angle);
          y(b, h, t, c) = xa * std::sin(angle) + xb * std::cos(angle);
        }
  return y;
}

}  // namespace attn::ref
