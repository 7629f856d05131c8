// Lesson 06, part 3: the column permutation that links the two pairings, as llama.cpp's
// converter applies it to the query and key projections of a Hugging Face checkpoint.
#include "rope.hpp"

#include <array>

#include "attention.hpp"
#include "attn/testing.hpp"
#include "rope_check.hpp"
#include "rope_reference.hpp"

using namespace attn;

namespace {
/// A (rows, n_heads*D) matrix whose column h*D + j holds 100 h + j in every row (+ 1000 r).
Tensor2 coded_columns(std::size_t rows, std::size_t n_heads, std::size_t d) {
  Tensor2 w({rows, n_heads * d});
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t h = 0; h < n_heads; ++h)
      for (std::size_t j = 0; j < d; ++j) w(r, h * d + j) = static_cast<float>(1000 * r + 100 * h + j);
  return w;
}
}  // namespace

TEST_CASE("half_split_to_adjacent puts column i + s D/2 of each head in column 2i + s: 0 4 1 5 2 6 3 7 for D = 8") {
  const std::size_t d = 8, heads = 3;
  const Tensor2 out = half_split_to_adjacent(coded_columns(2, heads, d), heads);
  REQUIRE(out.shape() == std::array<std::size_t, 2>{2, heads * d});
  const std::array<std::size_t, 8> order{0, 4, 1, 5, 2, 6, 3, 7};
  for (std::size_t r = 0; r < 2; ++r)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t j = 0; j < d; ++j) {
        CAPTURE(r);
        CAPTURE(h);
        CAPTURE(j);
        CHECK(out(r, h * d + j) == static_cast<float>(1000 * r + 100 * h + order[j]));
      }
}

TEST_CASE("adjacent_to_half_split puts column 2i + s of each head in column i + s D/2: 0 2 4 6 1 3 5 7 for D = 8") {
  const std::size_t d = 8, heads = 2;
  const Tensor2 out = adjacent_to_half_split(coded_columns(3, heads, d), heads);
  REQUIRE(out.shape() == std::array<std::size_t, 2>{3, heads * d});
  const std::array<std::size_t, 8> order{0, 2, 4, 6, 1, 3, 5, 7};
  for (std::size_t r = 0; r < 3; ++r)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t j = 0; j < d; ++j) {
        CAPTURE(r);
        CAPTURE(h);
        CAPTURE(j);
        CHECK(out(r, h * d + j) == static_cast<float>(1000 * r + 100 * h + order[j]));
      }
}

TEST_CASE("the permutation and its inverse round-trip, both ways, for D = 2 to 64 and 1 to 9 heads") {
  for (auto [heads, d] : {std::array<std::size_t, 2>{1, 2}, {1, 8}, {3, 6}, {9, 64}, {2, 10}}) {
    CAPTURE(heads);
    CAPTURE(d);
    const Tensor2 w = random_uniform<2>({5, heads * d}, 610 + d);
    CHECK(adjacent_to_half_split(half_split_to_adjacent(w, heads), heads) == w);
    CHECK(half_split_to_adjacent(adjacent_to_half_split(w, heads), heads) == w);
    if (d > 4) CHECK(half_split_to_adjacent(w, heads) != w);  // D = 2 and 4 are fixed points / involutions
  }
}

TEST_CASE("x permute(W) equals x W with every head's channels in the adjacent order") {
  const std::size_t d_model = 12, heads = 3, d = 8;
  const Tensor2 x = random_uniform<2>({7, d_model}, 611);
  const Tensor2 w = random_uniform<2>({d_model, heads * d}, 612);
  const Tensor2 plain = matmul(x, w), permuted = matmul(x, half_split_to_adjacent(w, heads));
  // The same products of the same numbers, in another column: equal up to float32 rounding.
  const Tolerance tol = tol_reduction(d_model, 2.0 * d_model);
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t j = 0; j < d; ++j) {
      CAPTURE(h);
      CAPTURE(j);
      const auto got = xt::view(permuted, xt::all(), h * d + j);
      const auto from = xt::view(plain, xt::all(), h * d + ref::adjacent_source(j, d));
      CHECK(xt::amax(xt::abs(got - from))() <= tol.atol);
    }
}

