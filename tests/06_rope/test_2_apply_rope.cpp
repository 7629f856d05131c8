// Lesson 06, part 2: apply_rope, the rotation of every pair of channels by position * omega_i.
#include "rope.hpp"

#include <cmath>

#include "attn/testing.hpp"
#include "rope_check.hpp"
#include "rope_reference.hpp"

using namespace attn;

namespace {
constexpr RopePairing kBoth[] = {RopePairing::adjacent, RopePairing::half_split};
const char* name(RopePairing p) { return p == RopePairing::adjacent ? "adjacent" : "half_split"; }
}  // namespace

TEST_CASE("RoPE at position 0 is the identity, for both pairings") {
  const Tensor4 x = random_uniform<4>({2, 3, 4, 8}, 601);
  for (RopePairing pairing : kBoth) {
    CAPTURE(name(pairing));
    const Tensor4 y = apply_rope(x, 0, pairing);
    REQUIRE(y.shape() == x.shape());
    // cos 0 = 1 and sin 0 = 0 exactly: row 0 comes back bit for bit; row 1 (position 1) does not.
    CHECK(xt::view(y, xt::all(), xt::all(), 0) == xt::view(x, xt::all(), xt::all(), 0));
    CHECK(xt::view(y, xt::all(), xt::all(), 1) != xt::view(x, xt::all(), xt::all(), 1));
  }
}

TEST_CASE("one pair (D = 2) at position p is turned counter-clockwise by p radians") {
  Tensor4 x({1, 1, 5, 2});
  for (std::size_t t = 0; t < 5; ++t) x(0, 0, t, 0) = 1.0f, x(0, 0, t, 1) = 0.0f;
  for (std::size_t first : {0u, 3u, 1000u}) {
    CAPTURE(first);
    const Tensor4 y = apply_rope(x, first, RopePairing::adjacent);
    xt::xtensor<double, 4> expected({1, 1, 5, 2});
    for (std::size_t t = 0; t < 5; ++t) {
      const double p = static_cast<double>(first + t);
      expected(0, 0, t, 0) = std::cos(p);  // (1, 0) -> (cos p, sin p)
      expected(0, 0, t, 1) = std::sin(p);
    }
    ATTN_CHECK_CLOSE(y, expected, tol_rope(1.0, first + 4));
  }
}

namespace {
// theta = 100, D = 4: omega = (1, 100^(-1/2)) = (1, 0.1); position 1 turns pair 0 by 1 rad
// and pair 1 by 0.1 rad. x = (1, 2, 3, 4).
Tensor4 one_two_three_four() {
  Tensor4 x({1, 1, 1, 4});
  x(0, 0, 0, 0) = 1, x(0, 0, 0, 1) = 2, x(0, 0, 0, 2) = 3, x(0, 0, 0, 3) = 4;
  return x;
}
const double c1 = std::cos(1.0), s1 = std::sin(1.0), c01 = std::cos(0.1), s01 = std::sin(0.1);
}  // namespace

TEST_CASE("adjacent pairs are (2i, 2i+1): D = 4 by hand, (x0, x1) by 1 rad, (x2, x3) by 0.1 rad") {
  xt::xtensor<double, 4> e({1, 1, 1, 4});
  e(0, 0, 0, 0) = 1 * c1 - 2 * s1, e(0, 0, 0, 1) = 1 * s1 + 2 * c1;
  e(0, 0, 0, 2) = 3 * c01 - 4 * s01, e(0, 0, 0, 3) = 3 * s01 + 4 * c01;
  ATTN_CHECK_CLOSE(apply_rope(one_two_three_four(), 1, RopePairing::adjacent, 100.0), e, tol_rope(4.0, 1));
}

TEST_CASE("half-split pairs are (i, i+D/2): D = 4 by hand, (x0, x2) by 1 rad, (x1, x3) by 0.1 rad") {
  xt::xtensor<double, 4> e({1, 1, 1, 4});
  e(0, 0, 0, 0) = 1 * c1 - 3 * s1, e(0, 0, 0, 2) = 1 * s1 + 3 * c1;
  e(0, 0, 0, 1) = 2 * c01 - 4 * s01, e(0, 0, 0, 3) = 2 * s01 + 4 * c01;
  ATTN_CHECK_CLOSE(apply_rope(one_two_three_four(), 1, RopePairing::half_split, 100.0), e, tol_rope(4.0, 1));
}

TEST_CASE("RoPE equals a float64 rotation at positions up to 10^5, both pairings, several D and theta") {
  // At p = 10^5 an angle formed in float32 is off by about 6e-3 rad: far outside the bound.
  struct Case { std::size_t b, h, t, d, first; double theta; };
  for (const Case c : {Case{2, 3, 7, 8, 0, 10000.0}, Case{1, 2, 5, 6, 41, 10000.0},
                       Case{1, 4, 3, 64, 4093, 10000.0}, Case{2, 1, 4, 16, 99996, 500000.0},
                       Case{1, 2, 3, 2, 12345, 100.0}}) {
    CAPTURE(c.d);
    CAPTURE(c.first);
    CAPTURE(c.theta);
    const Tensor4 x = random_uniform<4>({c.b, c.h, c.t, c.d}, 602 + c.first, -2.0f, 2.0f);
    for (RopePairing pairing : kBoth) {
      CAPTURE(name(pairing));
      ATTN_CHECK_CLOSE(apply_rope(x, c.first, pairing, c.theta),
                       ref::rope(x, c.first, pairing == RopePairing::adjacent, c.theta),
                       tol_rope(2.0, c.first + c.t - 1));
    }
  }
}

