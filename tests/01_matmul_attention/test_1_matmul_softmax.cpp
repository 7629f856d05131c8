// Lesson 01, part 1: the matrix product and the softmax.
#include "attention.hpp"

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("matmul equals a float64 triple loop on odd shapes") {
  for (auto [m, k, n] : {std::array<std::size_t, 3>{1, 1, 1}, {3, 5, 7}, {17, 64, 9}, {2, 130, 33}}) {
    CAPTURE(m);
    CAPTURE(k);
    CAPTURE(n);
    const Tensor2 a = random_uniform<2>({m, k}, 11 + m);
    const Tensor2 b = random_uniform<2>({k, n}, 23 + n);
    // |a|, |b| <= 1, so each output sums at most k terms of magnitude <= 1.
    ATTN_CHECK_CLOSE(matmul(a, b), ref::matmul(a, b), tol_reduction(k, double(k)));
  }
}

TEST_CASE("matmul of a hand-computed 2x3 by 3x2 product") {
  const Tensor2 a = {{1, 2, 3}, {4, 5, 6}};
  const Tensor2 b = {{7, 8}, {9, 10}, {11, 12}};
  const Tensor2 expected = {{58, 64}, {139, 154}};
  ATTN_CHECK_CLOSE(matmul(a, b), expected, Tolerance{});  // small integers: exact in float32
}

TEST_CASE("matmul rejects mismatched inner dimensions, naming expected and given") {
  const Tensor2 a = xt::zeros<float>({2, 3});
  const Tensor2 b = xt::zeros<float>({4, 5});
  CHECK_THROWS_AS(matmul(a, b), std::invalid_argument);
  CHECK_THROWS_WITH(matmul(a, b), doctest::Contains("expected 3, given 4"));
}

TEST_CASE("softmax rows are non-negative and sum to 1") {
  const Tensor2 x = random_uniform<2>({9, 13}, 5, -4.0f, 4.0f);
  const Tensor2 y = softmax_rows(x);
  REQUIRE(y.shape(0) == 9);
  REQUIRE(y.shape(1) == 13);
  for (std::size_t i = 0; i < 9; ++i) {
    double row = 0.0;
    for (std::size_t j = 0; j < 13; ++j) {
      CHECK(y(i, j) >= 0.0f);
      row += y(i, j);
    }
    CAPTURE(i);
    CHECK(std::abs(row - 1.0) <= 13 * gamma_n(13 + 3));
  }
}

TEST_CASE("softmax equals a float64 reference") {
  for (auto [m, n] : {std::array<std::size_t, 2>{1, 1}, {4, 7}, {3, 70}, {31, 5}}) {
    CAPTURE(m);
    CAPTURE(n);
    const Tensor2 x = random_uniform<2>({m, n}, 100 + n, -6.0f, 6.0f);
    ATTN_CHECK_CLOSE(softmax_rows(x), ref::softmax_rows(x), tol_softmax(n));
  }
}

TEST_CASE("softmax is finite and correct at logits of +-1e4") {
  // exp(1e4) overflows float32 (max about 3.4e38 = exp(88.7)): only a softmax that
  // subtracts the row maximum survives this.
  const Tensor2 x = {{1e4f, 1e4f - 1.0f, 1e4f - 2.0f}, {-1e4f, -1e4f + 1.0f, -1e4f}, {1e4f, -1e4f, 0.0f}};
  const Tensor2 y = softmax_rows(x);
  REQUIRE(all_finite(y));
  ATTN_CHECK_CLOSE(y, ref::softmax_rows(x), tol_softmax(3));
}

TEST_CASE("softmax is unchanged when a constant is added to a row") {
  const Tensor2 x = random_uniform<2>({5, 8}, 77);
  Tensor2 shifted = x;
  for (std::size_t j = 0; j < 8; ++j) shifted(2, j) += 50.0f;  // exact: |x| < 1, 50 + x keeps 2^-18 steps
  // x + 50 is rounded to a multiple of 2^-18, so compare with the reference of the rounded input.
  ATTN_CHECK_CLOSE(softmax_rows(shifted), ref::softmax_rows(shifted), tol_softmax(8));
  const Tensor2 y = softmax_rows(x), ys = softmax_rows(shifted);
  for (std::size_t i : {0, 1, 3, 4})
    for (std::size_t j = 0; j < 8; ++j) CHECK(ys(i, j) == y(i, j));  // other rows untouched
}

TEST_CASE("softmax rejects rows with no logits") {
  const Tensor2 x = xt::zeros<float>({3, 0});
  CHECK_THROWS_AS(softmax_rows(x), std::invalid_argument);
  CHECK_THROWS_WITH(softmax_rows(x), doctest::Contains("given 0"));
}
