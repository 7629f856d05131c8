// Lesson 11, part 4: RoPE's backward is the transposed rotation, so that gradients reach q
// and k as they were before rotation (the outputs of the projections).
#include "backward.hpp"

#include <array>

#include "gqa.hpp"
#include "gradient_check.hpp"
#include "rope.hpp"

using namespace attn;
using attn::testing_grad::check_gradient;

namespace {
// float32 error of rope_backward: dx_a = dy_a c + dy_b s with c and s rounded to float (u each),
// two products and a sum: at most 3u (|dy_a| + |dy_b|) <= 2 gamma_3 max|dy| (lesson 06's bound
// of the forward, for the transpose).
double rope_backward_error(double dy_max) { return 2.0 * gamma_n(3) * dy_max; }
// float64 rotation in ref::rope: cos and sin within u64 each, two products, one sum.
double rope_error64(double x_max) { return 2.0 * gamma64(4) * x_max; }
}  // namespace

TEST_CASE("rope_backward equals central differences of the float64 rotation, both pairings, several positions") {
  std::uint64_t seed = 4100;
  for (const RopePairing pairing : {RopePairing::adjacent, RopePairing::half_split})
    for (const auto [d, first, theta] : {std::array<double, 3>{2, 0, 1e4}, {6, 3, 1e4}, {16, 1000, 5e5}, {8, 65536, 1e4}}) {
      CAPTURE(pairing == RopePairing::adjacent);
      CAPTURE(d);
      CAPTURE(first);
      const auto dd = static_cast<std::size_t>(d), p0 = static_cast<std::size_t>(first);
      const Tensor4 x = random_uniform<4>({2, 3, 5, dd}, ++seed), dy = random_uniform<4>({2, 3, 5, dd}, ++seed);
      const Tensor4 dx = rope_backward(dy, p0, pairing, theta);
      // The rotation is linear in x: no truncation error.
      check_gradient("dx", dx, x,
                     [&](const ref::Array4& in) { return ref::rope(in, p0, pairing == RopePairing::adjacent, theta); },
                     dy, rope_error64(1.0), rope_backward_error(1.0), 0.0, ++seed);
    }
}

TEST_CASE("rope_backward undoes apply_rope, and is its adjoint") {
  const Tensor4 x = random_uniform<4>({1, 2, 7, 8}, 4201), dy = random_uniform<4>({1, 2, 7, 8}, 4202);
  for (const RopePairing pairing : {RopePairing::adjacent, RopePairing::half_split}) {
    CAPTURE(pairing == RopePairing::adjacent);
    // R^T R = I: turning forward and back gives x within the two roundings.
    ATTN_CHECK_CLOSE(rope_backward(apply_rope(x, 11, pairing), 11, pairing), x,
                     (Tolerance{2.0 * rope_backward_error(1.0) + 2.0 * rope_backward_error(1.0), 0.0, "two rotations"}));
    // <R^T dy, x> = <dy, R x>, summed in float64 over 112 products of size <= 2.
    const double lhs = xt::sum(xt::cast<double>(rope_backward(dy, 11, pairing)) * xt::cast<double>(x))();
    const double rhs = xt::sum(xt::cast<double>(dy) * xt::cast<double>(apply_rope(x, 11, pairing)))();
    CHECK(std::abs(lhs - rhs) <= 112.0 * 2.0 * rope_backward_error(1.0));
  }
  // The pitfall: the forward rotation used as its own backward turns every pair the wrong way.
  const Tensor4 wrong = apply_rope(dy, 11, RopePairing::adjacent);
  CHECK_FALSE(compare(rope_backward(dy, 11, RopePairing::adjacent), wrong, Tolerance{1e-3, 0.0, ""}).ok);
}

TEST_CASE("gradients reach q and k before rotation: rope_backward of the GQA backward equals central differences through RoPE and attention") {
  const std::size_t b = 2, h = 6, g = 2, tq = 7, tk = 12, d = 8, first = 5;
  const Tensor4 q_pre = random_uniform<4>({b, h, tq, d}, 4301), k_pre = random_uniform<4>({b, g, tk, d}, 4302);
  const Tensor4 v = random_uniform<4>({b, g, tk, d}, 4303), dout = random_uniform<4>({b, h, tq, d}, 4304);
  for (const RopePairing pairing : {RopePairing::adjacent, RopePairing::half_split}) {
    CAPTURE(pairing == RopePairing::adjacent);
    const bool adjacent = pairing == RopePairing::adjacent;
    // The queries are the last Tq of Tk tokens: q at positions first + (tk - tq) ..., k at first ...
    const std::size_t offset = tk - tq;
    const Tensor4 q = apply_rope(q_pre, first + offset, pairing), k = apply_rope(k_pre, first, pairing);
    const AttentionGrads grads = gqa_attention_backward(q, k, v, dout, Mask::causal, offset);
    const Tensor4 dq_pre = rope_backward(grads.dq, first + offset, pairing);
    const Tensor4 dk_pre = rope_backward(grads.dk, first, pairing);
    // Bounds: the attention's at the rotated inputs, which float32 RoPE put within
    // 2 gamma_3 |pair| <= 3 gamma_3 max|rotated| of the exact ones (eta, gradcheck.hpp item 4);
    // then the rotation back adds twice the error of the two channels it mixes and its own rounding.
    const AttentionScales s = measure_attention(q, k, v, dout, true, offset);
    const AttentionGradTolerance e32 = tol_attention_backward(s, 1, 3.0 * gamma_n(3));
    const ThirdDerivatives m3 = attention_third_derivatives(s, 2.0);
    const double eps64 = attention_error64(s, 3.0 * gamma64(4));
    const ref::Array4 q64 = ref::rope(q_pre, first + offset, adjacent), k64 = ref::rope(k_pre, first, adjacent);
    const ref::Array4 v64 = v;
    check_gradient("dq before rotation", dq_pre, q_pre,
                   [&](const ref::Array4& x) {
                     return ref::attention(ref::rope(x, first + offset, adjacent), k64, v64, true, offset);
                   },
                   dout, eps64, 2.0 * e32.dq.atol + rope_backward_error(max_abs(grads.dq)), m3.q, 4310);
    check_gradient("dk before rotation", dk_pre, k_pre,
                   [&](const ref::Array4& x) { return ref::attention(q64, ref::rope(x, first, adjacent), v64, true, offset); },
                   dout, eps64, 2.0 * e32.dk.atol + rope_backward_error(max_abs(grads.dk)), m3.k, 4311);
  }
}

TEST_CASE("rope_backward refuses an odd head dimension, as apply_rope does") {
  CHECK(rope_backward(Tensor4(xt::ones<float>({1, 1, 1, 2})), 0, RopePairing::adjacent) == xt::ones<float>({1, 1, 1, 2}));
  CHECK_THROWS_WITH_AS(rope_backward(Tensor4({1, 1, 3, 5}), 0, RopePairing::half_split),
                       "rope_frequencies: RoPE rotates pairs of channels: the head dimension must be even and "
                       "positive, given D = 5",
                       std::invalid_argument);
}
