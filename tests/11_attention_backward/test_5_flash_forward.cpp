// Lesson 11, part 5: a tiled forward (FlashAttention-2's) that returns O and each row's
// log-sum-exp L, the one statistic its backward needs.
#include "backward.hpp"

#include <array>
#include <limits>

#include "gradient_check.hpp"

using namespace attn;
using attn::testing_grad::random_inputs;
using attn::testing_grad::TiledCase;

TEST_CASE("online_softmax_update over two tiles of keys equals the softmax of the whole row") {
  // Two rows of 7 scores in tiles of 4 and 3; row 1 may not attend key 5 (a masked entry).
  const Tensor2 s = random_uniform<2>({2, 7}, 5101, -3.0f, 3.0f), v = random_uniform<2>({7, 3}, 5102);
  xt::xtensor<bool, 2> allowed = xt::ones<bool>({2, 7});
  allowed(1, 5) = false;
  OnlineSoftmax state = online_softmax_start(2, 3);
  online_softmax_update(state, xt::view(s, xt::all(), xt::range(0, 4)), xt::view(allowed, xt::all(), xt::range(0, 4)),
                        xt::view(v, xt::range(0, 4), xt::all()));
  online_softmax_update(state, xt::view(s, xt::all(), xt::range(4, 7)), xt::view(allowed, xt::all(), xt::range(4, 7)),
                        xt::view(v, xt::range(4, 7), xt::all()));
  for (std::size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    double m = -std::numeric_limits<double>::infinity(), l = 0.0;
    for (std::size_t j = 0; j < 7; ++j)
      if (allowed(i, j)) m = std::max(m, double(s(i, j)));
    CHECK(state.max[i] == static_cast<float>(m));  // the largest score, exactly
    for (std::size_t j = 0; j < 7; ++j)
      if (allowed(i, j)) l += std::exp(double(s(i, j)) - m);
    // Each term: the subtraction (u |s - m| <= 6u), exp, at most one rescaling by an exp (3u),
    // then a sum of 7: relative gamma_7 + 11u.
    const double rel = gamma_n(7) + 11.0 * kUnitRoundoff;
    CHECK(std::abs(state.sum[i] - l) <= rel * l);
    for (std::size_t c = 0; c < 3; ++c) {
      double acc = 0.0;
      for (std::size_t j = 0; j < 7; ++j)
        if (allowed(i, j)) acc += std::exp(double(s(i, j)) - m) * double(v(j, c));
      CHECK(std::abs(state.acc(i, c) - acc) <= (rel + gamma_n(8)) * l);  // sum |p v| <= l
    }
  }
  // A row that may attend nothing yet keeps its start: max -inf, sum 0, acc 0.
  OnlineSoftmax empty = online_softmax_start(1, 3);
  online_softmax_update(empty, Tensor2({{1.0f, 2.0f}}), xt::zeros<bool>({1, 2}), Tensor2({{1, 1, 1}, {1, 1, 1}}));
  CHECK(empty.max[0] == -std::numeric_limits<float>::infinity());
  CHECK(empty.sum[0] == 0.0f);
  CHECK(empty.acc == xt::zeros<float>({1, 3}));
}

TEST_CASE("flash_attention_forward returns O and L equal to the float64 reference, tiles of 1, 4 and 8, causal at several offsets, GQA") {
  using Case = TiledCase;
  std::uint64_t seed = 5200;
  for (const Case& c : {Case{1, 1, 1, 5, 9, 1, 0, 1, Mask::none}, Case{2, 6, 2, 33, 33, 16, 0, 4, Mask::causal},
                        Case{1, 4, 1, 10, 29, 5, 19, 8, Mask::causal}, Case{2, 3, 3, 17, 6, 5, 0, 4, Mask::none},
                        Case{1, 6, 3, 1, 21, 16, 20, 8, Mask::causal}, Case{2, 2, 1, 13, 20, 5, 3, 4, Mask::causal}}) {
    const std::string where = c.describe();
    CAPTURE(where);
    const bool causal = c.mask == Mask::causal;
    const auto [q, k, v] = random_inputs(c, seed);
    const FlashForward f = flash_attention_forward(q, k, v, c.mask, c.offset, c.tile);
    const AttentionScales s = measure_attention(q, k, v, q, causal, c.offset);
    const FlashForwardTolerance tol = tol_flash_forward(s, c.key_tiles());
    ATTN_CHECK_CLOSE(f.out, ref::attention(q, k, v, causal, c.offset), tol.out);
    ATTN_CHECK_CLOSE(f.lse, ref::attention_lse(q, k, causal, c.offset), tol.lse);
  }
}

TEST_CASE("flash_attention_forward refuses a tile of 0 and what lesson 03 refuses") {
  const Tensor4 q = random_uniform<4>({1, 2, 3, 4}, 5301), kv = random_uniform<4>({1, 1, 5, 4}, 5302);
  CHECK(flash_attention_forward(q, kv, kv, Mask::causal, 2, 2).lse.shape() == std::array<std::size_t, 3>{1, 2, 3});
  CHECK_THROWS_WITH_AS(flash_attention_forward(q, kv, kv, Mask::none, 0, 0),
                       "flash_attention_forward: a tile needs at least 1 row, given tile = 0", std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_forward(q, kv, kv, Mask::causal, 3, 4),
                       "flash_attention_forward: query positions past the last key: expected q_offset + Tq <= Tk = 5, "
                       "given q_offset = 3 and Tq = 3",
                       std::out_of_range);
  OnlineSoftmax state = online_softmax_start(2, 3);
  CHECK_THROWS_WITH_AS(online_softmax_update(state, Tensor2({2, 4}), xt::ones<bool>({2, 4}), Tensor2({5, 3})),
                       "online_softmax_update: rows of v (columns of scores): expected 4, given 5", std::invalid_argument);
}
