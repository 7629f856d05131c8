/// @file random.hpp
/// @brief Deterministic random tensors: the same seed gives the same numbers on
///        every compiler and platform (splitmix64, not `<random>`'s distributions,
///        whose outputs the C++ standard leaves to the library).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <xtensor/xtensor.hpp>

namespace attn {

/// splitmix64 (Steele, Lea and Flood 2014): a tiny generator with good statistics.
class Rng {
 public:
  /// Seeds the generator; the same seed gives the same sequence everywhere.
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  /// The next 64 random bits.
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [lo, hi), from the top 24 bits: exact in float32.
  float uniform(float lo, float hi) {
    const float unit = static_cast<float>(next() >> 40) * 0x1p-24f;
    return lo + (hi - lo) * unit;
  }

 private:
  std::uint64_t state_;
};

/// A tensor of the given shape, uniform in [lo, hi), fully determined by `seed`.
template <std::size_t N>
xt::xtensor<float, N> random_uniform(const std::array<std::size_t, N>& shape, std::uint64_t seed,
                                     float lo = -1.0f, float hi = 1.0f) {
  xt::xtensor<float, N> t(shape);
  Rng rng(seed);
  for (auto& x : t) x = rng.uniform(lo, hi);
  return t;
}

}  // namespace attn