TEST_CASE("row t of the input sits at position first_position + t") {
  const Tensor4 x = random_uniform<4>({2, 2, 6, 8}, 603);
  for (RopePairing pairing : kBoth) {
    CAPTURE(name(pairing));
    const Tensor4 all = apply_rope(x, 17, pairing);
    for (std::size_t t = 0; t < 6; ++t) {
      CAPTURE(t);
      const Tensor4 row = xt::view(x, xt::all(), xt::all(), xt::range(t, t + 1));
      const Tensor4 alone = apply_rope(row, 17 + t, pairing);
      const Tensor4 from_all = xt::view(all, xt::all(), xt::all(), xt::range(t, t + 1));
      ATTN_CHECK_CLOSE(alone, ref::rope(row, 17 + t, pairing == RopePairing::adjacent),
                       tol_rope(1.0, 17 + t));
      ATTN_CHECK_CLOSE(from_all, ref::rope(row, 17 + t, pairing == RopePairing::adjacent),
                       tol_rope(1.0, 17 + t));
    }
  }
}

TEST_CASE("RoPE preserves the norm of every row and of every rotated pair") {
  const std::size_t d = 16, first = 250;
  const Tensor4 x = random_uniform<4>({1, 3, 5, d}, 604);
  const double e = rope_element_error(1.0, first + 4);  // per element
  for (RopePairing pairing : kBoth) {
    CAPTURE(name(pairing));
    const Tensor4 y = apply_rope(x, first, pairing);
    for (std::size_t h = 0; h < 3; ++h)
      for (std::size_t t = 0; t < 5; ++t) {
        CAPTURE(h);
        CAPTURE(t);
        // |y| - |y_exact| <= |y - y_exact| <= sqrt(D) e, and |y_exact| = |x|.
        CHECK(std::abs(ref::norm(y, h, t) - ref::norm(x, h, t)) <= std::sqrt(double(d)) * e);
        for (std::size_t i = 0; i < d / 2; ++i) {
          const std::size_t a = pairing == RopePairing::adjacent ? 2 * i : i;
          const std::size_t b = pairing == RopePairing::adjacent ? 2 * i + 1 : i + d / 2;
          const double before = std::hypot(double(x(0, h, t, a)), double(x(0, h, t, b)));
          const double after = std::hypot(double(y(0, h, t, a)), double(y(0, h, t, b)));
          CAPTURE(i);
          CHECK(std::abs(after - before) <= std::sqrt(2.0) * e);
        }
      }
  }
}

TEST_CASE("q . k after RoPE depends only on m - n, at absolute offsets up to 65536") {
  // q at position m, k at position n, both shifted by the same offset: the score must not move.
  const std::size_t d = 16;
  const Tensor4 q = random_uniform<4>({1, 1, 1, d}, 605);
  const Tensor4 k = random_uniform<4>({1, 1, 1, d}, 606);
  const double qn = ref::norm(q, 0, 0), kn = ref::norm(k, 0, 0);
  for (RopePairing pairing : kBoth) {
    CAPTURE(name(pairing));
    auto score = [&](std::size_t m, std::size_t n) {
      return ref::dot(apply_rope(q, m, pairing), 0, 0, apply_rope(k, n, pairing), 0, 0);
    };
    for (auto [m, n] : {std::array<std::size_t, 2>{0, 0}, {3, 0}, {0, 3}, {7, 2}, {50, 1}, {1, 40}}) {
      const double base = score(m, n);
      for (std::size_t offset : {1u, 17u, 1000u, 65536u}) {
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(offset);
        const double e = rope_element_error(1.0, std::max(m, n) + offset);
        // Each score is within rope_dot_error of the exact one, and the exact ones are equal.
        CHECK(std::abs(score(m + offset, n + offset) - base) <= 2.0 * rope_dot_error(d, e, qn, e, kn));
      }
    }
    // ... and it does depend on m - n: distances 0, 1, 5 and 30 give different scores.
    const double e = rope_element_error(1.0, 30);
    const double tol = 2.0 * rope_dot_error(d, e, qn, e, kn);
    CHECK(std::abs(score(0, 0) - score(1, 0)) > 10 * tol);
    CHECK(std::abs(score(5, 0) - score(0, 5)) > 10 * tol);
    CHECK(std::abs(score(30, 0) - score(1, 0)) > 10 * tol);
  }
}

TEST_CASE("apply_rope rejects an odd head dimension") {
  const Tensor4 x = xt::zeros<float>({1, 2, 3, 5});
  CHECK_THROWS_WITH_AS(apply_rope(x, 0, RopePairing::adjacent),
                       doctest::Contains("must be even and positive, given D = 5"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(apply_rope(x, 4, RopePairing::half_split),
                       doctest::Contains("given D = 5"), std::invalid_argument);
}
