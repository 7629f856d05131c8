// Lesson 08, part 2: the row softmax, one block per row, with warp reductions.
#include "cuda_basics.hpp"

#include <xtensor/xview.hpp>

#include "attention.hpp"
#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("the device softmax equals the float64 reference at widths around the warp and block sizes") {
  for (const std::size_t cols : {1, 2, 31, 32, 33, 127, 128, 129, 1000}) {
    for (const std::size_t rows : {1, 3, 17}) {
      CAPTURE(rows);
      CAPTURE(cols);
      const Tensor2 x = random_uniform<2>({rows, cols}, 820 + cols, -5.0f, 5.0f);
      ATTN_CHECK_CLOSE(softmax_rows_gpu(x), ref::softmax_rows(x), tol_softmax(cols));
    }
  }
}

TEST_CASE("the device softmax is stable at logits of 1e4") {
  Tensor2 x = random_uniform<2>({5, 77}, 830, -3.0f, 3.0f);
  xt::view(x, 1) += 1e4f;
  xt::view(x, 3) -= 1e4f;
  const Tensor2 p = softmax_rows_gpu(x);
  CHECK(all_finite(p));
  ATTN_CHECK_CLOSE(p, ref::softmax_rows(x), tol_softmax(77));
}

TEST_CASE("the device softmax agrees with lesson 01's softmax_rows, and an empty row is refused") {
  const Tensor2 x = random_uniform<2>({9, 300}, 840, -8.0f, 8.0f);
  // Each is within tol_softmax of the exact softmax, so within twice that of each other.
  const Tolerance t = tol_softmax(300);
  ATTN_CHECK_CLOSE(softmax_rows_gpu(x), softmax_rows(x), (Tolerance{2 * t.atol, 2 * t.rtol, "2 tol_softmax"}));
  CHECK_THROWS_WITH_AS(softmax_rows_gpu(Tensor2({3, 0})),
                       "softmax_rows_gpu: each row needs at least one logit, given 0 columns",
                       std::invalid_argument);
}
