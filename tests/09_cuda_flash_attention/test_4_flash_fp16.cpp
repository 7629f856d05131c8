// Lesson 09, the last step: the fused attention in half precision on the tensor cores
// (nvcuda::wmma), against the float64 reference on the same half-rounded inputs, on
// the CPU emulator (which models __half and the wmma operations) or a GPU.
#include "flash_attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <xtensor/xview.hpp>

#include "attn/cuda.hpp"
#include "attn/testing.hpp"
#include "flash_kernels.hpp"
#include "gqa.hpp"
#include "half_rounding.hpp"

using namespace attn;
using testing_fp16::rounded_to_half;

namespace {

/// The bound of the float32 kernel (tol_attention grown by 2 per K/V tile of
/// kFlashTcKeys) on the rounded inputs, plus the rounding of each probability to
/// half before the tensor cores multiply it by V: a relative 2^-11 on every weight,
/// at most 2 * 2^-11 * max|v| on a weighted average of the rows of V.
Tolerance tol_flash_fp16(std::size_t d, std::size_t tk, double qk_max = 1.0, double v_max = 1.0) {
  const std::size_t tiles = (tk + gpu::kFlashTcKeys - 1) / gpu::kFlashTcKeys;
  Tolerance t = tol_attention(d, tk + 2 * tiles, qk_max, qk_max, v_max);
  t.atol += 2.0 * 0x1p-11 * v_max;
  t.why += " (Tk + 2 per K/V tile) + 2 * 2^-11 * max|v| (probabilities rounded to half)";
  return t;
}

struct Shape {
  std::size_t b, h, g, tq, tk, d;
};

// Odd sizes: T not a multiple of the 64-row query tile or the 64-key K/V tile, more
// than one of each, D of 16, 64 and 128, MHA (G == H), MQA (G == 1) and G == 2.
constexpr std::array<Shape, 6> kShapes = {{{1, 1, 1, 1, 1, 16},
                                           {2, 4, 2, 19, 45, 64},
                                           {1, 2, 2, 33, 70, 128},
                                           {1, 3, 1, 70, 70, 64},
                                           {1, 2, 1, 130, 150, 32},
                                           {1, 6, 2, 1, 97, 128}}};

}  // namespace

TEST_CASE("the tensor-core kernel equals the float64 reference on half-rounded inputs, with and without the mask") {
  for (const Shape& s : kShapes) {
    CAPTURE(s.b);
    CAPTURE(s.h);
    CAPTURE(s.g);
    CAPTURE(s.tq);
    CAPTURE(s.tk);
    CAPTURE(s.d);
    const Tensor4 q = random_uniform<4>({s.b, s.h, s.tq, s.d}, 960 + s.tq);
    const Tensor4 k = random_uniform<4>({s.b, s.g, s.tk, s.d}, 961 + s.tk);
    const Tensor4 v = random_uniform<4>({s.b, s.g, s.tk, s.d}, 962 + s.d);
    const Tensor4 qh = rounded_to_half(q), kh = rounded_to_half(k), vh = rounded_to_half(v);
    const Tolerance tol = tol_flash_fp16(s.d, s.tk);
    ATTN_CHECK_CLOSE(flash_attention_gpu_fp16(q, k, v, Mask::none, 0), ref::attention(qh, kh, vh, false, 0), tol);
    for (const std::size_t offset : {std::size_t{0}, (s.tk - s.tq) / 2, s.tk - s.tq}) {
      CAPTURE(offset);
      ATTN_CHECK_CLOSE(flash_attention_gpu_fp16(q, k, v, Mask::causal, offset),
                       ref::attention(qh, kh, vh, true, offset), tol);
    }
  }
}

TEST_CASE("the tensor-core kernel rescales its running sum and output when a later key tile has a larger maximum") {
  // Scores grow along the keys by about 6 per 64-key tile, so every tile raises the
  // running maximum; a kernel that forgets exp(m_old - m_new) is far off.
  const std::size_t tq = 70, tk = 200, d = 64;
  const Tensor4 q = xt::ones<float>({std::size_t{1}, std::size_t{2}, tq, d});
  Tensor4 k({1, 1, tk, d});
  for (std::size_t j = 0; j < tk; ++j) xt::view(k, 0, 0, j) = static_cast<float>(j) * 0.0125f;
  const Tensor4 v = random_uniform<4>({1, 1, tk, d}, 971);
  const Tensor4 kh = rounded_to_half(k), vh = rounded_to_half(v);
  const Tolerance tol = tol_flash_fp16(d, tk, 2.5);
  ATTN_CHECK_CLOSE(flash_attention_gpu_fp16(q, k, v, Mask::none, 0), ref::attention(q, kh, vh, false, 0), tol);
  ATTN_CHECK_CLOSE(flash_attention_gpu_fp16(q, k, v, Mask::causal, tk - tq), ref::attention(q, kh, vh, true, tk - tq),
                   tol);
}

