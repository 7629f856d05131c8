// Lesson 06, part 4: the position hook that a decoder calls on its projected queries and
// keys, right after the projection and before the keys enter the KV cache.
#include "rope.hpp"

#include "attn/testing.hpp"
#include "rope_check.hpp"
#include "rope_reference.hpp"

using namespace attn;

TEST_CASE("the RoPE hook rotates q and k in place, row t to position first_position + t") {
  for (RopePairing pairing : {RopePairing::adjacent, RopePairing::half_split}) {
    const bool adjacent = pairing == RopePairing::adjacent;
    CAPTURE(adjacent);
    const PositionHook hook = rope_position_hook(pairing);
    REQUIRE(hook);
    const Tensor4 q0 = random_uniform<4>({2, 4, 3, 8}, 620);  // (B, H, T, D)
    const Tensor4 k0 = random_uniform<4>({2, 2, 3, 8}, 621);  // (B, G, T, D)
    for (std::size_t first : {0u, 5u, 300u}) {
      CAPTURE(first);
      Tensor4 q = q0, k = k0;
      hook(q, k, first);
      ATTN_CHECK_CLOSE(q, ref::rope(q0, first, adjacent), tol_rope(1.0, first + 2));
      ATTN_CHECK_CLOSE(k, ref::rope(k0, first, adjacent), tol_rope(1.0, first + 2));
    }
  }
}

TEST_CASE("the RoPE hook uses its theta: 500000 gives other angles than 10000") {
  const PositionHook hook = rope_position_hook(RopePairing::half_split, 500000.0);
  const Tensor4 q0 = random_uniform<4>({1, 2, 4, 16}, 622);
  const Tensor4 k0 = random_uniform<4>({1, 1, 4, 16}, 623);
  Tensor4 q = q0, k = k0;
  hook(q, k, 20);
  ATTN_CHECK_CLOSE(q, ref::rope(q0, 20, false, 500000.0), tol_rope(1.0, 23));
  ATTN_CHECK_CLOSE(k, ref::rope(k0, 20, false, 500000.0), tol_rope(1.0, 23));
}

TEST_CASE("decode steps through the hook continue where the prefill stopped (positions never restart at 0)") {
  // Prefill rows 0..4 in one call, then one decode row per call at positions 5, 6, 7: every
  // row must come out as if all 8 had been rotated in one call.
  const std::size_t prompt = 5, total = 8;
  const Tensor4 q_all = random_uniform<4>({1, 2, total, 8}, 624);
  const Tensor4 k_all = random_uniform<4>({1, 1, total, 8}, 625);
  for (RopePairing pairing : {RopePairing::adjacent, RopePairing::half_split}) {
    const bool adjacent = pairing == RopePairing::adjacent;
    CAPTURE(adjacent);
    const PositionHook hook = rope_position_hook(pairing);
    const auto expected_q = ref::rope(q_all, 0, adjacent), expected_k = ref::rope(k_all, 0, adjacent);
    std::size_t position = 0;
    for (std::size_t rows : {prompt, std::size_t{1}, std::size_t{1}, std::size_t{1}}) {
      CAPTURE(position);
      Tensor4 q = xt::view(q_all, xt::all(), xt::all(), xt::range(position, position + rows));
      Tensor4 k = xt::view(k_all, xt::all(), xt::all(), xt::range(position, position + rows));
      hook(q, k, position);  // the absolute position of the first new row
      const xt::xtensor<double, 4> eq = xt::view(expected_q, xt::all(), xt::all(), xt::range(position, position + rows));
      const xt::xtensor<double, 4> ek = xt::view(expected_k, xt::all(), xt::all(), xt::range(position, position + rows));
      ATTN_CHECK_CLOSE(q, eq, tol_rope(1.0, total - 1));
      ATTN_CHECK_CLOSE(k, ek, tol_rope(1.0, total - 1));
      position += rows;
    }
  }
}

TEST_CASE("the RoPE hook rejects an odd head dimension, like apply_rope") {
  const PositionHook hook = rope_position_hook(RopePairing::adjacent);
  Tensor4 q = xt::zeros<float>({1, 2, 1, 7}), k = xt::zeros<float>({1, 1, 1, 7});
  CHECK_THROWS_WITH_AS(hook(q, k, 3), doctest::Contains("given D = 7"), std::invalid_argument);
}
