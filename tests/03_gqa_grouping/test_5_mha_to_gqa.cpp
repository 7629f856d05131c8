// Lesson 03, part 5: converting a multi-head checkpoint to GQA by mean-pooling.
#include "gqa.hpp"

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"

using namespace attn;

namespace {
MHAWeights random_mha(std::size_t d_model, std::size_t width, std::uint64_t seed) {
  const float s = 1.0f / std::sqrt(static_cast<float>(d_model));
  return MHAWeights{random_uniform<2>({d_model, width}, seed, -s, s),
                    random_uniform<2>({d_model, width}, seed + 1, -s, s),
                    random_uniform<2>({d_model, width}, seed + 2, -s, s),
                    random_uniform<2>({width, d_model}, seed + 3, -s, s)};
}
}  // namespace

TEST_CASE("pool_kv_heads averages consecutive head blocks: a hand-computed case") {
  // 2 rows, H = 6 heads of D = 1, G = 2: groups {0, 1, 2} and {3, 4, 5}.
  // (Strided groups {0, 2, 4} and {1, 3, 5} would give 3 and 4 in row 0.)
  const Tensor2 w{{1, 2, 6, 4, 5, 9}, {0, 0, 3, 30, 0, 0}};
  CHECK(pool_kv_heads(w, 6, 2) == Tensor2{{3, 6}, {1, 10}});
  CHECK(pool_kv_heads(w, 6, 6) == w);                             // G == H keeps every head
  CHECK(pool_kv_heads(w, 6, 1) == Tensor2{{4.5f}, {5.5f}});  // G = 1 averages all: 27/6, 33/6
}

TEST_CASE("mha_to_gqa mean-pools consecutive K and V heads: a hand-computed case") {
  // d_model = 1, H = 4 heads of D = 2, G = 2: head h owns columns 2h and 2h + 1.
  // K heads: h0 = (1, 2), h1 = (3, 4), h2 = (5, 6), h3 = (7, 8).
  // Group 0 = heads {0, 1}: ((1+3)/2, (2+4)/2) = (2, 3); group 1 = heads {2, 3}: (6, 7).
  // (Strided groups {0, 2} and {1, 3} would give (3, 4) and (5, 6).)
  const MHAWeights mha{Tensor2{{-1, -2, -3, -4, -5, -6, -7, -8}},
                       Tensor2{{1, 2, 3, 4, 5, 6, 7, 8}},
                       Tensor2{{0, 10, 20, 30, 40, 50, 60, 70}},
                       Tensor2{{9}, {8}, {7}, {6}, {5}, {4}, {3}, {2}}};
  const GQAWeights gqa = mha_to_gqa(mha, 4, 2);
  CHECK(gqa.n_heads == 4);
  CHECK(gqa.n_kv_heads == 2);
  CHECK(gqa.wk == Tensor2{{2, 3, 6, 7}});
  CHECK(gqa.wv == Tensor2{{10, 20, 50, 60}});
  CHECK(gqa.wq == mha.wq);  // queries and the output projection are kept
  CHECK(gqa.wo == mha.wo);
}

TEST_CASE("mha_to_gqa pools each row of the projection separately: a hand-computed case") {
  // d_model = 2, H = 6 heads of D = 1, G = 2: groups {0, 1, 2} and {3, 4, 5}.
  const Tensor2 wk{{1, 2, 6, 10, 20, 30}, {0, 0, 3, -3, 3, 9}};
  const Tensor2 wv{{3, 3, 3, 4, 4, 4}, {1, 0, 2, 0, 0, 6}};
  const MHAWeights mha{xt::zeros<float>({2, 6}), wk, wv, xt::zeros<float>({6, 2})};
  const GQAWeights gqa = mha_to_gqa(mha, 6, 2);
  CHECK(gqa.wk == Tensor2{{3, 20}, {1, 3}});
  CHECK(gqa.wv == Tensor2{{3, 4}, {1, 2}});
}

