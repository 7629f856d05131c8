// Lesson 07, part 2: RMSNorm with the model's epsilon.
#include "llama_model.hpp"

#include <cmath>

#include "attn/random.hpp"
#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("rms_norm of (3, 4) with gains (1, 2) and eps 0 is (3, 8) / sqrt(12.5)") {
  const Tensor3 x = {{{3.0f, 4.0f}}};
  const Tensor1 gain = {1.0f, 2.0f};
  const Tensor3 y = rms_norm(x, gain, 0.0f);
  const double r = std::sqrt(12.5);
  CHECK(y(0, 0, 0) == doctest::Approx(3.0 / r).epsilon(1e-6));
  CHECK(y(0, 0, 1) == doctest::Approx(8.0 / r).epsilon(1e-6));
}

TEST_CASE("rms_norm adds the epsilon inside the root: tiny vectors are not blown up to unit size") {
  // mean(x^2) = 1e-6, so with eps = 1e-5 the result is 1e-3 / sqrt(1.1e-5) = 0.3015...,
  // not the 1.0 of a norm without epsilon.
  const Tensor3 x = {{{1e-3f, -1e-3f, 1e-3f, -1e-3f}}};
  const Tensor1 gain = {1.0f, 1.0f, 1.0f, 1.0f};
  const Tensor3 y = rms_norm(x, gain, 1e-5f);
  const double expected = 1e-3 / std::sqrt(1e-6 + 1e-5);
  for (std::size_t i = 0; i < 4; ++i)
    CHECK(std::abs(y(0, 0, i)) == doctest::Approx(expected).epsilon(1e-5));
}

TEST_CASE("rms_norm equals a float64 loop on random vectors of odd widths") {
  for (const std::size_t c : {1u, 7u, 576u}) {
    CAPTURE(c);
    const Tensor3 x = random_uniform<3>({2, 3, c}, 11 + c, -3.0f, 3.0f);
    const Tensor1 gain = random_uniform<1>({c}, 13 + c, 0.5f, 1.5f);
    const float eps = 1e-5f;
    const Tensor3 y = rms_norm(x, gain, eps);
    xt::xtensor<double, 3> ref = xt::zeros<double>({std::size_t{2}, std::size_t{3}, c});
    for (std::size_t b = 0; b < 2; ++b)
      for (std::size_t t = 0; t < 3; ++t) {
        double ss = 0.0;
        for (std::size_t i = 0; i < c; ++i) ss += double(x(b, t, i)) * x(b, t, i);
        const double inv = 1.0 / std::sqrt(ss / double(c) + eps);
        for (std::size_t i = 0; i < c; ++i) ref(b, t, i) = x(b, t, i) * inv * gain(i);
      }
    // The sum of squares is a c-term float32 reduction (relative gamma_c); the root, the
    // division and two products add a few roundings more.
    const Tolerance tol{0.0, gamma_n(c + 6), "float32 RMSNorm over " + std::to_string(c) + " channels"};
    ATTN_CHECK_CLOSE(y, ref, tol);
  }
}

TEST_CASE("rms_norm refuses a gain of the wrong length, naming both lengths") {
  const Tensor3 x = xt::ones<float>({1, 2, 5});
  const Tensor1 gain = xt::ones<float>({4});
  CHECK_THROWS_WITH_AS(rms_norm(x, gain, 1e-5f), doctest::Contains("expected 5, given 4"),
                       std::invalid_argument);
}
