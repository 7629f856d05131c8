// Lesson 03, part 2: attention with H query heads over G key/value heads.
#include "gqa.hpp"

#include <cstdint>

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"
#include "causal.hpp"

using namespace attn;

TEST_CASE("GQA with G == H equals lesson 01 attention without a mask") {
  for (auto [nb, nh, tq, tk, d] : {std::array<std::size_t, 5>{1, 1, 1, 1, 1}, {2, 3, 5, 7, 4},
                                   {3, 4, 9, 2, 64}, {1, 6, 1, 33, 7}}) {
    CAPTURE(nh);
    CAPTURE(tq);
    CAPTURE(tk);
    const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 301);
    const Tensor4 k = random_uniform<4>({nb, nh, tk, d}, 302);
    const Tensor4 v = random_uniform<4>({nb, nh, tk, d}, 303);
    const Tensor4 mha = scaled_dot_product_attention(q, k, v);
    ATTN_CHECK_CLOSE(gqa_attention(q, k, v, Mask::none, 0), mha, tol_relative_to_max(1e-5, mha));
  }
}

TEST_CASE("GQA with G == H equals lesson 02 causal attention at every query offset") {
  const std::size_t nb = 2, nh = 3, tk = 9, d = 7;
  const Tensor4 k = random_uniform<4>({nb, nh, tk, d}, 312);
  const Tensor4 v = random_uniform<4>({nb, nh, tk, d}, 313);
  for (std::size_t tq : {std::size_t{1}, std::size_t{4}, tk}) {
    const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 311 + tq);
    for (std::size_t offset = 0; offset + tq <= tk; ++offset) {
      CAPTURE(tq);
      CAPTURE(offset);
      const Tensor4 mha = causal_attention(q, k, v, offset);
      ATTN_CHECK_CLOSE(gqa_attention(q, k, v, Mask::causal, offset), mha,
                       tol_relative_to_max(1e-5, mha));
    }
  }
}

TEST_CASE("query head h reads KV head h / (H/G), not the tile-order head h mod G") {
  // Every value of KV head g is g + 1, so the output of a query head is exactly the
  // number of the KV head it read, plus one, whatever the attention weights are.
  const std::size_t nb = 2, nh = 6, ng = 2, tq = 3, tk = 5, d = 4, group = nh / ng;
  const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 321);
  const Tensor4 k = random_uniform<4>({nb, ng, tk, d}, 322);
  Tensor4 v({nb, ng, tk, d});
  for (std::size_t g = 0; g < ng; ++g) xt::view(v, xt::all(), g) = static_cast<float>(g + 1);
  std::size_t heads_where_tile_order_differs = 0;
  for (const Mask mask : {Mask::none, Mask::causal}) {
    const Tensor4 out = gqa_attention(q, k, v, mask, mask == Mask::causal ? tk - tq : 0);
    REQUIRE(out.shape() == std::array<std::size_t, 4>{nb, nh, tq, d});
    for (std::size_t h = 0; h < nh; ++h) {
      CAPTURE(h);
      const float read = static_cast<float>(h / group + 1);
      if (h / group != h % ng) ++heads_where_tile_order_differs;
      for (std::size_t b = 0; b < nb; ++b)
        for (std::size_t i = 0; i < tq; ++i)
          for (std::size_t c = 0; c < d; ++c)
            CHECK(out(b, h, i, c) == doctest::Approx(read).epsilon(1e-6));
    }
  }
  CHECK(heads_where_tile_order_differs > 0);  // the case tells the two orders apart
}

