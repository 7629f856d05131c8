// Lesson 06: rotary position embeddings. Fill in each body between TODO(06.k) and
// END TODO(06.k), in the order of the README.
#include "rope.hpp"

#include <cmath>
#include <string>
#include <utility>

namespace attn {

std::vector<double> rope_frequencies(std::size_t head_dim, double theta) {
  // TODO(06.1): check D (even, > 0) and theta (finite, > 0); omega_i = theta^(-2i/D) in double
  constexpr auto where = "rope_frequencies";
  require(head_dim > 0 && head_dim % 2 == 0, where,
          "RoPE rotates pairs of channels: the head dimension must be even and positive, given D = " +
              std::to_string(head_dim));
  require(std::isfinite(theta) && theta > 0.0, where,
          "the base theta must be a finite positive number, given " + std::to_string(theta));
  const std::size_t half = head_dim / 2;
  std::vector<double> omega(half);
  for (std::size_t i = 0; i < half; ++i)
    omega[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
  return omega;
  // END TODO(06.1)
}

Tensor4 apply_rope(const Tensor4& x, std::size_t first_position, RopePairing pairing,
                   double theta) {
  // TODO(06.2): for each row t at position first_position + t, rotate pair i by (first_position + t) * omega_i
  const std::size_t nb = x.shape(0), nh = x.shape(1), nt = x.shape(2), d = x.shape(3);
  const std::vector<double> omega = rope_frequencies(d, theta);  // checks D and theta
  const std::size_t half = d / 2;
  Tensor4 y(x.shape());
  std::vector<float> cos_t(half), sin_t(half);  // (D/2) for the current position
  for (std::size_t t = 0; t < nt; ++t) {
    // The angle in double: in float32, p * omega loses about p * 6e-8 radians.
    const double p = static_cast<double>(first_position + t);
    for (std::size_t i = 0; i < half; ++i) {
      cos_t[i] = static_cast<float>(std::cos(p * omega[i]));
      sin_t[i] = static_cast<float>(std::sin(p * omega[i]));
    }
    for (std::size_t b = 0; b < nb; ++b)
      for (std::size_t h = 0; h < nh; ++h)
        for (std::size_t i = 0; i < half; ++i) {
          const auto [ia, ib] = pairing == RopePairing::adjacent ? std::pair{2 * i, 2 * i + 1}
                                                                 : std::pair{i, i + half};
          const float xa = x(b, h, t, ia), xb = x(b, h, t, ib);
          y(b, h, t, ia) = xa * cos_t[i] - xb * sin_t[i];
          y(b, h, t, ib) = xa * sin_t[i] + xb * cos_t[i];
        }
  }
  return y;
  // END TODO(06.2)
}

Tensor2 half_split_to_adjacent(const Tensor2& w, std::size_t n_heads) {
  // TODO(06.3): check the heads; within each head, column 2i + s of the result is column s*D/2 + i of w
  constexpr auto where = "half_split_to_adjacent";
  const std::size_t width = w.shape(1);
  require(n_heads > 0 && width % n_heads == 0, where,
          "the columns must be a positive multiple of n_heads: given " + std::to_string(width) +
              " columns and " + std::to_string(n_heads) + " heads");
  const std::size_t d = width / n_heads, half = d / 2;
  require(d > 0 && d % 2 == 0, where,
          "RoPE rotates pairs of channels: the head dimension must be even and positive, given D = " +
              std::to_string(d));
  Tensor2 out(w.shape());
  for (std::size_t r = 0; r < w.shape(0); ++r)
    for (std::size_t h = 0; h < n_heads; ++h)
      for (std::size_t i = 0; i < half; ++i)
        for (std::size_t s = 0; s < 2; ++s) out(r, h * d + 2 * i + s) = w(r, h * d + s * half + i);
  return out;
  // END TODO(06.3)
}

Tensor2 adjacent_to_half_split(const Tensor2& w, std::size_t n_heads) {
  // TODO(06.4): check the heads; within each head, column s*D/2 + i of the result is column 2i + s of w
  constexpr auto where = "adjacent_to_half_split";
  const std::size_t width = w.shape(1);
  require(n_heads > 0 && width % n_heads == 0, where,
          "the columns must be a positive multiple of n_heads: given " + std::to_string(width) +
              " columns and " + std::to_string(n_heads) + " heads");
  const std::size_t d = width / n_heads, half = d / 2;
  require(d > 0 && d % 2 == 0, where,
          "RoPE rotates pairs of channels: the head dimension must be even and positive, given D = " +
              std::to_string(d));
  Tensor2 out(w.shape());
  for (std::size_t r = 0; r < w.shape(0); ++r)
    for (std::size_t h = 0; h < n_heads; ++h)
      for (std::size_t i = 0; i < half; ++i)
        for (std::size_t s = 0; s < 2; ++s) out(r, h * d + s * half + i) = w(r, h * d + 2 * i + s);
  return out;
  // END TODO(06.4)
}

PositionHook rope_position_hook(RopePairing pairing, double theta) {
  // TODO(06.5): return a callable that rotates q and k in place, row t to position first_position + t
  return [pairing, theta](Tensor4& q, Tensor4& k, std::size_t first_position) {
    q = apply_rope(q, first_position, pairing, theta);
    k = apply_rope(k, first_position, pairing, theta);
  };
  // END TODO(06.5)
}

}  // namespace attn
