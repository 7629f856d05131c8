// Lesson 01, part 2: scaled dot-product attention and multi-head attention.
#include "attention.hpp"

#include "attn/testing.hpp"

using namespace attn;

namespace {
struct Shape {
  std::size_t b, h, tq, tk, d, dv;
};
}  // namespace

TEST_CASE("attention equals a float64 reference on odd shapes") {
  for (const Shape s : {Shape{1, 1, 1, 1, 1, 1}, Shape{2, 3, 5, 7, 4, 3}, Shape{1, 2, 70, 70, 64, 64},
                        Shape{3, 1, 1, 33, 7, 9}, Shape{1, 4, 13, 2, 64, 1}}) {
    CAPTURE(s.b);
    CAPTURE(s.h);
    CAPTURE(s.tq);
    CAPTURE(s.tk);
    CAPTURE(s.d);
    const Tensor4 q = random_uniform<4>({s.b, s.h, s.tq, s.d}, 1);
    const Tensor4 k = random_uniform<4>({s.b, s.h, s.tk, s.d}, 2);
    const Tensor4 v = random_uniform<4>({s.b, s.h, s.tk, s.dv}, 3);
    const auto expected = ref::attention(q, k, v, false, 0);
    ATTN_CHECK_CLOSE(scaled_dot_product_attention(q, k, v), expected,
                     tol_attention(s.d, s.tk, 1.0, 1.0, 1.0));
  }
}

TEST_CASE("attention over a single key returns that key's value") {
  const Tensor4 q = random_uniform<4>({2, 3, 4, 5}, 7);
  const Tensor4 k = random_uniform<4>({2, 3, 1, 5}, 8);
  const Tensor4 v = random_uniform<4>({2, 3, 1, 6}, 9);
  const Tensor4 out = scaled_dot_product_attention(q, k, v);
  REQUIRE(out.shape(2) == 4);
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t h = 0; h < 3; ++h)
      for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t c = 0; c < 6; ++c) CHECK(out(b, h, i, c) == doctest::Approx(v(b, h, 0, c)).epsilon(1e-6));
}

TEST_CASE("attention scales scores by 1/sqrt(D)") {
  // Two keys, D = 4: scores q.k / 2 are 1 and 0, so the weights are e/(1+e) and 1/(1+e).
  const Tensor4 q = {{{{1, 1, 1, 1}}}};
  const Tensor4 k = {{{{0.5f, 0.5f, 0.5f, 0.5f}, {0, 0, 0, 0}}}};
  const Tensor4 v = {{{{1, 0}, {0, 1}}}};
  const Tensor4 out = scaled_dot_product_attention(q, k, v);
  const double e = std::exp(1.0);
  CHECK(out(0, 0, 0, 0) == doctest::Approx(e / (1 + e)).epsilon(1e-6));
  CHECK(out(0, 0, 0, 1) == doctest::Approx(1 / (1 + e)).epsilon(1e-6));
}

TEST_CASE("attention rejects mismatched shapes, naming expected and given") {
  const Tensor4 q = xt::zeros<float>({2, 3, 4, 8});
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, xt::zeros<float>({2, 3, 5, 7}), xt::zeros<float>({2, 3, 5, 8})),
                       doctest::Contains("expected 8, given 7"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, xt::zeros<float>({1, 3, 5, 8}), xt::zeros<float>({1, 3, 5, 8})),
                       doctest::Contains("expected 2, given 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, xt::zeros<float>({2, 3, 5, 8}), xt::zeros<float>({2, 3, 6, 8})),
                       doctest::Contains("expected 5, given 6"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, xt::zeros<float>({2, 2, 5, 8}), xt::zeros<float>({2, 2, 5, 8})),
                       doctest::Contains("expected 3, given 2"), std::invalid_argument);
}

