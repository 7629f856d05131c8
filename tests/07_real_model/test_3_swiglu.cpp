// Lesson 07, part 3: the SwiGLU MLP of Llama.
#include "llama_model.hpp"

#include <cmath>

#include "attn/random.hpp"
#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("swiglu of one channel is silu(x a) * (x b) * c, computed by hand") {
  // x = 2, W_gate = 0.5, W_up = 3, W_down = -1: silu(1) * 6 * -1 = -6 / (1 + e^-1).
  const Tensor3 x = {{{2.0f}}};
  const Tensor2 gate = {{0.5f}}, up = {{3.0f}}, down = {{-1.0f}};
  const Tensor3 y = swiglu(x, gate, up, down);
  CHECK(y(0, 0, 0) == doctest::Approx(-6.0 / (1.0 + std::exp(-1.0))).epsilon(1e-6));
}

TEST_CASE("swiglu equals float64 loops on random weights") {
  const std::size_t dm = 13, ff = 29;
  const Tensor3 x = random_uniform<3>({2, 5, dm}, 21, -1.0f, 1.0f);
  const Tensor2 wg = random_uniform<2>({dm, ff}, 22, -0.5f, 0.5f);
  const Tensor2 wu = random_uniform<2>({dm, ff}, 23, -0.5f, 0.5f);
  const Tensor2 wd = random_uniform<2>({ff, dm}, 24, -0.5f, 0.5f);
  const Tensor3 y = swiglu(x, wg, wu, wd);
  xt::xtensor<double, 3> ref = xt::zeros<double>({std::size_t{2}, std::size_t{5}, dm});
  // The bound of each output, propagated by hand: g and u are dm-term float32 reductions
  // (error gamma_dm * sum |x w|); h = silu(g) u then errs by |silu'(g)| dg |u| + |silu(g)| du
  // plus a few roundings (|silu'| <= 1.1); the output sums ff terms h_j w_jo, each off by
  // dh_j |w_jo|, with a reduction error gamma_ff * sum |h_j w_jo| on top.
  double atol = 0.0;
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t t = 0; t < 5; ++t) {
      std::vector<double> h(ff), dh(ff);
      for (std::size_t j = 0; j < ff; ++j) {
        double g = 0.0, u = 0.0, g_abs = 0.0, u_abs = 0.0;
        for (std::size_t i = 0; i < dm; ++i) {
          g += double(x(b, t, i)) * wg(i, j);
          u += double(x(b, t, i)) * wu(i, j);
          g_abs += std::abs(double(x(b, t, i)) * wg(i, j));
          u_abs += std::abs(double(x(b, t, i)) * wu(i, j));
        }
        const double silu = g / (1.0 + std::exp(-g));
        h[j] = silu * u;
        dh[j] = 1.1 * gamma_n(dm) * g_abs * std::abs(u) + std::abs(silu) * gamma_n(dm) * u_abs +
                gamma_n(6) * std::abs(h[j]);
      }
      for (std::size_t o = 0; o < dm; ++o) {
        double s = 0.0, bound = 0.0;
        for (std::size_t j = 0; j < ff; ++j) {
          s += h[j] * wd(j, o);
          bound += dh[j] * std::abs(wd(j, o)) + gamma_n(ff) * std::abs(h[j] * wd(j, o));
        }
        ref(b, t, o) = s;
        atol = std::max(atol, bound);
      }
    }
  const Tolerance tol{atol, 0.0, "float32 errors of the two projections and silu, propagated"};
  ATTN_CHECK_CLOSE(y, ref, tol);
}

TEST_CASE("swiglu refuses weights whose shapes disagree, naming them") {
  const Tensor3 x = xt::ones<float>({1, 1, 4});
  const Tensor2 ok_in = xt::ones<float>({4, 6}), ok_down = xt::ones<float>({6, 4});
  CHECK_THROWS_WITH_AS(swiglu(x, xt::ones<float>({5, 6}), ok_in, ok_down),
                       doctest::Contains("expected 4, given 5"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(swiglu(x, ok_in, xt::ones<float>({4, 7}), ok_down),
                       doctest::Contains("w_up"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(swiglu(x, ok_in, ok_in, xt::ones<float>({7, 4})),
                       doctest::Contains("expected 6, given 7"), std::invalid_argument);
}
