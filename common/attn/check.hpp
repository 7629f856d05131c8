/// @file check.hpp
/// @brief Closeness of a float32 result to a float64 reference, with tolerances
///        derived from the precision, and a report of the worst element.
///
/// ## Where the tolerances come from
/// Every test compares a float32 result `got` with a float64 reference `ref`
/// computed by plain loops, element by element:
/// \f[ |got - ref| \le atol + rtol \cdot |ref| . \f]
/// The reference's own rounding error (about 1e-16) is negligible, so the bound
/// is the float32 rounding error of the computation under test. Let
/// \f$u = 2^{-24}\f$ be float32's unit roundoff (half of `FLT_EPSILON`). A sum or
/// dot product of n terms accumulated in float32, in any order, is off by at most
/// \f[ \gamma_n \sum_i |a_i b_i|, \qquad \gamma_n = \frac{n u}{1 - n u} \f]
/// (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1).
/// `tol_reduction(n, scale)` is that bound, with `scale` an upper bound on
/// \f$\sum_i |a_i b_i|\f$ that the test knows from its inputs.
///
/// Attention composes three such steps: the scores \f$s = q \cdot k / \sqrt D\f$
/// (a dot product of length D), the softmax over Tk keys, and the weighted sum of
/// Tk values. With \f$|q_i| \le Q\f$, \f$|k_i| \le K\f$ and \f$|v_i| \le V\f$:
/// a score is off by at most \f$\Delta s = \gamma_{D+1} D Q K / \sqrt D\f$; each
/// probability \f$p_j = e^{s_j - m} / \sum_l e^{s_l - m}\f$ is then off by a
/// relative \f$2\Delta s + \gamma_{T_k + 3}\f$ (the shift m cancels; exp, the sum
/// and the division add their roundings); the output \f$\sum_j p_j v_j\f$ adds
/// \f$\gamma_{T_k}\f$, relative to \f$\sum_j p_j |v_j| \le V\f$. So
/// \f[ |o - o_{ref}| \le V \left(2 \Delta s + \gamma_{T_k + 3} + \gamma_{T_k}\right), \f]
/// which `tol_attention` returns as atol. These are worst-case bounds: a test that
/// exceeds one has a real bug, not bad luck.
#pragma once

#include <cmath>
#include <cstddef>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

