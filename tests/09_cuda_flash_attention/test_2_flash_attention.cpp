// Lesson 09: attention fused into one kernel with online softmax (TODO 09.9, which calls
// the device functions of test_1), against the float64 reference and the CPU solutions
// of lessons 01 to 03, on the CPU emulator (or a GPU).
#include "flash_attention.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

#include <xtensor/xview.hpp>

#include "attention.hpp"
#include "attn/cuda.hpp"
#include "attn/testing.hpp"
#include "causal.hpp"
#include "flash_kernels.hpp"
#include "gqa.hpp"

using namespace attn;

namespace {

struct Shape {
  std::size_t b, h, g, tq, tk, d;
};

// Odd sizes: T not a multiple of the 16-row query tile or the 32-key K/V tile,
// D of 64 and 128 (and small ones), MHA (G == H), MQA (G == 1) and G == 2.
constexpr std::array<Shape, 7> kShapes = {{{1, 1, 1, 1, 1, 1},
                                           {2, 4, 2, 19, 45, 64},
                                           {1, 2, 2, 33, 70, 128},
                                           {1, 3, 1, 17, 17, 64},
                                           {2, 2, 1, 5, 37, 7},
                                           {1, 4, 4, 40, 40, 33},
                                           {1, 6, 2, 1, 97, 128}}};

/// tol_attention for the online softmax. Each of the ceil(Tk / kFlashKeys) tiles may
/// rescale the running sum and the running output once: one more exp and one more
/// rounded product per tile on every term, so the reduction lengths of
/// tol_attention grow by 2 per tile.
Tolerance tol_flash(std::size_t d, std::size_t tk, double qk_max = 1.0) {
  const std::size_t tiles = (tk + gpu::kFlashKeys - 1) / gpu::kFlashKeys;
  Tolerance t = tol_attention(d, tk + 2 * tiles, qk_max, qk_max, 1.0);
  t.why += " (Tk + 2 per K/V tile: the online softmax's rescalings)";
  return t;
}

}  // namespace

TEST_CASE("flash attention equals the float64 reference at odd sizes, with and without the causal mask") {
  for (const Shape& s : kShapes) {
    CAPTURE(s.b);
    CAPTURE(s.h);
    CAPTURE(s.g);
    CAPTURE(s.tq);
    CAPTURE(s.tk);
    CAPTURE(s.d);
    const Tensor4 q = random_uniform<4>({s.b, s.h, s.tq, s.d}, 900 + s.tq);
    const Tensor4 k = random_uniform<4>({s.b, s.g, s.tk, s.d}, 901 + s.tk);
    const Tensor4 v = random_uniform<4>({s.b, s.g, s.tk, s.d}, 902 + s.d);
    const Tolerance tol = tol_flash(s.d, s.tk);
    ATTN_CHECK_CLOSE(flash_attention_gpu(q, k, v, Mask::none, 0), ref::attention(q, k, v, false, 0), tol);
    for (const std::size_t offset : {std::size_t{0}, (s.tk - s.tq) / 2, s.tk - s.tq}) {
      CAPTURE(offset);
      ATTN_CHECK_CLOSE(flash_attention_gpu(q, k, v, Mask::causal, offset), ref::attention(q, k, v, true, offset),
                       tol);
    }
  }
}

TEST_CASE("a later key tile with a larger maximum rescales the running sum and output") {
  // Scores grow along the keys: every tile raises the running maximum, by about 3 per
  // tile, so a kernel that forgets to rescale by exp(m_old - m_new) is far off.
  const std::size_t tq = 20, tk = 100, d = 64;
  Tensor4 q = xt::ones<float>({std::size_t{1}, std::size_t{2}, tq, d});
  Tensor4 k({1, 1, tk, d});
  for (std::size_t j = 0; j < tk; ++j) xt::view(k, 0, 0, j) = static_cast<float>(j) * 0.0125f;
  const Tensor4 v = random_uniform<4>({1, 1, tk, d}, 911);
  const Tolerance tol = tol_flash(d, tk, 1.25);
  ATTN_CHECK_CLOSE(flash_attention_gpu(q, k, v, Mask::none, 0), ref::attention(q, k, v, false, 0), tol);
  ATTN_CHECK_CLOSE(flash_attention_gpu(q, k, v, Mask::causal, tk - tq), ref::attention(q, k, v, true, tk - tq),
                   tol);
}

