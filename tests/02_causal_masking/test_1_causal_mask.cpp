// Lesson 02, part 1: the causal mask with a query offset.
#include "causal.hpp"

#include <cstdint>
#include <limits>

#include "attn/testing.hpp"

using namespace attn;

namespace {
using BoolMatrix = xt::xtensor<bool, 2>;

// A mask written by hand as rows of 0/1, so that the expected pattern reads as a picture.
BoolMatrix from_bits(std::initializer_list<std::initializer_list<int>> rows) {
  const std::size_t tq = rows.size(), tk = rows.begin()->size();
  BoolMatrix m({tq, tk});
  std::size_t i = 0;
  for (const auto& row : rows) {
    std::size_t j = 0;
    for (int bit : row) m(i, j++) = bit != 0;
    ++i;
  }
  return m;
}

// Compares two masks and names every differing entry.
void check_mask(const BoolMatrix& got, const BoolMatrix& expected) {
  REQUIRE(got.shape(0) == expected.shape(0));
  REQUIRE(got.shape(1) == expected.shape(1));
  for (std::size_t i = 0; i < expected.shape(0); ++i)
    for (std::size_t j = 0; j < expected.shape(1); ++j) {
      CAPTURE(i);
      CAPTURE(j);
      CHECK(got(i, j) == expected(i, j));
    }
}
}  // namespace

TEST_CASE("the square causal mask is lower triangular, diagonal included") {
  check_mask(causal_mask(4, 4, 0), from_bits({{1, 0, 0, 0},  //
                                              {1, 1, 0, 0},
                                              {1, 1, 1, 0},
                                              {1, 1, 1, 1}}));
}

TEST_CASE("with q_offset = Tk - Tq the mask is aligned bottom-right (Tq = 3, Tk = 5)") {
  // Query rows sit at positions 2, 3, 4: the last row sees every key.
  check_mask(causal_mask(3, 5, 2), from_bits({{1, 1, 1, 0, 0},  //
                                              {1, 1, 1, 1, 0},
                                              {1, 1, 1, 1, 1}}));
}

TEST_CASE("with q_offset = 0 the mask is PyTorch's top-left is_causal mask (Tq = 3, Tk = 5)") {
  check_mask(causal_mask(3, 5, 0), from_bits({{1, 0, 0, 0, 0},  //
                                              {1, 1, 0, 0, 0},
                                              {1, 1, 1, 0, 0}}));
}

TEST_CASE("a block of queries in the middle sees the keys up to its own positions") {
  // Rows at positions 1 and 2 of 6 keys, as in the second chunk of a chunked prefill.
  check_mask(causal_mask(2, 6, 1), from_bits({{1, 1, 0, 0, 0, 0},  //
                                              {1, 1, 1, 0, 0, 0}}));
}

TEST_CASE("a single decode query at position p sees keys 0 ... p and nothing after") {
  check_mask(causal_mask(1, 6, 5), from_bits({{1, 1, 1, 1, 1, 1}}));  // the newest token
  check_mask(causal_mask(1, 6, 3), from_bits({{1, 1, 1, 1, 0, 0}}));  // position 3 of 6 keys
  check_mask(causal_mask(1, 6, 0), from_bits({{1, 0, 0, 0, 0, 0}}));  // the first token
}

TEST_CASE("query i may attend key j exactly when j <= q_offset + i, for every small shape") {
  for (std::size_t tk = 0; tk <= 7; ++tk)
    for (std::size_t tq = 0; tq <= tk; ++tq)
      for (std::size_t off = 0; off + tq <= tk; ++off) {
        CAPTURE(tq);
        CAPTURE(tk);
        CAPTURE(off);
        const BoolMatrix m = causal_mask(tq, tk, off);
        REQUIRE(m.shape(0) == tq);
        REQUIRE(m.shape(1) == tk);
        std::size_t allowed = 0;
        for (std::size_t i = 0; i < tq; ++i)
          for (std::size_t j = 0; j < tk; ++j) {
            allowed += m(i, j) ? 1 : 0;
            if (m(i, j) != (j <= off + i)) FAIL_CHECK("wrong entry at i = " << i << ", j = " << j);
          }
        // Row i allows off + i + 1 keys: tq (off + 1) + tq (tq - 1) / 2 in all.
        CHECK(allowed == tq * (off + 1) + tq * (tq - 1) / 2);
      }
}

TEST_CASE("a query placed past the last key is out_of_range, naming expected and given") {
  CHECK_THROWS_WITH_AS(causal_mask(3, 5, 3),
                       doctest::Contains("expected q_offset + Tq <= Tk = 5, given q_offset = 3 and Tq = 3"),
                       std::out_of_range);
  // Decode with the offset set to the number of keys (one past the newest position).
  CHECK_THROWS_WITH_AS(causal_mask(1, 5, 5), doctest::Contains("given q_offset = 5 and Tq = 1"),
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(causal_mask(6, 5, 0), doctest::Contains("given q_offset = 0 and Tq = 6"),
                       std::out_of_range);
  // An offset so large that q_offset + Tq would wrap around to a small number.
  CHECK_THROWS_AS(causal_mask(2, 5, std::numeric_limits<std::size_t>::max()), std::out_of_range);
}
