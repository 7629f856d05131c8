// Lesson 11, part 1: the backward of the matrix product and of the row softmax, against
// central differences of float64 forwards (common/attn/gradcheck.hpp).
#include "backward.hpp"

#include <array>

#include "attention.hpp"
#include "causal.hpp"
#include "gradient_check.hpp"

using namespace attn;
using attn::testing_grad::check_gradient;

TEST_CASE("matmul_backward equals central differences of the float64 product on odd shapes") {
  std::uint64_t seed = 1100;
  for (const auto [m, kk, n] : {std::array<std::size_t, 3>{1, 1, 1}, {3, 5, 7}, {9, 2, 4}, {17, 16, 5}}) {
    CAPTURE(m);
    CAPTURE(kk);
    CAPTURE(n);
    const Tensor2 a = random_uniform<2>({m, kk}, ++seed), b = random_uniform<2>({kk, n}, ++seed);
    const Tensor2 dc = random_uniform<2>({m, n}, ++seed);
    const MatmulGrads g = matmul_backward(a, b, dc);
    const ref::Matrix a64 = a, b64 = b;
    // L = sum dC o (A B) is linear in A and in B: no truncation error (M3 = 0). dA(i, k) is
    // a sum of N terms |dC(i, j) B(k, j)| <= 1, dB(k, j) one of M terms.
    const double eps64 = gamma64(kk) * static_cast<double>(kk);
    check_gradient("dA", g.da, a, [&](const ref::Matrix& x) { return ref::matmul(x, b64); }, dc, eps64,
                   tol_reduction(n, static_cast<double>(n)).atol, 0.0, ++seed);
    check_gradient("dB", g.db, b, [&](const ref::Matrix& x) { return ref::matmul(a64, x); }, dc, eps64,
                   tol_reduction(m, static_cast<double>(m)).atol, 0.0, ++seed);
  }
}

namespace {
// float32 error of softmax_rows_backward(P, dP) for P = softmax_rows(x) of n logits with
// |x| <= 1 and |dP| <= 1: P is off by a relative eps_P = gamma_{n+3} + 2u (the shift by the row
// maximum adds u |x - m| <= 2u); delta = sum P dP by eps_P + gamma_n; dS = P (dP - delta) with
// |dP - delta| <= 2, so |error| <= 2 eps_P + (eps_P + gamma_n) + 4u (common/attn/gradcheck.hpp).
double softmax_backward_error(std::size_t n) {
  const double ep = gamma_n(n + 3) + 2.0 * kUnitRoundoff;
  return 3.0 * ep + gamma_n(n) + 4.0 * kUnitRoundoff;
}
}  // namespace

TEST_CASE("softmax_rows_backward equals central differences of the float64 softmax, and each row of dS sums to 0") {
  std::uint64_t seed = 1200;
  for (const auto [rows, n] : {std::array<std::size_t, 2>{1, 1}, {3, 2}, {4, 7}, {5, 33}}) {
    CAPTURE(rows);
    CAPTURE(n);
    const Tensor2 x = random_uniform<2>({rows, n}, ++seed), dp = random_uniform<2>({rows, n}, ++seed);
    const Tensor2 ds = softmax_rows_backward(softmax_rows(x), dp);
    // Moving one logit moves one entry of a softmax: M3 <= 8 max|dP| e^{2h} (gradcheck.hpp
    // item 2, with A = 1 and p_j <= 1); the float64 softmax is off by gamma64_{n+3} + 2 u64.
    check_gradient("dS", ds, x, [](const ref::Matrix& s) { return ref::softmax_rows(s); }, dp,
                   gamma64(n + 3) + 2.0 * kUnitRoundoff64, softmax_backward_error(n),
                   8.0 * std::exp(2.0 * kFdStep), ++seed);
    // Adding a constant to a row changes no probability, so dS has no component along (1, ..., 1).
    for (std::size_t i = 0; i < rows; ++i) {
      double sum = 0.0;
      for (std::size_t j = 0; j < n; ++j) sum += ds(i, j);
      CHECK(std::abs(sum) <= static_cast<double>(n) * softmax_backward_error(n) + gamma_n(n) * static_cast<double>(n));
    }
  }
}

TEST_CASE("softmax_rows_backward gives exactly 0 where the causal mask hid the key") {
  const Tensor2 x = random_uniform<2>({4, 9}, 1301), dp = random_uniform<2>({4, 9}, 1302);
  const auto mask = causal_mask(4, 9, 5);
  const Tensor2 ds = softmax_rows_backward(masked_softmax_rows(x, mask), dp);
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < 4; ++i)
    for (std::size_t j = 0; j < 9; ++j) {
      if (!mask(i, j)) CHECK(ds(i, j) == 0.0f);
      nonzero += mask(i, j) && ds(i, j) != 0.0f;
    }
  CHECK(nonzero > 0);
}

TEST_CASE("matmul_backward and softmax_rows_backward refuse shapes that do not fit") {
  const Tensor2 a = random_uniform<2>({2, 3}, 1401), b = random_uniform<2>({3, 4}, 1402);
  const MatmulGrads g = matmul_backward(a, b, xt::ones<float>({2, 4}));
  CHECK(g.da.shape() == a.shape());
  CHECK(softmax_rows_backward(xt::ones<float>({2, 2}) * 0.5f, xt::ones<float>({2, 2}))(0, 0) == 0.0f);
  CHECK_THROWS_WITH_AS(matmul_backward(a, Tensor2({4, 4}), Tensor2({2, 4})),
                       "matmul_backward: rows of b (the inner dimension, columns of a): expected 3, given 4",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(matmul_backward(a, b, Tensor2({4, 2})),
                       "matmul_backward: dc (rows of a, columns of b): expected shape (2, 4), given (4, 2)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(softmax_rows_backward(Tensor2({2, 3}), Tensor2({3, 2})),
                       "softmax_rows_backward: dp (the shape of p): expected shape (2, 3), given (3, 2)",
                       std::invalid_argument);
}