TEST_CASE("mha_to_gqa with G == H keeps the checkpoint, with G = 1 it averages every head") {
  const std::size_t d_model = 5, nh = 4, d = 3;
  const MHAWeights mha = random_mha(d_model, nh * d, 421);
  const GQAWeights same = mha_to_gqa(mha, nh, nh);
  CHECK(same.wk == mha.wk);
  CHECK(same.wv == mha.wv);
  const GQAWeights mqa = mha_to_gqa(mha, nh, 1);
  REQUIRE(mqa.wk.shape() == std::array<std::size_t, 2>{d_model, d});
  xt::xtensor<double, 2> mean_k = xt::zeros<double>({d_model, d}), mean_v = mean_k;
  for (std::size_t m = 0; m < d_model; ++m)
    for (std::size_t c = 0; c < d; ++c)
      for (std::size_t h = 0; h < nh; ++h) {
        mean_k(m, c) += double(mha.wk(m, h * d + c)) / nh;
        mean_v(m, c) += double(mha.wv(m, h * d + c)) / nh;
      }
  // A mean of nh float32 values: a reduction of nh terms, each at most 1/sqrt(d_model).
  const Tolerance tol = tol_reduction(nh + 1, nh / std::sqrt(double(d_model)));
  ATTN_CHECK_CLOSE(mqa.wk, mean_k, tol);
  ATTN_CHECK_CLOSE(mqa.wv, mean_v, tol);
}

TEST_CASE("a GQA layer converted with G == H equals lesson 01 multi-head attention") {
  const std::size_t nb = 2, t = 6, d_model = 12, nh = 4, d = 3;
  const Tensor3 x = random_uniform<3>({nb, t, d_model}, 431);
  const MHAWeights mha = random_mha(d_model, nh * d, 432);
  const Tensor3 expected = multi_head_attention(x, mha, nh);
  ATTN_CHECK_CLOSE(gqa_self_attention(x, mha_to_gqa(mha, nh, nh), Mask::none), expected,
                   tol_relative_to_max(1e-5, expected));
}

TEST_CASE("converting an MHA layer whose heads already agree within each group loses nothing") {
  // If the K and V projections of the heads in each group of H/G consecutive heads are
  // equal, the MHA layer already is a GQA layer, and the pooled one computes the same.
  const std::size_t nb = 2, t = 6, d_model = 12, nh = 6, ng = 2, d = 3, group = nh / ng;
  const Tensor3 x = random_uniform<3>({nb, t, d_model}, 441);
  MHAWeights mha = random_mha(d_model, nh * d, 442);
  for (std::size_t h = 0; h < nh; ++h) {
    const std::size_t first = (h / group) * group;  // the first head of h's group
    for (Tensor2* w : {&mha.wk, &mha.wv})
      xt::view(*w, xt::all(), xt::range(h * d, (h + 1) * d)) =
          xt::eval(xt::view(*w, xt::all(), xt::range(first * d, (first + 1) * d)));
  }
  const Tensor3 expected = multi_head_attention(x, mha, nh);
  ATTN_CHECK_CLOSE(gqa_self_attention(x, mha_to_gqa(mha, nh, ng), Mask::none), expected,
                   tol_relative_to_max(1e-5, expected));
}

TEST_CASE("mha_to_gqa rejects head counts that do not divide, naming them") {
  const MHAWeights mha = random_mha(4, 12, 451);
  CHECK_THROWS_WITH_AS(mha_to_gqa(mha, 6, 4),
                       "mha_to_gqa: n_heads must be a positive multiple of n_kv_heads: given H = "
                       "6 and G = 4",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(mha_to_gqa(mha, 6, 0), doctest::Contains("given H = 6 and G = 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(mha_to_gqa(mha, 5, 1),
                       "mha_to_gqa: the columns of wq must be a multiple of n_heads: given 12 "
                       "columns and 5 heads",
                       std::invalid_argument);
  MHAWeights bad = mha;
  bad.wv = xt::zeros<float>({4, 6});
  CHECK_THROWS_WITH_AS(mha_to_gqa(bad, 6, 3),
                       "mha_to_gqa: wv (the shape of wq): expected shape (4, 12), given (4, 6)",
                       std::invalid_argument);
}
