/// @file rope_check.hpp
/// @brief Lesson 06's tolerances: how far a float32 rotary embedding may be from a
///        float64 one, derived in the style of common/attn/check.hpp.
///
/// ## The rotation in float32
/// Each output of RoPE is \f$y_a = x_a c - x_b s\f$ (or \f$x_a s + x_b c\f$) with
/// \f$c = \cos(p\,\omega_i)\f$, \f$s = \sin(p\,\omega_i)\f$. An implementation that computes
/// the angle, cos and sin in float64 and rounds c and s to float32 makes three roundings
/// per term (c or s to float32, the product, the sum), so with \f$u = 2^{-24}\f$
/// \f[ |y_a - y_a^{exact}| \le \gamma_3 (|x_a c| + |x_b s|) \le \gamma_3 (|x_a| + |x_b|)
///     \le 2 \gamma_3 X, \f]
/// for \f$|x| \le X\f$. The float64 angle \f$p\,\omega_i\f$ is itself off by a few float64
/// roundings, at most \f$4 \cdot 2^{-53} (p + 1)\f$ radians for \f$\omega_i \le 1\f$, which
/// moves \f$c\f$ and \f$s\f$ by as much: a term \f$2 X \cdot 4 \cdot 2^{-53} (p + 1)\f$,
/// negligible below \f$p \approx 10^8\f$ but kept. If the inputs are themselves off by
/// at most \f$e\f$ each (a float32 projection), the rotation adds at most \f$2e\f$.
///
/// ## Why the angle must not be float32
/// Computed in float32, \f$p\,\omega_i\f$ is off by a relative \f$u\f$ at least, i.e.
/// \f$u\,p\,\omega_i\f$ radians: \f$6 \cdot 10^{-3}\f$ at \f$p = 10^5\f$, far above
/// \f$2\gamma_3\f$. The error grows with position times frequency. Lesson 06's tests
/// check positions up to \f$10^5\f$, so the angle has to be formed in float64.
///
/// ## Hugging Face's angles are float32
/// transformers' LlamaRotaryEmbedding forms the angles in float32 even for float64
/// inputs: the exponent \f$2i/D\f$ (one rounding: the power moves by a relative
/// \f$\ln\theta \cdot u\f$), \f$\theta^{-2i/D}\f$ by pow (within one ulp, \f$2u\f$) and a
/// reciprocal (\f$u\f$), the product with the position (\f$u\f$), then cos and sin in
/// float32 (one ulp, \f$\le 2u\f$ absolute). Its cos and sin are off by at most
/// \f[ (\ln\theta + 4)\, u\, p\, \omega_i + 2u, \f]
/// and its outputs by \f$(|x_a| + |x_b|)\f$ times that. The fixture script asserts that
/// transformers stays within this bound of an independent float64 rotation.
#pragma once

#include <cmath>
#include <cstddef>
#include <string>

#include "attn/check.hpp"

namespace attn {

/// float64 unit roundoff 2^-53.
inline constexpr double kDoubleRoundoff = 0x1p-53;

/// Bound on each element of float32 RoPE (angles in float64) at positions up to
/// `max_position`, for inputs with |x| <= x_max that are each within `input_err` of exact.
inline double rope_element_error(double x_max, std::size_t max_position, double input_err = 0.0) {
  const double angle_err = 4.0 * kDoubleRoundoff * (static_cast<double>(max_position) + 1.0);
  return 2.0 * x_max * (gamma_n(3) + angle_err) + 2.0 * input_err * (1.0 + gamma_n(3));
}

/// Tolerance of float32 RoPE against a float64 rotation of the same inputs (derivation above).
inline Tolerance tol_rope(double x_max, std::size_t max_position, double input_err = 0.0) {
  return {rope_element_error(x_max, max_position, input_err), 0.0,
          "float32 RoPE, float64 angles, positions <= " + std::to_string(max_position) +
              ": 2 X (gamma_3 + 4 2^-53 (p+1)) + 2 e_in"};
}

/// Tolerance of float32 RoPE against transformers' output, whose angles are float32:
/// ours plus 2 X ((ln theta + 4) u p + 2u).
inline Tolerance tol_rope_hf(double x_max, std::size_t max_position, double theta) {
  const double p = static_cast<double>(max_position);
  const double hf = 2.0 * x_max * ((std::log(theta) + 4.0) * kUnitRoundoff * p + 2.0 * kUnitRoundoff);
  return {rope_element_error(x_max, max_position) + hf, 0.0,
          "float32 RoPE vs transformers' float32 angles, positions <= " +
              std::to_string(max_position) + ": ours + 2 X ((ln theta + 4) u p + 2u)"};
}

/// Bound on |q . k - (q . k)_exact| (dot product accumulated in float64) when each of the D
/// elements of q is within e_q of exact and of k within e_k, with exact norms |q| and |k|:
/// |dq . k| + |q . dk| + |dq . dk| <= sqrt(D) (e_q |k| + e_k |q|) + D e_q e_k.
inline double rope_dot_error(std::size_t d, double e_q, double q_norm, double e_k, double k_norm) {
  const double dd = static_cast<double>(d);
  return std::sqrt(dd) * (e_q * k_norm + e_k * q_norm) + dd * e_q * e_k;
}

}  // namespace attn