TEST_CASE("half-split RoPE on x W equals adjacent RoPE on x permute(W), channel for channel") {
  // Projected queries of 3 heads, D = 8, at positions 9 ... 13.
  const std::size_t b = 2, t = 5, d_model = 12, heads = 3, d = 8, first = 9;
  const Tensor3 x = random_uniform<3>({b, t, d_model}, 613);
  const Tensor2 w = random_uniform<2>({d_model, heads * d}, 614);
  auto project = [&](const Tensor2& weight) {
    const Tensor2 rows = xt::reshape_view(x, {b * t, d_model});
    const Tensor3 p = xt::reshape_view(matmul(rows, weight), {b, t, heads * d});
    return split_heads(p, heads);  // (B, H, T, D)
  };
  const Tensor4 hs = apply_rope(project(w), first, RopePairing::half_split);
  const Tensor4 adj = apply_rope(project(half_split_to_adjacent(w, heads)), first, RopePairing::adjacent);
  // Both within tol_rope (projection error included) of the same exact numbers: twice the bound apart.
  const double in_err = gamma_n(d_model) * d_model, x_max = d_model;  // |x|, |w| <= 1
  Tolerance tol = tol_rope(x_max, first + t - 1, in_err);
  tol.atol *= 2.0;
  ATTN_CHECK_CLOSE(adj, ref::to_adjacent_layout(hs), tol);
  ATTN_CHECK_CLOSE(adjacent_to_half_split(xt::reshape_view(adj, {b * heads * t, d}), 1),
                   xt::reshape_view(hs, {b * heads * t, d}), tol);
}

TEST_CASE("attention scores q . k are equal under both pairings once Wq and Wk are permuted (H = 4, G = 2)") {
  const std::size_t t = 6, d_model = 10, nh = 4, ng = 2, d = 6, first = 30;
  const Tensor3 x = random_uniform<3>({1, t, d_model}, 615);
  const Tensor2 wq = random_uniform<2>({d_model, nh * d}, 616);
  const Tensor2 wk = random_uniform<2>({d_model, ng * d}, 617);
  auto project = [&](const Tensor2& weight, std::size_t heads) {
    const Tensor2 rows = xt::reshape_view(x, {t, d_model});
    const Tensor3 p = xt::reshape_view(matmul(rows, weight), {std::size_t{1}, t, heads * d});
    return split_heads(p, heads);
  };
  const Tensor4 q_hs = apply_rope(project(wq, nh), first, RopePairing::half_split);
  const Tensor4 k_hs = apply_rope(project(wk, ng), first, RopePairing::half_split);
  const Tensor4 q_adj = apply_rope(project(half_split_to_adjacent(wq, nh), nh), first, RopePairing::adjacent);
  const Tensor4 k_adj = apply_rope(project(half_split_to_adjacent(wk, ng), ng), first, RopePairing::adjacent);
  const double in_err = gamma_n(d_model) * d_model;
  const double e = rope_element_error(double(d_model), first + t - 1, in_err);
  for (std::size_t h = 0; h < nh; ++h)
    for (std::size_t i = 0; i < t; ++i)
      for (std::size_t j = 0; j < t; ++j) {
        const std::size_t g = h / (nh / ng);
        const double qn = ref::norm(q_hs, h, i) + std::sqrt(double(d)) * e;  // bounds on the exact norms
        const double kn = ref::norm(k_hs, g, j) + std::sqrt(double(d)) * e;
        CAPTURE(h);
        CAPTURE(i);
        CAPTURE(j);
        CHECK(std::abs(ref::dot(q_hs, h, i, k_hs, g, j) - ref::dot(q_adj, h, i, k_adj, g, j)) <=
              2.0 * rope_dot_error(d, e, qn, e, kn));
      }
  // Without the permutation the adjacent pairing scores differently: the pairing is not a detail.
  const Tensor4 q_wrong = apply_rope(project(wq, nh), first, RopePairing::adjacent);
  const Tensor4 k_wrong = apply_rope(project(wk, ng), first, RopePairing::adjacent);
  CHECK(std::abs(ref::dot(q_hs, 0, 5, k_hs, 0, 0) - ref::dot(q_wrong, 0, 5, k_wrong, 0, 0)) > 1e-3);
}

TEST_CASE("the permutations reject a width that is not a multiple of the heads, and an odd head dimension") {
  const Tensor2 w = xt::zeros<float>({4, 12});
  CHECK_THROWS_WITH_AS(half_split_to_adjacent(w, 5), doctest::Contains("given 12 columns and 5 heads"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(adjacent_to_half_split(w, 0), doctest::Contains("given 12 columns and 0 heads"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(half_split_to_adjacent(w, 4), doctest::Contains("given D = 3"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(adjacent_to_half_split(w, 12), doctest::Contains("given D = 1"), std::invalid_argument);
}