TEST_CASE("the tensor-core kernel maps query head h to KV head h / (H/G) and never reads hidden key tiles") {
  // Every value of KV head g is g + 1: each output is the number of the KV head read, plus one.
  const std::size_t nb = 2, nh = 6, ng = 2, tq = 18, tk = 35, d = 32;
  const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 981);
  const Tensor4 k = random_uniform<4>({nb, ng, tk, d}, 982);
  Tensor4 v({nb, ng, tk, d});
  for (std::size_t g = 0; g < ng; ++g) xt::view(v, xt::all(), g) = static_cast<float>(g + 1);
  const Tensor4 out = flash_attention_gpu_fp16(q, k, v, Mask::causal, tk - tq);
  for (std::size_t h = 0; h < nh; ++h) {
    CAPTURE(h);
    const Tensor4 head = xt::view(out, xt::all(), xt::range(h, h + 1));
    ATTN_CHECK_CLOSE(head, xt::ones_like(head) * static_cast<float>(h / (nh / ng) + 1), tol_flash_fp16(d, tk, 1, 2));
  }

  // Keys from Tq on are hidden from every row of a square causal attention: NaN there
  // reaches the output only through a kernel that loads them.
  const std::size_t tq2 = 40, tk2 = 150;
  const Tensor4 q2 = random_uniform<4>({1, 2, tq2, 64}, 983);
  Tensor4 k2 = random_uniform<4>({1, 1, tk2, 64}, 984);
  Tensor4 v2 = random_uniform<4>({1, 1, tk2, 64}, 985);
  const Tensor4 k_seen = rounded_to_half(xt::view(k2, xt::all(), xt::all(), xt::range(0, tq2)));
  const Tensor4 v_seen = rounded_to_half(xt::view(v2, xt::all(), xt::all(), xt::range(0, tq2)));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  xt::view(k2, xt::all(), xt::all(), xt::range(tq2, tk2)) = nan;
  xt::view(v2, xt::all(), xt::all(), xt::range(tq2, tk2)) = nan;
  INFO("keys and values from Tq on are NaN: hidden from every row, never to be read. NaN in the output: "
       "a block loaded a key tile past its kv_end");
  ATTN_CHECK_CLOSE(flash_attention_gpu_fp16(q2, k2, v2, Mask::causal, 0),
                   ref::attention(rounded_to_half(q2), k_seen, v_seen, true, 0), tol_flash_fp16(64, tq2));
}

#if !ATTN_CUDA_RUNTIME  // the count is the emulator's (attn::cuda::emu::barriers_opened)
TEST_CASE("the tensor-core kernel's causal blocks visit no key tile past the keys their rows see (the emulator counts barriers)") {
  // As for the float32 kernel: looping to Tk while loading with kv_end gives exact
  // numbers (tiles of zeros, every score hidden) and shows only in the work done. Keys
  // from Tq on are hidden from every row here: 3 more tiles of them must add no block
  // barrier, while the same keys without the mask must add some.
  const std::size_t tq = 40, d = 16, hidden = 3 * gpu::kFlashTcKeys;
  const Tensor4 q = random_uniform<4>({1, 1, tq, d}, 986);
  const Tensor4 k = random_uniform<4>({1, 1, tq + hidden, d}, 987);
  const Tensor4 v = random_uniform<4>({1, 1, tq + hidden, d}, 988);
  const Tensor4 k_seen = xt::view(k, xt::all(), xt::all(), xt::range(0, tq));
  const Tensor4 v_seen = xt::view(v, xt::all(), xt::all(), xt::range(0, tq));
  const auto barriers = [&](const Tensor4& keys, const Tensor4& values, Mask mask) {
    const std::uint64_t before = cuda::emu::barriers_opened();
    ATTN_CHECK_CLOSE(flash_attention_gpu_fp16(q, keys, values, mask, 0),
                     ref::attention(rounded_to_half(q), rounded_to_half(keys), rounded_to_half(values),
                                    mask == Mask::causal, 0),
                     tol_flash_fp16(d, keys.shape(2)));
    return cuda::emu::barriers_opened() - before;
  };
  const std::uint64_t seen_only = barriers(k_seen, v_seen, Mask::causal);
  const std::uint64_t with_hidden = barriers(k, v, Mask::causal);
  const std::uint64_t unmasked = barriers(k, v, Mask::none);
  CAPTURE(seen_only);
  CAPTURE(with_hidden);
  CAPTURE(unmasked);
  INFO("block barriers opened by the launch: Tk = Tq keys, causal (seen_only); the same plus ", hidden,
       " keys hidden from every row, causal (with_hidden: must equal seen_only, or the blocks visit tiles "
       "past kv_end); the same keys without the mask (unmasked: more, every tile is read)");
  CHECK(unmasked > seen_only);
  CHECK(with_hidden == seen_only);
}
#endif

