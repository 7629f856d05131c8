// Lesson 03, part 1: repeat_kv, the expanded view of grouped keys and values.
#include "gqa.hpp"

#include "attn/testing.hpp"

using namespace attn;

namespace {
// A value that names its own index, so that a misplaced element is visible: 1000b + 100g + 10t + d.
float code(std::size_t b, std::size_t g, std::size_t t, std::size_t d) {
  return static_cast<float>(1000 * b + 100 * g + 10 * t + d);
}
}  // namespace

TEST_CASE("repeat_kv puts KV head h / n_rep in output head h (repeat_interleave order)") {
  for (auto [ng, n_rep] : {std::array<std::size_t, 2>{1, 1}, {1, 4}, {3, 1}, {2, 3}, {3, 2}, {4, 3}}) {
    CAPTURE(ng);
    CAPTURE(n_rep);
    const std::size_t nb = 2, t = 3, d = 5;
    Tensor4 kv({nb, ng, t, d});
    for (std::size_t b = 0; b < nb; ++b)
      for (std::size_t g = 0; g < ng; ++g)
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t c = 0; c < d; ++c) kv(b, g, i, c) = code(b, g, i, c);
    const Tensor4 out = repeat_kv(kv, n_rep);
    REQUIRE(out.shape() == std::array<std::size_t, 4>{nb, ng * n_rep, t, d});
    for (std::size_t b = 0; b < nb; ++b)
      for (std::size_t h = 0; h < ng * n_rep; ++h) {
        CAPTURE(h);
        for (std::size_t i = 0; i < t; ++i)
          for (std::size_t c = 0; c < d; ++c) CHECK(out(b, h, i, c) == code(b, h / n_rep, i, c));
      }
  }
}

TEST_CASE("repeat_kv of 2 KV heads by 3 gives heads 0,0,0,1,1,1, not the tile order 0,1,0,1,0,1") {
  Tensor4 kv({1, 2, 1, 1});
  kv(0, 0, 0, 0) = 10.0f;
  kv(0, 1, 0, 0) = 11.0f;
  const Tensor4 out = repeat_kv(kv, 3);
  REQUIRE(out.shape() == std::array<std::size_t, 4>{1, 6, 1, 1});
  const std::array<float, 6> interleaved{10, 10, 10, 11, 11, 11};
  for (std::size_t h = 0; h < 6; ++h) {
    CAPTURE(h);
    CHECK(out(0, h, 0, 0) == interleaved[h]);
  }
}

TEST_CASE("repeat_kv rejects n_rep = 0") {
  const Tensor4 kv = xt::zeros<float>({1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(repeat_kv(kv, 0), doctest::Contains("at least 1, given 0"),
                       std::invalid_argument);
}
