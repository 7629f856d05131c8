// Lesson 02, part 2: the masked softmax.
#include "causal.hpp"

#include <cmath>
#include <limits>

#include "attn/testing.hpp"

using namespace attn;

namespace {
using BoolMatrix = xt::xtensor<bool, 2>;

// A random mask with at least one allowed entry in every row (entry `keep` of row i).
BoolMatrix random_mask(std::size_t m, std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  BoolMatrix mask({m, n});
  for (auto& x : mask) x = rng.uniform(0.0f, 1.0f) < 0.5f;
  for (std::size_t i = 0; i < m; ++i) mask(i, (i * 7 + seed) % n) = true;
  return mask;
}

// Float64 softmax of each row over its allowed entries, written from the definition.
ref::Matrix masked_softmax_ref(const Tensor2& x, const BoolMatrix& mask) {
  ref::Matrix y = xt::zeros<double>({x.shape(0), x.shape(1)});
  for (std::size_t i = 0; i < x.shape(0); ++i) {
    double m = -std::numeric_limits<double>::infinity(), s = 0.0;
    for (std::size_t j = 0; j < x.shape(1); ++j)
      if (mask(i, j)) m = std::max(m, double(x(i, j)));
    for (std::size_t j = 0; j < x.shape(1); ++j)
      if (mask(i, j)) s += std::exp(double(x(i, j)) - m);
    for (std::size_t j = 0; j < x.shape(1); ++j)
      if (mask(i, j)) y(i, j) = std::exp(double(x(i, j)) - m) / s;
  }
  return y;
}
}  // namespace

TEST_CASE("masked softmax rows sum to 1 over the allowed keys and are exactly 0 elsewhere") {
  const std::size_t m = 9, n = 13;
  const Tensor2 x = random_uniform<2>({m, n}, 31, -4.0f, 4.0f);
  const BoolMatrix mask = random_mask(m, n, 32);
  const Tensor2 y = masked_softmax_rows(x, mask);
  REQUIRE(y.shape(0) == m);
  REQUIRE(y.shape(1) == n);
  for (std::size_t i = 0; i < m; ++i) {
    CAPTURE(i);
    double row = 0.0;
    for (std::size_t j = 0; j < n; ++j) {
      CAPTURE(j);
      if (mask(i, j)) {
        CHECK(y(i, j) >= 0.0f);
        row += y(i, j);
      } else {
        CHECK(y(i, j) == 0.0f);  // exactly: a masked key takes no weight at all
      }
    }
    CHECK(std::abs(row - 1.0) <= n * gamma_n(n + 3));
  }
}

TEST_CASE("masked softmax equals a float64 softmax over the allowed keys only") {
  for (auto [m, n] : {std::array<std::size_t, 2>{1, 1}, {4, 7}, {3, 70}, {31, 5}}) {
    CAPTURE(m);
    CAPTURE(n);
    const Tensor2 x = random_uniform<2>({m, n}, 200 + n, -6.0f, 6.0f);
    const BoolMatrix mask = random_mask(m, n, 300 + n);
    ATTN_CHECK_CLOSE(masked_softmax_rows(x, mask), masked_softmax_ref(x, mask), tol_softmax(n));
  }
}

TEST_CASE("with a causal mask the first row puts all its weight on key 0") {
  const Tensor2 x = random_uniform<2>({4, 4}, 41, -3.0f, 3.0f);
  const Tensor2 y = masked_softmax_rows(x, causal_mask(4, 4, 0));
  CHECK(y(0, 0) == 1.0f);
  for (std::size_t j = 1; j < 4; ++j) CHECK(y(0, j) == 0.0f);
  ATTN_CHECK_CLOSE(y, masked_softmax_ref(x, causal_mask(4, 4, 0)), tol_softmax(4));
}

TEST_CASE("masked logits never matter, not even when they are infinite or NaN") {
  const std::size_t m = 5, n = 8;
  const Tensor2 x = random_uniform<2>({m, n}, 51, -2.0f, 2.0f);
  const BoolMatrix mask = random_mask(m, n, 52);
  Tensor2 wild = x;
  const float inf = std::numeric_limits<float>::infinity();
  const float poison[] = {inf, -inf, std::numeric_limits<float>::quiet_NaN(), 1e30f, 50.0f};
  std::size_t next = 0;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j)
      if (!mask(i, j)) wild(i, j) = poison[next++ % 5];
  const Tensor2 y = masked_softmax_rows(x, mask), y_wild = masked_softmax_rows(wild, mask);
  REQUIRE(all_finite(y_wild));
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      CHECK(y_wild(i, j) == y(i, j));
    }
}

TEST_CASE("masked softmax is finite and correct at logits of 1e4") {
  // exp(1e4) overflows float32; the shift must use the largest allowed logit.
  const Tensor2 x = {{1e4f, 1e4f - 1.0f, 1e4f - 2.0f, 0.0f},
                     {-1e4f, -1e4f + 1.0f, 1e4f, -1e4f},
                     {1e4f, -1e4f, 0.0f, 1e4f}};
  const BoolMatrix mask = {{true, true, true, false},
                           {true, true, false, false},  // the 1e4 is masked: rows keep -1e4 logits
                           {false, true, true, false}};
  const Tensor2 y = masked_softmax_rows(x, mask);
  REQUIRE(all_finite(y));
  ATTN_CHECK_CLOSE(y, masked_softmax_ref(x, mask), tol_softmax(4));
}

TEST_CASE("a row with no allowed key is an error that names the row") {
  const Tensor2 x = random_uniform<2>({4, 3}, 61);
  BoolMatrix mask = random_mask(4, 3, 62);
  for (std::size_t j = 0; j < 3; ++j) mask(2, j) = false;
  CHECK_THROWS_WITH_AS(masked_softmax_rows(x, mask), doctest::Contains("row 2 has no allowed key"),
                       std::invalid_argument);
}

TEST_CASE("masked softmax rejects a mask of another shape, naming expected and given") {
  const Tensor2 x = random_uniform<2>({3, 4}, 71);
  const BoolMatrix mask = random_mask(3, 5, 72);
  CHECK_THROWS_WITH_AS(masked_softmax_rows(x, mask), doctest::Contains("expected shape (3, 4), given (3, 5)"),
                       std::invalid_argument);
}
