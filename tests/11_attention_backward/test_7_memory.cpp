// Lesson 11, part 7: the flash backward never holds a (Tq, Tk) matrix. A counting operator new
// (counting_new.hpp: this test executable's only replacement of the global allocation
// functions) measures the peak of the bytes a call allocates beyond those allocated before it.
#include "backward.hpp"

#include "counting_new.hpp"
#include "gradient_check.hpp"

using namespace attn;
using attn::counting::peak_extra_bytes;

TEST_CASE("the flash backward's peak extra allocation grows linearly in T, the naive backward's quadratically") {
  const std::size_t nb = 1, nh = 2, ng = 1, d = 8;
  for (const std::size_t tile : {std::size_t{4}, std::size_t{8}}) {
    std::size_t flash[2], naive[2];
    for (std::size_t n = 0; n < 2; ++n) {
      const std::size_t t = (n + 1) * 48;  // T and 2T, both larger than the tile
      const Tensor4 q = random_uniform<4>({nb, nh, t, d}, 7100 + t), k = random_uniform<4>({nb, ng, t, d}, 7200 + t);
      const Tensor4 v = random_uniform<4>({nb, ng, t, d}, 7300 + t), dout = random_uniform<4>({nb, nh, t, d}, 7400 + t);
      const FlashForward f = flash_attention_forward(q, k, v, Mask::causal, 0, tile);
      flash[n] = peak_extra_bytes([&] { flash_attention_backward(q, k, v, f, dout, Mask::causal, 0, tile); });
      naive[n] = peak_extra_bytes([&] { gqa_attention_backward(q, k, v, dout, Mask::causal, 0); });
    }
    CAPTURE(tile);
    CAPTURE(flash[0]);
    CAPTURE(flash[1]);
    CAPTURE(naive[0]);
    CAPTURE(naive[1]);
    // The results alone (dQ, dK, dV: (H + 2G) T D floats) are a lower bound of both.
    const std::size_t results = (nh + 2 * ng) * 48 * d * sizeof(float);
    CHECK(flash[0] >= results);
    CHECK(naive[0] >= results);
    // Linear: a T + c with c >= 0 at most doubles when T doubles. Quadratic: a T^2 + b T + c
    // with the T^2 term dominant more than triples.
    CHECK(flash[1] <= 2 * flash[0]);
    CHECK(naive[1] >= 3 * naive[0]);
  }
}
