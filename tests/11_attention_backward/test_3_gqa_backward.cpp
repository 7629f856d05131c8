// Lesson 11, part 3: grouped-query attention's backward. dK and dV of a KV head are the sums
// over the H/G query heads that read it: the backward of repeat_kv (a sum over each group)
// and the direct form that never repeats K and V must agree, and equal central differences.
#include "backward.hpp"

#include "gqa.hpp"
#include "gradient_check.hpp"

using namespace attn;
using attn::testing_grad::check_attention_grads;

TEST_CASE("repeat_kv_backward sums each group of n_rep consecutive heads, checked by hand") {
  // (1, 6, 1, 2): head h holds (h, 10 h). With n_rep = 3, KV head 0 collects heads 0, 1, 2.
  Tensor4 d_rep({1, 6, 1, 2});
  for (std::size_t h = 0; h < 6; ++h) {
    d_rep(0, h, 0, 0) = static_cast<float>(h);
    d_rep(0, h, 0, 1) = 10.0f * static_cast<float>(h);
  }
  const Tensor4 summed = repeat_kv_backward(d_rep, 3);
  REQUIRE(summed.shape() == std::array<std::size_t, 4>{1, 2, 1, 2});
  CHECK(summed(0, 0, 0, 0) == 0.0f + 1.0f + 2.0f);
  CHECK(summed(0, 0, 0, 1) == 0.0f + 10.0f + 20.0f);
  CHECK(summed(0, 1, 0, 0) == 3.0f + 4.0f + 5.0f);  // tile order would give 1 + 3 + 5
  CHECK(summed(0, 1, 0, 1) == 30.0f + 40.0f + 50.0f);
  CHECK(repeat_kv_backward(d_rep, 1) == d_rep);
  // The adjoint of lesson 03's repeat_kv: <repeat_kv_backward(dY), X> = <dY, repeat_kv(X)>.
  const Tensor4 x = random_uniform<4>({2, 2, 5, 3}, 3101), dy = random_uniform<4>({2, 6, 5, 3}, 3102);
  const double lhs = xt::sum(xt::cast<double>(repeat_kv_backward(dy, 3)) * xt::cast<double>(x))();
  const double rhs = xt::sum(xt::cast<double>(dy) * xt::cast<double>(repeat_kv(x, 3)))();
  CHECK(std::abs(lhs - rhs) <= tol_reduction(3, 3.0 * 30).atol + 1e-12);
}

TEST_CASE("gqa_attention_backward equals central differences for every divisor G of H up to 6") {
  std::uint64_t seed = 3200;
  std::size_t n = 0;
  const std::array<std::size_t, 3> dims{1, 5, 16};
  for (std::size_t h = 2; h <= 6; ++h)
    for (std::size_t g = 1; g < h; ++g) {
      if (h % g != 0) continue;
      const std::size_t b = 1 + n % 2, d = dims[n % 3], tk = 7 + 5 * (n % 6), tq = 3 + 4 * (n % 4);
      const bool causal = n % 2 == 0 && tq <= tk;
      const std::size_t offset = causal ? (tk - tq) / (1 + n % 3) : 0;
      ++n;
      CAPTURE(b);
      CAPTURE(h);
      CAPTURE(g);
      CAPTURE(tq);
      CAPTURE(tk);
      CAPTURE(d);
      CAPTURE(causal);
      CAPTURE(offset);
      const Mask mask = causal ? Mask::causal : Mask::none;
      const Tensor4 q = random_uniform<4>({b, h, tq, d}, ++seed), k = random_uniform<4>({b, g, tk, d}, ++seed);
      const Tensor4 v = random_uniform<4>({b, g, tk, d}, ++seed), dout = random_uniform<4>({b, h, tq, d}, ++seed);
      check_attention_grads(gqa_attention_backward(q, k, v, dout, mask, offset), q, k, v, dout, mask, offset, 1,
                            ++seed);
    }
}

TEST_CASE("the GQA backward equals repeat_kv_backward of the MHA backward on repeated K and V, and with G = H equals MHA's") {
  std::uint64_t seed = 3300;
  for (const auto [h, g] : {std::array<std::size_t, 2>{6, 2}, {6, 3}, {4, 1}, {5, 5}}) {
    CAPTURE(h);
    CAPTURE(g);
    const Tensor4 q = random_uniform<4>({2, h, 9, 5}, ++seed), k = random_uniform<4>({2, g, 12, 5}, ++seed);
    const Tensor4 v = random_uniform<4>({2, g, 12, 3}, ++seed), dout = random_uniform<4>({2, h, 9, 3}, ++seed);
    const AttentionGrads direct = gqa_attention_backward(q, k, v, dout, Mask::causal, 3);
    const AttentionGrads mha = attention_backward(q, repeat_kv(k, h / g), repeat_kv(v, h / g), dout, Mask::causal, 3);
    // Each head's backward is the same computation in both; the group sums add the same
    // numbers in the same order (r = 0, 1, ...), so the results are equal bit for bit.
    CHECK(direct.dq == mha.dq);
    CHECK(direct.dk == repeat_kv_backward(mha.dk, h / g));
    CHECK(direct.dv == repeat_kv_backward(mha.dv, h / g));
    if (g == h) {
      CHECK(direct.dk == mha.dk);
      CHECK(direct.dv == mha.dv);
    }
  }
}

TEST_CASE("gqa_attention_backward and repeat_kv_backward refuse bad shapes with clear messages") {
  const Tensor4 q = random_uniform<4>({1, 6, 3, 4}, 3401), kv = random_uniform<4>({1, 2, 5, 4}, 3402);
  const Tensor4 dout = random_uniform<4>({1, 6, 3, 4}, 3403);
  CHECK(gqa_attention_backward(q, kv, kv, dout, Mask::none, 0).dk.shape() == kv.shape());
  CHECK_THROWS_WITH_AS(gqa_attention_backward(q, Tensor4({1, 4, 5, 4}), Tensor4({1, 4, 5, 4}), dout, Mask::none, 0),
                       "gqa_attention_backward: the query heads must be a multiple of the KV heads: given H = 6 "
                       "query heads and G = 4 KV heads",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_attention_backward(q, kv, kv, Tensor4({1, 2, 3, 4}), Mask::none, 0),
                       "gqa_attention_backward: dout (B, H, Tq, Dv): expected shape (1, 6, 3, 4), given (1, 2, 3, 4)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_attention_backward(q, kv, kv, dout, Mask::none, 2),
                       "gqa_attention_backward: q_offset with Mask::none (only a causal mask uses positions): "
                       "expected 0, given 2",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(repeat_kv_backward(dout, 4),
                       "repeat_kv_backward: n_rep must be at least 1 and divide the heads: given 6 heads and n_rep = 4",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(repeat_kv_backward(dout, 0),
                       "repeat_kv_backward: n_rep must be at least 1 and divide the heads: given 6 heads and n_rep = 0",
                       std::invalid_argument);
}