TEST_CASE("split_heads puts channel h*D + d of token t in head h, row t, column d") {
  const std::size_t nb = 2, t = 3, nh = 4, d = 5;
  Tensor3 x({nb, t, nh * d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t c = 0; c < nh * d; ++c) x(b, i, c) = float(1000 * b + 100 * i + c);
  const Tensor4 y = split_heads(x, nh);
  REQUIRE(y.shape() == std::array<std::size_t, 4>{nb, nh, t, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t c = 0; c < d; ++c) CHECK(y(b, h, i, c) == float(1000 * b + 100 * i + h * d + c));
  const Tensor3 back = merge_heads(y);
  CHECK(back == x);
}

TEST_CASE("merge_heads puts head h, row t, column d at channel h*D + d of token t") {
  // Built by hand, not by split_heads, so that this test needs TODO(01.5) alone.
  const std::size_t nb = 2, nh = 3, t = 4, d = 2;
  Tensor4 y({nb, nh, t, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t i = 0; i < t; ++i)
        for (std::size_t c = 0; c < d; ++c) y(b, h, i, c) = float(1000 * b + 100 * i + 10 * h + c);
  const Tensor3 x = merge_heads(y);
  REQUIRE(x.shape() == std::array<std::size_t, 3>{nb, t, nh * d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t h = 0; h < nh; ++h)
        for (std::size_t c = 0; c < d; ++c) CHECK(x(b, i, h * d + c) == float(1000 * b + 100 * i + 10 * h + c));
}

TEST_CASE("split_heads rejects a head count that does not divide the channels") {
  const Tensor3 x = xt::zeros<float>({1, 2, 10});
  CHECK_THROWS_WITH_AS(split_heads(x, 3), doctest::Contains("10 channels and 3 heads"), std::invalid_argument);
  CHECK_THROWS_AS(split_heads(x, 0), std::invalid_argument);
}

TEST_CASE("multi-head attention equals a per-head float64 reference") {
  const std::size_t nb = 2, t = 7, d_model = 12, nh = 3, d = 4;
  const Tensor3 x = random_uniform<3>({nb, t, d_model}, 41);
  const float s = 1.0f / std::sqrt(float(d_model));
  MHAWeights w{random_uniform<2>({d_model, nh * d}, 42, -s, s), random_uniform<2>({d_model, nh * d}, 43, -s, s),
               random_uniform<2>({d_model, nh * d}, 44, -s, s), random_uniform<2>({nh * d, d_model}, 45, -s, s)};
  // Reference: project in float64, attend per head in float64, project back.
  const Tensor2 rows = xt::reshape_view(x, {nb * t, d_model});
  auto heads = [&](const Tensor2& weight) {
    const auto p = ref::matmul(rows, weight);  // (B*T, H*D)
    Tensor4 out({nb, nh, t, d});
    for (std::size_t b = 0; b < nb; ++b)
      for (std::size_t h = 0; h < nh; ++h)
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t c = 0; c < d; ++c) out(b, h, i, c) = float(p(b * t + i, h * d + c));
    return out;
  };
  const auto att = ref::attention(heads(w.wq), heads(w.wk), heads(w.wv), false, 0);
  xt::xtensor<double, 3> expected = xt::zeros<double>({nb, t, d_model});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t o = 0; o < d_model; ++o)
        for (std::size_t h = 0; h < nh; ++h)
          for (std::size_t c = 0; c < d; ++c) expected(b, i, o) += att(b, h, i, c) * double(w.wo(h * d + c, o));
  // The float32 rounding of q, k, v in the reference's own inputs is of the same
  // order as the attention error: bound each stage by its reduction length.
  const double proj = gamma_n(d_model) * d_model * s;      // error of a projected element
  const double attn_err = tol_attention(d, t, 1.0, 1.0, 1.0).atol + 4 * proj;
  ATTN_CHECK_CLOSE(multi_head_attention(x, w, nh), expected,
                   (Tolerance{nh * d * s * attn_err + gamma_n(nh * d) * nh * d * s, 0.0,
                              "projections, attention and output projection, each its float32 bound"}));
}

TEST_CASE("multi-head attention rejects projections of inconsistent shapes") {
  const Tensor3 x = xt::zeros<float>({1, 3, 8});
  MHAWeights w{xt::zeros<float>({8, 8}), xt::zeros<float>({8, 8}), xt::zeros<float>({8, 8}), xt::zeros<float>({8, 8})};
  MHAWeights bad = w;
  bad.wq = xt::zeros<float>({6, 8});
  CHECK_THROWS_WITH_AS(multi_head_attention(x, bad, 2), doctest::Contains("expected 8, given 6"), std::invalid_argument);
  bad = w;
  bad.wv = xt::zeros<float>({8, 4});
  CHECK_THROWS_WITH_AS(multi_head_attention(x, bad, 2), doctest::Contains("expected shape (8, 8), given (8, 4)"),
                       std::invalid_argument);
  CHECK_THROWS_AS(multi_head_attention(x, w, 3), std::invalid_argument);
}