TEST_CASE("against lesson 03's float32 solution, the tensor-core kernel is off by no more than its half-rounded inputs allow") {
  // Rounding q and k to half changes each product q_c k_c by a relative 2 * 2^-11, so
  // each score by at most sqrt(D) * 2^-10 * max|q| max|k|; the softmax turns that into
  // a relative change of at most twice as much in each weight. Rounding v adds 2^-11,
  // rounding the probabilities 2 * 2^-11 (all times max|v| = 1).
  const std::size_t d = 128;
  const Tensor4 q = random_uniform<4>({1, 4, 50, d}, 991);
  const Tensor4 k = random_uniform<4>({1, 2, 90, d}, 992);
  const Tensor4 v = random_uniform<4>({1, 2, 90, d}, 993);
  const Tensor4 got = flash_attention_gpu_fp16(q, k, v, Mask::causal, 40);
  const Tensor4 want = gqa_attention(q, k, v, Mask::causal, 40);
  const double score = std::sqrt(static_cast<double>(d)) * 0x1p-10;
  Tolerance tol = tol_flash_fp16(d, 90);
  tol.atol += 2.0 * score + 0x1p-11;
  tol.why += " + 2 sqrt(D) 2^-10 (q, k rounded) + 2^-11 (v rounded)";
  ATTN_CHECK_CLOSE(got, want, tol);
}

TEST_CASE("flash_attention_gpu_fp16 runs at D = 48, refuses head dimensions that are not a multiple of 16, and what lesson 03 refuses") {
  // A multiple of 16 that is no power of two runs, and is right; D = 40 is refused below.
  const Tensor4 q48 = random_uniform<4>({1, 2, 3, 48}, 994);
  const Tensor4 k48 = random_uniform<4>({1, 1, 5, 48}, 995), v48 = random_uniform<4>({1, 1, 5, 48}, 996);
  ATTN_CHECK_CLOSE(flash_attention_gpu_fp16(q48, k48, v48, Mask::causal, 2),
                   ref::attention(rounded_to_half(q48), rounded_to_half(k48), rounded_to_half(v48), true, 2),
                   tol_flash_fp16(48, 5));
  const Tensor4 q = xt::zeros<float>({1, 6, 3, 16});
  const Tensor4 k = xt::zeros<float>({1, 4, 5, 16});
  const Tensor4 q_odd = xt::zeros<float>({1, 2, 3, 40});
  const Tensor4 k_odd = xt::zeros<float>({1, 2, 5, 40});
  CHECK_THROWS_WITH_AS(flash_attention_gpu_fp16(q_odd, k_odd, k_odd, Mask::none, 0),
                       "flash_attention_gpu_fp16: the head dimension must be a multiple of 16 (the tensor cores' "
                       "16 x 16 tiles), given D = 40",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_gpu_fp16(q, k, k, Mask::none, 0),
                       "flash_attention_gpu_fp16: the query heads must be a multiple of the KV heads: given H = 6 "
                       "query heads and G = 4 KV heads",
                       std::invalid_argument);
  const Tensor4 q_wide = xt::zeros<float>({1, 2, 3, 144});
  const Tensor4 k_wide = xt::zeros<float>({1, 2, 5, 144});
  CHECK_THROWS_WITH_AS(flash_attention_gpu_fp16(q_wide, k_wide, k_wide, Mask::none, 0),
                       "flash_attention_gpu_fp16: the head dimension must be between 1 and 128 (the kernel's "
                       "shared-memory tiles), given D = 144",
                       std::invalid_argument);
}
