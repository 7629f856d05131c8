// Lesson 08, part 3: attention in three kernels (scores, softmax, weighted sum),
// with the GQA head mapping and the causal mask of lessons 02 and 03.
#include "cuda_basics.hpp"

#include <cmath>
#include <span>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "gqa.hpp"
#include "kernels.hpp"

using namespace attn;

namespace {

struct Shape {
  std::size_t b, h, g, tq, tk, d;
};

// Odd sizes: MHA (G == H), MQA (G == 1), groups in between, one query, one key,
// lengths that are not multiples of the 16 x 16 blocks.
constexpr std::array<Shape, 6> kShapes = {{{1, 1, 1, 1, 1, 1},
                                           {2, 6, 2, 5, 7, 4},
                                           {1, 9, 3, 17, 33, 64},
                                           {3, 4, 4, 9, 9, 8},
                                           {1, 4, 1, 1, 40, 16},
                                           {2, 2, 1, 20, 23, 3}}};

/// Small integers in [-3, 3]: every product and sum of a few of them is exact in float32.
Tensor4 small_integers(const std::array<std::size_t, 4>& shape, std::size_t seed) {
  Tensor4 t(shape);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(static_cast<int>((i * 5 + seed) % 7) - 3);
  return t;
}

attn::cuda::DeviceBuffer<float> on_device(const Tensor4& t) {
  return attn::cuda::DeviceBuffer<float>(std::span<const float>(t.data(), t.size()));
}

// The kernels alone (TODO 08.5 and 08.6), launched on device buffers without
// gqa_attention_gpu (TODO 08.7): B = 2, H = 6 query heads over G = 2 KV heads (groups
// of 3, so tile order reads other heads), Tq = 3, Tk = 5, D = 4.
constexpr std::size_t kB = 2, kH = 6, kG = 2, kTq = 3, kTk = 5, kD = 4;

}  // namespace

TEST_CASE("the scores kernel alone: q . k of KV head h / (H/G), times the scale, -infinity for keys after the query's position") {
  const Tensor4 q = small_integers({kB, kH, kTq, kD}, 1), k = small_integers({kB, kG, kTk, kD}, 3);
  const auto dq = on_device(q), dk = on_device(k);
  const float scale = 0.5f;  // exact: the scores stay exact in float32
  for (const bool causal : {false, true}) {
    const std::size_t offset = causal ? 1 : 0;  // query i sits at position 1 + i and sees keys 0 ... 1 + i
    CAPTURE(causal);
    attn::cuda::DeviceBuffer<float> scores(kB * kH * kTq * kTk);
    gpu::launch_attention_scores(dq.get(), dk.get(), scores.get(), int(kB), int(kH), int(kG), int(kTq),
                                 int(kTk), int(kD), scale, causal, int(offset));
    const std::vector<float> got = scores.download();
    std::size_t wrong = 0, at = 0;
    for (std::size_t b = 0; b < kB; ++b)
      for (std::size_t h = 0; h < kH; ++h)
        for (std::size_t i = 0; i < kTq; ++i)
          for (std::size_t j = 0; j < kTk; ++j) {
            float expected = -INFINITY;
            if (!causal || j <= offset + i) {
              float dot = 0.0f;
              for (std::size_t c = 0; c < kD; ++c) dot += q(b, h, i, c) * k(b, h / (kH / kG), j, c);
              expected = dot * scale;
            }
            const std::size_t index = ((b * kH + h) * kTq + i) * kTk + j;
            if (got[index] != expected && wrong++ == 0) at = index;
          }
    INFO("first wrong score at flat index " << at << " of (B, H, Tq, Tk) = (2, 6, 3, 5): " << got[at]);
    CHECK(wrong == 0);
  }
}

TEST_CASE("the output kernel alone: the sum over keys of p(i, j) v(j, c), with the values of KV head h / (H/G)") {
  const Tensor4 p = small_integers({kB, kH, kTq, kTk}, 2), v = small_integers({kB, kG, kTk, kD}, 4);
  const auto dp = on_device(p), dv = on_device(v);
  attn::cuda::DeviceBuffer<float> out(kB * kH * kTq * kD);
  gpu::launch_attention_output(dp.get(), dv.get(), out.get(), int(kB), int(kH), int(kG), int(kTq), int(kTk),
                               int(kD));
  const std::vector<float> got = out.download();
  Tensor4 expected({kB, kH, kTq, kD});
  for (std::size_t b = 0; b < kB; ++b)
    for (std::size_t h = 0; h < kH; ++h)
      for (std::size_t i = 0; i < kTq; ++i)
        for (std::size_t c = 0; c < kD; ++c) {
          float sum = 0.0f;
          for (std::size_t j = 0; j < kTk; ++j) sum += p(b, h, i, j) * v(b, h / (kH / kG), j, c);
          expected(b, h, i, c) = sum;
        }
  Tensor4 result({kB, kH, kTq, kD});
  std::copy(got.begin(), got.end(), result.begin());
  ATTN_CHECK_CLOSE(result, expected, Tolerance{});
}