TEST_CASE("gqa_attention equals attention on repeat_kv-expanded K and V") {
  const std::size_t nb = 2, nh = 6, ng = 3, tq = 4, tk = 11, d = 7;
  const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 331);
  const Tensor4 k = random_uniform<4>({nb, ng, tk, d}, 332);
  const Tensor4 v = random_uniform<4>({nb, ng, tk, d}, 333);
  const Tensor4 k_rep = repeat_kv(k, nh / ng), v_rep = repeat_kv(v, nh / ng);
  const Tensor4 expanded = scaled_dot_product_attention(q, k_rep, v_rep);
  ATTN_CHECK_CLOSE(gqa_attention(q, k, v, Mask::none, 0), expanded,
                   tol_relative_to_max(1e-5, expanded));
  const Tensor4 expanded_causal = causal_attention(q, k_rep, v_rep, tk - tq);
  ATTN_CHECK_CLOSE(gqa_attention(q, k, v, Mask::causal, tk - tq), expanded_causal,
                   tol_relative_to_max(1e-5, expanded_causal));
}

TEST_CASE("MQA (G = 1): every query head attends over the one shared KV head") {
  const std::size_t nb = 2, nh = 5, tq = 3, tk = 8, d = 7;
  const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 341);
  const Tensor4 k = random_uniform<4>({nb, 1, tk, d}, 342);
  const Tensor4 v = random_uniform<4>({nb, 1, tk, d}, 343);
  const Tensor4 out = gqa_attention(q, k, v, Mask::none, 0);
  REQUIRE(out.shape() == std::array<std::size_t, 4>{nb, nh, tq, d});
  for (std::size_t h = 0; h < nh; ++h) {
    CAPTURE(h);
    const Tensor4 qh = xt::view(q, xt::all(), xt::range(h, h + 1));  // (B, 1, Tq, D)
    const Tensor4 single = scaled_dot_product_attention(qh, k, v);   // one head, plain MHA
    const Tensor4 got = xt::view(out, xt::all(), xt::range(h, h + 1));
    ATTN_CHECK_CLOSE(got, single, tol_relative_to_max(1e-5, single));
  }
}

TEST_CASE("decoding one query at position p equals row p of causal prefill") {
  const std::size_t nb = 2, nh = 4, ng = 2, tk = 10, d = 7;
  const Tensor4 q = random_uniform<4>({nb, nh, tk, d}, 351);
  const Tensor4 k = random_uniform<4>({nb, ng, tk, d}, 352);
  const Tensor4 v = random_uniform<4>({nb, ng, tk, d}, 353);
  const Tensor4 prefill = gqa_attention(q, k, v, Mask::causal, 0);
  for (std::size_t p = 0; p < tk; ++p) {
    CAPTURE(p);
    const Tensor4 qp = xt::view(q, xt::all(), xt::all(), xt::range(p, p + 1));  // (B, H, 1, D)
    const Tensor4 kp = xt::view(k, xt::all(), xt::all(), xt::range(0, p + 1));  // keys 0..p
    const Tensor4 vp = xt::view(v, xt::all(), xt::all(), xt::range(0, p + 1));
    const Tensor4 row = xt::view(prefill, xt::all(), xt::all(), xt::range(p, p + 1));
    const Tensor4 decode = gqa_attention(qp, kp, vp, Mask::causal, p);
    ATTN_CHECK_CLOSE(decode, row, tol_relative_to_max(1e-5, row));
  }
}

TEST_CASE("gqa_attention checks its arguments with check_gqa_arguments, in its own name") {
  const Tensor4 q = xt::zeros<float>({1, 9, 2, 4});
  const Tensor4 kv = xt::zeros<float>({1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(gqa_attention(q, kv, kv, Mask::none, 0),
                       "gqa_attention: the query heads must be a multiple of the KV heads: given "
                       "H = 9 query heads and G = 2 KV heads",
                       std::invalid_argument);
  const Tensor4 q4 = xt::zeros<float>({1, 4, 4, 8}), kv5 = xt::zeros<float>({1, 2, 5, 8});
  CHECK_THROWS_WITH_AS(gqa_attention(q4, kv5, kv5, Mask::causal, 2),
                       "gqa_attention: query positions past the last key: expected q_offset + "
                       "Tq <= Tk = 5, given q_offset = 2 and Tq = 4",
                       std::out_of_range);
}
