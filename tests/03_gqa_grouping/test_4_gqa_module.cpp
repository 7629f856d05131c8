// Lesson 03, part 4: the GQA layer with its projections, and its parameter count.
#include "gqa.hpp"

#include "attn/testing.hpp"

using namespace attn;

namespace {
// Random GQA projections, uniform in [-1/sqrt(d_model), 1/sqrt(d_model)).
GQAWeights random_gqa(std::size_t d_model, std::size_t nh, std::size_t ng, std::size_t d,
                      std::uint64_t seed) {
  const float s = 1.0f / std::sqrt(static_cast<float>(d_model));
  return GQAWeights{random_uniform<2>({d_model, nh * d}, seed, -s, s),
                    random_uniform<2>({d_model, ng * d}, seed + 1, -s, s),
                    random_uniform<2>({d_model, ng * d}, seed + 2, -s, s),
                    random_uniform<2>({nh * d, d_model}, seed + 3, -s, s), nh, ng};
}

// Zero weights of the right shapes: only their sizes matter for counting.
GQAWeights zero_gqa(std::size_t d_model, std::size_t nh, std::size_t ng, std::size_t d) {
  return GQAWeights{xt::zeros<float>({d_model, nh * d}), xt::zeros<float>({d_model, ng * d}),
                    xt::zeros<float>({d_model, ng * d}), xt::zeros<float>({nh * d, d_model}), nh,
                    ng};
}

// x W for the heads of one projection, in float64 then rounded: (B, heads, T, D).
Tensor4 project_heads(const Tensor3& x, const Tensor2& w, std::size_t heads, std::size_t d) {
  const std::size_t nb = x.shape(0), t = x.shape(1), d_model = x.shape(2);
  Tensor4 out({nb, heads, t, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t c = 0; c < d; ++c) {
          double s = 0.0;
          for (std::size_t m = 0; m < d_model; ++m) s += double(x(b, i, m)) * double(w(m, h * d + c));
          out(b, h, i, c) = static_cast<float>(s);
        }
  return out;
}
}  // namespace

TEST_CASE("the GQA layer equals a float64 per-head reference, causal and not") {
  const std::size_t nb = 2, t = 7, d_model = 12, nh = 6, ng = 2, d = 4;
  const Tensor3 x = random_uniform<3>({nb, t, d_model}, 401);
  const GQAWeights w = random_gqa(d_model, nh, ng, d, 402);
  for (const Mask mask : {Mask::none, Mask::causal}) {
    CAPTURE(mask == Mask::causal);
    const auto att = ref::attention(project_heads(x, w.wq, nh, d), project_heads(x, w.wk, ng, d),
                                    project_heads(x, w.wv, ng, d), mask == Mask::causal, 0);
    xt::xtensor<double, 3> expected = xt::zeros<double>({nb, t, d_model});
    for (std::size_t b = 0; b < nb; ++b)
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t o = 0; o < d_model; ++o)
          for (std::size_t h = 0; h < nh; ++h)
            for (std::size_t c = 0; c < d; ++c)
              expected(b, i, o) += att(b, h, i, c) * double(w.wo(h * d + c, o));
    ATTN_CHECK_CLOSE(gqa_self_attention(x, w, mask), expected, tol_relative_to_max(1e-5, expected));
  }
}

TEST_CASE("a GQA layer with G == H equals lesson 01 multi-head attention") {
  const std::size_t nb = 2, t = 5, d_model = 12, nh = 3, d = 4;
  const Tensor3 x = random_uniform<3>({nb, t, d_model}, 411);
  const GQAWeights w = random_gqa(d_model, nh, nh, d, 412);
  const Tensor3 mha = multi_head_attention(x, MHAWeights{w.wq, w.wk, w.wv, w.wo}, nh);
  ATTN_CHECK_CLOSE(gqa_self_attention(x, w, Mask::none), mha, tol_relative_to_max(1e-5, mha));
}

TEST_CASE("the parameter count is 2 d_model H D + 2 d_model G D, so GQA saves exactly "
          "2 (H - G) D d_model") {
  // SmolLM2-135M's attention: d_model 576, H = 9 query heads, G = 3 KV heads, D = 64.
  const std::size_t d_model = 576, nh = 9, d = 64;
  const std::size_t mha = parameter_count(zero_gqa(d_model, nh, nh, d));
  const std::size_t gqa = parameter_count(zero_gqa(d_model, nh, 3, d));
  CHECK(mha == 1327104);  // 4 * 576 * 576
  CHECK(gqa == 884736);   // 2 * 576 * 576 + 2 * 576 * 192
  CHECK(mha - gqa == 2 * (nh - 3) * d * d_model);
  // Every divisor G of H = 12, on a small layer.
  const std::size_t small_model = 10, heads = 12, small_d = 3;
  const std::size_t full = parameter_count(zero_gqa(small_model, heads, heads, small_d));
  CHECK(full == 4 * small_model * heads * small_d);
  for (std::size_t g : {1, 2, 3, 4, 6, 12}) {
    CAPTURE(g);
    const std::size_t grouped = parameter_count(zero_gqa(small_model, heads, g, small_d));
    CHECK(full - grouped == 2 * (heads - g) * small_d * small_model);
  }
}

TEST_CASE("the GQA layer rejects inconsistent head counts and weight shapes") {
  const Tensor3 x = xt::zeros<float>({1, 3, 8});
  const GQAWeights w = zero_gqa(8, 4, 2, 2);
  CHECK_NOTHROW(gqa_self_attention(x, w, Mask::causal));
  GQAWeights bad = w;
  bad.n_kv_heads = 3;
  CHECK_THROWS_WITH_AS(gqa_self_attention(x, bad, Mask::none),
                       "gqa_self_attention: n_heads must be a positive multiple of n_kv_heads: "
                       "given H = 4 and G = 3",
                       std::invalid_argument);
  bad = w;
  bad.n_kv_heads = 0;
  CHECK_THROWS_WITH_AS(gqa_self_attention(x, bad, Mask::none), doctest::Contains("given H = 4 and G = 0"),
                       std::invalid_argument);
  bad = w;
  bad.n_heads = 3;
  bad.n_kv_heads = 1;
  CHECK_THROWS_WITH_AS(gqa_self_attention(x, bad, Mask::none),
                       doctest::Contains("given 8 columns and 3 heads"), std::invalid_argument);
  bad = w;
  bad.wq = xt::zeros<float>({6, 8});
  CHECK_THROWS_WITH_AS(gqa_self_attention(x, bad, Mask::none),
                       "gqa_self_attention: rows of wq (d_model of x): expected 8, given 6",
                       std::invalid_argument);
  bad = w;
  bad.wk = xt::zeros<float>({8, 8});  // an MHA-sized key projection
  CHECK_THROWS_WITH_AS(gqa_self_attention(x, bad, Mask::none),
                       "gqa_self_attention: wk (d_model, G*D): expected shape (8, 4), given (8, 8)",
                       std::invalid_argument);
  bad = w;
  bad.wv = xt::zeros<float>({8, 2});
  CHECK_THROWS_WITH_AS(gqa_self_attention(x, bad, Mask::none),
                       doctest::Contains("wv (d_model, G*D): expected shape (8, 4), given (8, 2)"),
                       std::invalid_argument);
  bad = w;
  bad.wo = xt::zeros<float>({8, 6});
  CHECK_THROWS_WITH_AS(gqa_self_attention(x, bad, Mask::none),
                       doctest::Contains("wo (H*D, d_model): expected shape (8, 8), given (8, 6)"),
                       std::invalid_argument);
}