TEST_CASE("query head h reads KV head h / (H/G), not the tile-order head h mod G") {
  // Every value of KV head g is g + 1, so each output is the number of the KV head read, plus one.
  const std::size_t nb = 2, nh = 6, ng = 2, tq = 18, tk = 35, d = 8;
  const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 921);
  const Tensor4 k = random_uniform<4>({nb, ng, tk, d}, 922);
  Tensor4 v({nb, ng, tk, d});
  for (std::size_t g = 0; g < ng; ++g) xt::view(v, xt::all(), g) = static_cast<float>(g + 1);
  const Tensor4 out = flash_attention_gpu(q, k, v, Mask::causal, tk - tq);
  for (std::size_t h = 0; h < nh; ++h) {
    CAPTURE(h);
    const Tensor4 head = xt::view(out, xt::all(), xt::range(h, h + 1));
    ATTN_CHECK_CLOSE(head, xt::ones_like(head) * static_cast<float>(h / (nh / ng) + 1), tol_flash(d, tk));
  }
}

TEST_CASE("key tiles that no query can see are never read") {
  // Queries at positions 0..Tq-1 of Tk keys: keys from Tq on are hidden from every
  // row. Fill them with NaN: a kernel that loads them (and multiplies a zero
  // probability by NaN) returns NaN; one that stops at the last visible key does not.
  const std::size_t tq = 21, tk = 90, d = 64;
  const Tensor4 q = random_uniform<4>({1, 4, tq, d}, 931);
  Tensor4 k = random_uniform<4>({1, 2, tk, d}, 932);
  Tensor4 v = random_uniform<4>({1, 2, tk, d}, 933);
  const Tensor4 k_seen = xt::view(k, xt::all(), xt::all(), xt::range(0, tq));
  const Tensor4 v_seen = xt::view(v, xt::all(), xt::all(), xt::range(0, tq));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  xt::view(k, xt::all(), xt::all(), xt::range(tq, tk)) = nan;
  xt::view(v, xt::all(), xt::all(), xt::range(tq, tk)) = nan;
  INFO("keys and values from Tq on are NaN: hidden from every row, never to be read. NaN in the output: "
       "a block loaded a key tile past its kv_end");
  ATTN_CHECK_CLOSE(flash_attention_gpu(q, k, v, Mask::causal, 0), ref::attention(q, k_seen, v_seen, true, 0),
                   tol_flash(d, tq));
}

