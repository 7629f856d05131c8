// Lesson 06, part 1: the frequencies of the rotary embedding, omega_i = theta^(-2i/D).
#include "rope.hpp"

#include <cmath>

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("RoPE frequencies are theta^(-2i/D): 1, 0.1, 0.01, 0.001 for D = 8, theta = 10^4") {
  const std::vector<double> omega = rope_frequencies(8, 10000.0);
  REQUIRE(omega.size() == 4);
  const double expected[] = {1.0, 0.1, 0.01, 0.001};
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(omega[i] == doctest::Approx(expected[i]).epsilon(1e-14));
  }
}

TEST_CASE("RoPE frequencies fall geometrically by theta^(-2/D) from omega_0 = 1, D = 2 to 128") {
  for (std::size_t d : {2u, 6u, 64u, 128u})
    for (double theta : {100.0, 10000.0, 500000.0}) {
      CAPTURE(d);
      CAPTURE(theta);
      const std::vector<double> omega = rope_frequencies(d, theta);
      REQUIRE(omega.size() == d / 2);
      CHECK(omega[0] == 1.0);
      const double ratio = std::pow(theta, -2.0 / static_cast<double>(d));
      for (std::size_t i = 1; i < omega.size(); ++i) {
        CAPTURE(i);
        CHECK(omega[i] / omega[i - 1] == doctest::Approx(ratio).epsilon(1e-13));
      }
      // The slowest pair: theta^(-(D-2)/D), a wavelength of about theta / (2 pi) ... theta * 2 pi.
      CHECK(omega.back() ==
            doctest::Approx(std::pow(theta, -static_cast<double>(d - 2) / static_cast<double>(d)))
                .epsilon(1e-13));
    }
}

TEST_CASE("RoPE frequencies reject an odd or zero head dimension") {
  CHECK_THROWS_WITH_AS(rope_frequencies(7), doctest::Contains("must be even and positive, given D = 7"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(rope_frequencies(0), doctest::Contains("given D = 0"), std::invalid_argument);
}

TEST_CASE("RoPE frequencies reject a base theta that is not a finite positive number") {
  for (double theta : {0.0, -10000.0, double(INFINITY), double(NAN)}) {
    CAPTURE(theta);
    CHECK_THROWS_WITH_AS(rope_frequencies(8, theta), doctest::Contains("theta must be a finite positive"),
                         std::invalid_argument);
  }
}