TEST_CASE("three-kernel attention equals the float64 reference, with and without the causal mask") {
  for (const Shape& s : kShapes) {
    CAPTURE(s.h);
    CAPTURE(s.g);
    CAPTURE(s.tq);
    CAPTURE(s.tk);
    CAPTURE(s.d);
    const Tensor4 q = random_uniform<4>({s.b, s.h, s.tq, s.d}, 850 + s.tq);
    const Tensor4 k = random_uniform<4>({s.b, s.g, s.tk, s.d}, 851 + s.tk);
    const Tensor4 v = random_uniform<4>({s.b, s.g, s.tk, s.d}, 852 + s.d);
    const Tolerance tol = tol_attention(s.d, s.tk, 1.0, 1.0, 1.0);
    ATTN_CHECK_CLOSE(gqa_attention_gpu(q, k, v, Mask::none, 0), ref::attention(q, k, v, false, 0), tol);
    if (s.tq > s.tk) continue;
    for (const std::size_t offset : {std::size_t{0}, s.tk - s.tq}) {
      CAPTURE(offset);
      ATTN_CHECK_CLOSE(gqa_attention_gpu(q, k, v, Mask::causal, offset), ref::attention(q, k, v, true, offset),
                       tol);
    }
  }
}

TEST_CASE("query head h reads KV head h / (H/G), not the tile-order head h mod G") {
  // Every value of KV head g is g + 1, so each output is the number of the KV head read, plus one.
  const std::size_t nb = 2, nh = 6, ng = 2, tq = 3, tk = 5, d = 4;
  const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 861);
  const Tensor4 k = random_uniform<4>({nb, ng, tk, d}, 862);
  Tensor4 v({nb, ng, tk, d});
  for (std::size_t g = 0; g < ng; ++g) xt::view(v, xt::all(), g) = static_cast<float>(g + 1);
  const Tensor4 out = gqa_attention_gpu(q, k, v, Mask::causal, tk - tq);
  for (std::size_t h = 0; h < nh; ++h) {
    CAPTURE(h);
    const Tensor4 head = xt::view(out, xt::all(), xt::range(h, h + 1));
    ATTN_CHECK_CLOSE(head, xt::ones_like(head) * static_cast<float>(h / (nh / ng) + 1), tol_softmax(tk));
  }
}

TEST_CASE("three-kernel attention agrees with lesson 03's gqa_attention on the CPU") {
  const std::size_t nb = 2, nh = 8, ng = 2, tq = 11, tk = 26, d = 32;
  const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 871);
  const Tensor4 k = random_uniform<4>({nb, ng, tk, d}, 872);
  const Tensor4 v = random_uniform<4>({nb, ng, tk, d}, 873);
  // Each is within tol_attention of the exact result, so within twice that of each other.
  const Tolerance t = tol_attention(d, tk, 1.0, 1.0, 1.0);
  const Tolerance tol{2 * t.atol, 0.0, "2 tol_attention"};
  ATTN_CHECK_CLOSE(gqa_attention_gpu(q, k, v, Mask::none, 0), gqa_attention(q, k, v, Mask::none, 0), tol);
  ATTN_CHECK_CLOSE(gqa_attention_gpu(q, k, v, Mask::causal, 7), gqa_attention(q, k, v, Mask::causal, 7), tol);
}

TEST_CASE("gqa_attention_gpu computes what it accepts, and refuses what lesson 03 refuses in its own name") {
  // One call that passes the checks: on the scaffold it reaches TODO 08.7.
  const Tensor4 q = random_uniform<4>({1, 4, 2, 8}, 881);
  const Tensor4 kv = random_uniform<4>({1, 2, 5, 8}, 882);
  ATTN_CHECK_CLOSE(gqa_attention_gpu(q, kv, kv, Mask::causal, 3), ref::attention(q, kv, kv, true, 3),
                   tol_attention(8, 5, 1.0, 1.0, 1.0));
  // The checks are given code: lesson 03's check_gqa_arguments, then this lesson's limits.
  const Tensor4 q6 = xt::zeros<float>({1, 6, 3, 4});
  const Tensor4 k = xt::zeros<float>({1, 4, 5, 4});
  const Tensor4 k2 = xt::zeros<float>({1, 2, 5, 4});
  const Tensor4 k_bad_d = xt::zeros<float>({1, 2, 5, 8});
  CHECK_THROWS_WITH_AS(gqa_attention_gpu(q6, k, k, Mask::none, 0),
                       "gqa_attention_gpu: the query heads must be a multiple of the KV heads: given H = 6 "
                       "query heads and G = 4 KV heads",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_attention_gpu(q6, k_bad_d, k_bad_d, Mask::none, 0),
                       "gqa_attention_gpu: head dimension of k (D of q): expected 4, given 8", std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_attention_gpu(q6, k2, k2, Mask::none, 1),
                       "gqa_attention_gpu: q_offset with Mask::none (only a causal mask uses positions): "
                       "expected 0, given 1",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_attention_gpu(q6, k2, k2, Mask::causal, 3),
                       "gqa_attention_gpu: query positions past the last key: expected q_offset + Tq <= Tk = 5, "
                       "given q_offset = 3 and Tq = 3",
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(gqa_attention_gpu(q6, k2, k_bad_d, Mask::none, 0),
                       "gqa_attention_gpu: head dimension of v (D of q): expected 4, given 8", std::invalid_argument);
}