#if !ATTN_CUDA_RUNTIME  // the count is the emulator's (attn::cuda::emu::barriers_opened)
TEST_CASE("a causal block visits no key tile past the keys its rows see (the emulator counts its barriers)") {
  // A kernel may loop to Tk and still load with kv_end: the tiles past kv_end are then
  // zeros, every score there is -infinity, and the output is exact, but each block does
  // the work of tiles that no row sees. Only the work shows: the block barriers that
  // the emulator opens. With queries at positions 0..Tq-1, keys from Tq on are hidden
  // from every row, so 3 more key tiles after them must not add a single barrier, while
  // the same keys without the mask (every row sees them) must add some.
  const std::size_t tq = 21, d = 16, hidden = 3 * gpu::kFlashKeys;
  const Tensor4 q = random_uniform<4>({1, 2, tq, d}, 934);
  const Tensor4 k = random_uniform<4>({1, 1, tq + hidden, d}, 935);
  const Tensor4 v = random_uniform<4>({1, 1, tq + hidden, d}, 936);
  const Tensor4 k_seen = xt::view(k, xt::all(), xt::all(), xt::range(0, tq));
  const Tensor4 v_seen = xt::view(v, xt::all(), xt::all(), xt::range(0, tq));
  const auto barriers = [&](const Tensor4& keys, const Tensor4& values, Mask mask) {
    const std::uint64_t before = cuda::emu::barriers_opened();
    ATTN_CHECK_CLOSE(flash_attention_gpu(q, keys, values, mask, 0),
                     ref::attention(q, keys, values, mask == Mask::causal, 0), tol_flash(d, keys.shape(2)));
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

TEST_CASE("flash attention agrees with the CPU solutions of lessons 01, 02 and 03") {
  const Tensor4 q = random_uniform<4>({2, 4, 23, 64}, 941);
  const Tensor4 k = random_uniform<4>({2, 4, 50, 64}, 942);
  const Tensor4 v = random_uniform<4>({2, 4, 50, 64}, 943);
  const Tensor4 k2 = random_uniform<4>({2, 2, 50, 64}, 944);
  const Tensor4 v2 = random_uniform<4>({2, 2, 50, 64}, 945);
  // Each is within its tolerance of the exact result, so within the sum of the two of each other.
  const Tolerance t = tol_flash(64, 50);
  const Tolerance tol{2 * t.atol, 0.0, "2 tol_flash"};
  ATTN_CHECK_CLOSE(flash_attention_gpu(q, k, v, Mask::none, 0), scaled_dot_product_attention(q, k, v), tol);
  ATTN_CHECK_CLOSE(flash_attention_gpu(q, k, v, Mask::causal, 27), causal_attention(q, k, v, 27), tol);
  ATTN_CHECK_CLOSE(flash_attention_gpu(q, k2, v2, Mask::causal, 27), gqa_attention(q, k2, v2, Mask::causal, 27),
                   tol);
}

TEST_CASE("flash_attention_gpu runs at D = 128, and refuses what lesson 03 refuses and what its kernel cannot hold") {
  // The widest head the tiles hold runs, and is right; D = 129 is refused below.
  const Tensor4 q128 = random_uniform<4>({1, 2, 3, 128}, 951);
  const Tensor4 k128 = random_uniform<4>({1, 1, 5, 128}, 952), v128 = random_uniform<4>({1, 1, 5, 128}, 953);
  ATTN_CHECK_CLOSE(flash_attention_gpu(q128, k128, v128, Mask::causal, 2), ref::attention(q128, k128, v128, true, 2),
                   tol_flash(128, 5));
  const Tensor4 q = xt::zeros<float>({1, 6, 3, 4});
  const Tensor4 k = xt::zeros<float>({1, 4, 5, 4});
  const Tensor4 k2 = xt::zeros<float>({1, 2, 5, 4});
  const Tensor4 k_bad_d = xt::zeros<float>({1, 2, 5, 8});
  const Tensor4 q_wide = xt::zeros<float>({1, 2, 3, 129});
  const Tensor4 k_wide = xt::zeros<float>({1, 2, 5, 129});
  CHECK_THROWS_WITH_AS(flash_attention_gpu(q, k, k, Mask::none, 0),
                       "flash_attention_gpu: the query heads must be a multiple of the KV heads: given H = 6 "
                       "query heads and G = 4 KV heads",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_gpu(q, k_bad_d, k_bad_d, Mask::none, 0),
                       "flash_attention_gpu: head dimension of k (D of q): expected 4, given 8",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_gpu(q_wide, k_wide, k_wide, Mask::none, 0),
                       "flash_attention_gpu: the head dimension must be between 1 and 128 (the kernel's "
                       "shared-memory tiles), given D = 129",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_gpu(q, k2, k2, Mask::none, 1),
                       "flash_attention_gpu: q_offset with Mask::none (only a causal mask uses positions): "
                       "expected 0, given 1",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_gpu(q, k2, k2, Mask::causal, 3),
                       "flash_attention_gpu: query positions past the last key: expected q_offset + Tq <= Tk = "
                       "5, given q_offset = 3 and Tq = 3",
                       std::out_of_range);
  // The kernel's own limits (lesson 03 allows values of another width, and any number of heads).
  const Tensor4 v_wide = xt::zeros<float>({1, 2, 5, 8});
  CHECK_THROWS_WITH_AS(flash_attention_gpu(xt::zeros<float>({1, 2, 3, 4}), k2, v_wide, Mask::none, 0),
                       "flash_attention_gpu: head dimension of v (D of q): expected 4, given 8",
                       std::invalid_argument);
  const Tensor4 q_many = xt::zeros<float>({1, 65536, 1, 1});
  const Tensor4 k_one = xt::zeros<float>({1, 1, 1, 1});
  CHECK_THROWS_WITH_AS(flash_attention_gpu(q_many, k_one, k_one, Mask::none, 0),
                       "flash_attention_gpu: B * H must be at most 65535 (the grid's y dimension), given 65536",
                       std::invalid_argument);
}