namespace attn {

/// float32 unit roundoff u = 2^-24.
inline constexpr double kUnitRoundoff = 0x1p-24;

/// Higham's gamma_n = n u / (1 - n u) for a unit roundoff u: the relative error bound of an
/// n-term reduction in a precision whose unit roundoff is u.
constexpr double gamma_for(std::size_t n, double u) {
  const double nu = static_cast<double>(n) * u;
  return nu / (1.0 - nu);
}

/// gamma_n of float32 (u = 2^-24).
constexpr double gamma_n(std::size_t n) { return gamma_for(n, kUnitRoundoff); }

/// An elementwise bound |got - ref| <= atol + rtol * |ref|, and the reason for it.
struct Tolerance {
  double atol = 0.0;  ///< absolute part of the bound
  double rtol = 0.0;  ///< part of the bound relative to |ref|
  std::string why;  ///< printed with a failure, so a reader sees where the bound came from
};

/// n-term float32 reduction whose terms have absolute values summing to at most `scale`.
inline Tolerance tol_reduction(std::size_t n, double scale) {
  return {gamma_n(n) * scale, 0.0,
          "float32 reduction of " + std::to_string(n) + " terms: gamma_n * scale"};
}

/// Attention over Tk keys of head dimension D with |q| <= q_max, |k| <= k_max,
/// |v| <= v_max elementwise (derivation at the top of this file).
inline Tolerance tol_attention(std::size_t d, std::size_t tk, double q_max, double k_max,
                               double v_max) {
  const double dd = static_cast<double>(d);
  const double score_err = gamma_n(d + 1) * dd * q_max * k_max / std::sqrt(dd);
  const double atol = v_max * (2.0 * score_err + gamma_n(tk + 3) + gamma_n(tk));
  return {atol, 0.0,
          "float32 attention, D=" + std::to_string(d) + ", Tk=" + std::to_string(tk) +
              ": V * (2 gamma_{D+1} sqrt(D) Q K + gamma_{Tk+3} + gamma_Tk)"};
}

/// The softmax of one row of n logits: each probability is off by a relative
/// gamma_{n+3} (exp, the n-term sum, the division); probabilities are <= 1.
inline Tolerance tol_softmax(std::size_t n) {
  return {gamma_n(n + 3), gamma_n(n + 3), "float32 softmax over " + std::to_string(n) + " logits"};
}

/// A stated requirement rather than a derived bound: |got - ref| <= factor * max|ref|.
template <class Ref>
Tolerance tol_relative_to_max(double factor, const Ref& ref) {
  double m = 0.0;
  for (auto x : ref) m = std::max(m, std::abs(static_cast<double>(x)));
  std::ostringstream why;
  why << factor << " * max|ref| (max|ref| = " << m << ")";
  return {factor * m, 0.0, why.str()};
}

/// Result of a comparison: ok, or a report naming the first mismatches and the worst.
struct CloseReport {
  bool ok = true;    ///< every element within tolerance, shapes equal
  std::string text;  ///< what went wrong, empty when ok
};

namespace detail {
template <class Shape>
std::string index_str(std::size_t flat, const Shape& shape) {
  std::vector<std::size_t> idx(shape.size());
  for (std::size_t i = shape.size(); i-- > 0;) {
    idx[i] = flat % shape[i];
    flat /= shape[i];
  }
  std::ostringstream out;
  out << '(';
  for (std::size_t i = 0; i < idx.size(); ++i) out << (i ? "," : "") << idx[i];
  out << ')';
  return out.str();
}
}  // namespace detail

/// Compares `got` with `ref` elementwise (both traversed in row-major order).
/// Reports a shape mismatch, NaN or infinity, and otherwise the first ten
/// elements outside the tolerance and the worst one, as llm.c's validate_result does.
/// `what`, when given, names the quantity compared ("l after tile 1", "the staged
/// queries (block, warp, column)") and heads the report, so that a failure says which
/// of a test's checks it is and what its indices mean.
template <class Got, class Ref>
CloseReport compare(const Got& got, const Ref& ref, const Tolerance& tol, const std::string& what = {}) {
  CloseReport report;
  std::ostringstream out;
  out << std::setprecision(9);
  if (!what.empty()) out << what << ":\n";
  const auto& gs = got.shape();
  const auto& rs = ref.shape();
  bool same_shape = gs.size() == rs.size();
  for (std::size_t i = 0; same_shape && i < gs.size(); ++i) same_shape = gs[i] == rs[i];
  if (!same_shape) {
    out << (what.empty() ? "" : "  ") << "shape mismatch: got (";
    for (std::size_t i = 0; i < gs.size(); ++i) out << (i ? ", " : "") << gs[i];
    out << "), expected (";
    for (std::size_t i = 0; i < rs.size(); ++i) out << (i ? ", " : "") << rs[i];
    out << ")";
    return {false, out.str()};
  }
  std::size_t bad = 0, n = 0, worst = 0;
  double worst_excess = -1.0;
  auto g = got.cbegin();
  for (auto r = ref.cbegin(); r != ref.cend(); ++r, ++g, ++n) {
    const double gv = static_cast<double>(*g), rv = static_cast<double>(*r);
    const double diff = std::abs(gv - rv), bound = tol.atol + tol.rtol * std::abs(rv);
    if (diff <= bound) continue;  // false for NaN, so NaN is always reported
    if (bad < 10) {
      out << "  at " << detail::index_str(n, gs) << ": got " << gv << ", expected " << rv
          << ", |diff| " << diff << " > tol " << bound << '\n';
    }
    ++bad;
    const double excess = std::isnan(diff) ? INFINITY : diff / (bound > 0 ? bound : 1e-300);
    if (excess > worst_excess) worst_excess = excess, worst = n;
  }
  if (bad == 0) return report;
  g = got.cbegin();
  auto r = ref.cbegin();
  std::advance(g, static_cast<std::ptrdiff_t>(worst));
  std::advance(r, static_cast<std::ptrdiff_t>(worst));
  out << "  " << bad << " of " << n << " elements outside tolerance; worst at "
      << detail::index_str(worst, gs) << ": got " << static_cast<double>(*g) << ", expected "
      << static_cast<double>(*r) << "\n  tolerance: atol " << tol.atol << ", rtol " << tol.rtol
      << " (" << tol.why << ")";
  return {false, out.str()};
}

}  // namespace attn
