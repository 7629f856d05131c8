/// @file gradient_check.hpp
/// @brief Lesson 11's tests: a float32 gradient against central differences of a float64
///        forward at sampled coordinates, within the bound of common/attn/gradcheck.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "attn/gradcheck.hpp"
#include "attn/testing.hpp"
#include "backward.hpp"

namespace attn::testing_grad {

/// A case of the tiled (flash) tests: B, H, G, Tq, Tk, D, the query offset, the tile of rows
/// and keys, and the mask.
struct TiledCase {
  std::size_t b, h, g, tq, tk, d, offset, tile;
  Mask mask;

  /// The tiles of keys the flash loops visit at most (ceil(Tk / tile)).
  std::size_t key_tiles() const { return (tk + tile - 1) / tile; }

  /// Every field, for a failure message.
  std::string describe() const {
    return "b = " + std::to_string(b) + ", h = " + std::to_string(h) + ", g = " + std::to_string(g) +
           ", tq = " + std::to_string(tq) + ", tk = " + std::to_string(tk) + ", d = " + std::to_string(d) +
           ", offset = " + std::to_string(offset) + ", tile = " + std::to_string(tile) +
           (mask == Mask::causal ? ", causal" : ", no mask");
  }
};

/// q (B, H, Tq, D), k and v (B, G, Tk, D) of a case, uniform in [-1, 1), from the next three seeds.
struct TiledInputs {
  Tensor4 q, k, v;
};
inline TiledInputs random_inputs(const TiledCase& c, std::uint64_t& seed) {
  Tensor4 q = random_uniform<4>({c.b, c.h, c.tq, c.d}, ++seed);
  Tensor4 k = random_uniform<4>({c.b, c.g, c.tk, c.d}, ++seed);
  Tensor4 v = random_uniform<4>({c.b, c.g, c.tk, c.d}, ++seed);
  return {std::move(q), std::move(k), std::move(v)};
}

/// At most this many coordinates of each input are checked (the budget).
inline constexpr std::size_t kSamples = 16;

/// CHECKs got (the float32 gradient with respect to x) against the central difference of
/// L(x) = sum w o forward(x) at up to kSamples coordinates of x. The tolerance is
/// e32 + fd_truncation(m3) + the largest float64 rounding bound of the differences.
template <std::size_t N, class F, class W>
void check_gradient(const std::string& name, const xt::xtensor<float, N>& got,
                    const xt::xtensor<float, N>& x, F&& forward, const W& w, double y_error,
                    double e32, double m3, std::uint64_t seed) {
  REQUIRE(got.shape() == x.shape());
  const xt::xtensor<double, N> x64 = x;
  const auto coords = sample_indices(x.size(), kSamples, seed);
  auto g = xt::xtensor<float, 1>::from_shape({coords.size()});
  auto fd = xt::xtensor<double, 1>::from_shape({coords.size()});
  double rounding = 0.0;
  std::string where;
  for (std::size_t n = 0; n < coords.size(); ++n) {
    const Difference d = central_difference(forward, x64, coords[n], w, y_error);
    fd(n) = d.value;
    g(n) = got.flat(coords[n]);
    rounding = std::max(rounding, d.rounding);
    where += (n ? " " : "") + std::to_string(coords[n]);
  }
  const double trunc = fd_truncation(m3);
  const Tolerance tol{e32 + trunc + rounding, 0.0,
                      name + " at flat coordinates [" + where + "]: E32 " + std::to_string(e32) +
                          " + truncation " + std::to_string(trunc) + " + rounding " +
                          std::to_string(rounding)};
  ATTN_CHECK_CLOSE(g, fd, tol);
}

/// CHECKs dq, dk, dv of an attention (GQA layout: k, v with G heads) against central
/// differences of ref::attention, within tol_attention_backward(., key_tiles) and the
/// finite-difference terms of gradcheck.hpp.
inline void check_attention_grads(const AttentionGrads& got, const Tensor4& q, const Tensor4& k,
                                  const Tensor4& v, const Tensor4& dout, Mask mask,
                                  std::size_t q_offset, std::size_t key_tiles, std::uint64_t seed) {
  const bool causal = mask == Mask::causal;
  const AttentionScales s = measure_attention(q, k, v, dout, causal, q_offset);
  const AttentionGradTolerance e32 = tol_attention_backward(s, key_tiles);
  const ThirdDerivatives m3 = attention_third_derivatives(s);
  const double eps64 = attention_error64(s);
  const ref::Array4 q64 = q, k64 = k, v64 = v;
  check_gradient("dq", got.dq, q,
                 [&](const ref::Array4& x) { return ref::attention(x, k64, v64, causal, q_offset); },
                 dout, eps64, e32.dq.atol, m3.q, seed);
  check_gradient("dk", got.dk, k,
                 [&](const ref::Array4& x) { return ref::attention(q64, x, v64, causal, q_offset); },
                 dout, eps64, e32.dk.atol, m3.k, seed + 1);
  check_gradient("dv", got.dv, v,
                 [&](const ref::Array4& x) { return ref::attention(q64, k64, x, causal, q_offset); },
                 dout, eps64, e32.dv.atol, m3.v, seed + 2);
}

}  // namespace attn::testing_grad
