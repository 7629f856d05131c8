/// @file cuda_fp16.hpp
/// @brief Half precision (`__half`) for kernels and host code: NVIDIA's <cuda_fp16.h>
///        where the CUDA runtime is, the CPU emulator's own type elsewhere.
///
/// The emulator's `__half` is IEEE 754 binary16 (1 sign bit, 5 exponent bits, 10
/// mantissa bits): conversions from float round to the nearest value, ties to even,
/// with subnormals, infinities and NaN, as the GPU's `cvt.rn.f16.f32` does. What the
/// emulator provides, under CUDA's names: the type `__half` (and `half`), its
/// constructor from float and its conversion to float, `__float2half`,
/// `__float2half_rn`, `__half2float`, `__half_as_ushort`, `__ushort_as_half`.
/// Arithmetic on halves is not modelled: convert to float, compute, convert back.
#pragma once

#include "attn/cuda.hpp"

#if ATTN_CUDA_RUNTIME
#include <cuda_fp16.h>
#else

#include <bit>
#include <cstdint>

namespace attn::cuda::emu {

/// The binary16 value nearest to `f` (ties to even), as its 16 bits.
constexpr std::uint16_t float_to_half_bits(float f) {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u)  // infinity, or NaN (kept quiet, its payload dropped)
    return static_cast<std::uint16_t>(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (x >= 0x477ff000u)  // 65520 and up: past half of the last step above 65504, the largest half
    return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (x >= 0x38800000u) {  // 2^-14 and up: a normal half
    // Rebias the exponent from 127 to 15, then drop 13 mantissa bits, rounding to
    // nearest even; a carry out of the mantissa correctly bumps the exponent.
    std::uint32_t m = x - 0x38000000u;
    m += 0x0fffu + ((m >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | (m >> 13));
  }
  if (x < 0x33000000u) return sign;  // at most 2^-25, half of the smallest subnormal: rounds to 0
  // A subnormal half: the value in units of 2^-24, rounded to nearest even.
  const std::uint32_t exponent = x >> 23;                   // 102 ... 112
  const std::uint32_t mantissa = (x & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126 - exponent;               // 24 ... 14
  std::uint32_t units = mantissa >> shift;
  const std::uint32_t rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (units & 1u) != 0)) ++units;
  return static_cast<std::uint16_t>(sign | units);
}

/// The float equal to the binary16 value with these bits (exact: every half is a float).
constexpr float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign != 0 ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

}  // namespace attn::cuda::emu

/// A binary16 number, as CUDA's `__half`: converts from and to float implicitly.
struct __half {
  __half() = default;
  constexpr __half(float f) : bits_(attn::cuda::emu::float_to_half_bits(f)) {}
  constexpr __half(double d) : __half(static_cast<float>(d)) {}  // via float (CUDA rounds once)
  constexpr __half(int i) : __half(static_cast<float>(i)) {}
  constexpr operator float() const { return attn::cuda::emu::half_bits_to_float(bits_); }

 private:
  unsigned short bits_;
};
using half = __half;

constexpr __half __float2half(float f) { return __half(f); }
constexpr __half __float2half_rn(float f) { return __half(f); }
constexpr float __half2float(__half h) { return static_cast<float>(h); }
constexpr unsigned short __half_as_ushort(__half h) { return std::bit_cast<unsigned short>(h); }
constexpr __half __ushort_as_half(unsigned short bits) { return std::bit_cast<__half>(bits); }

#endif
