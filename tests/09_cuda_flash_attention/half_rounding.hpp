/// @file half_rounding.hpp
/// @brief Lesson 09's tests: float32 values rounded to binary16 independently of the
///        emulator's __half, and the bound of a sum on the tensor cores.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "attn/check.hpp"
#include "attn/core.hpp"

namespace attn::testing_fp16 {

/// x rounded to the nearest binary16 value, ties to even, computed independently of
/// the emulator's __half: a half has 11 significant bits, and steps of 2^-24 below 2^-14.
inline float round_to_half(float x) {
  if (x == 0.0f || !std::isfinite(x)) return x;
  int e = 0;
  std::frexp(x, &e);  // |x| in [2^(e-1), 2^e)
  const double step = std::ldexp(1.0, std::max(e - 1, -14) - 10);
  return static_cast<float>(std::nearbyint(static_cast<double>(x) / step) * step);  // ties to even
}

/// Every element of t rounded to half (a view given here is copied first).
inline Tensor4 rounded_to_half(const Tensor4& t) {
  Tensor4 r = t;
  std::transform(r.begin(), r.end(), r.begin(), round_to_half);
  return r;
}

/// A sum of n products of halves on the tensor cores, whose magnitudes add up to at most
/// `scale`. The products are exact in float32 (11 + 11 significant bits); the order and
/// rounding of the float32 additions are unspecified, and may round toward zero (Fasi,
/// Higham, Mikaitis and Pranesh, "Numerical behavior of NVIDIA tensor cores", 2021): an
/// error of up to 2u per addition, so gamma_2n instead of gamma_n.
inline Tolerance tol_tensor_core_sum(std::size_t n, double scale) {
  return {gamma_n(2 * n) * scale, 0.0, "tensor-core sum of " + std::to_string(n) + " terms: gamma_2n * scale"};
}

}  // namespace attn::testing_fp16
