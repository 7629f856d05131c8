// Lesson 10, part 5: gqa_decode_gpu, decode attention over the device cache, one block
// per (batch, KV head) serving its whole query group, split-K with a combine step;
// against lesson 04's gqa_attention_cached and the float64 reference. The caches are
// copied from lesson 04's (DeviceKVCache(const KVCache&)) except where a test says it
// appends on the device.
#include "gqa_decode.hpp"

#include <string>

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"
#include "decode_kernels.hpp"
#include "kv_cache.hpp"

using namespace attn;

namespace {

struct Shape {
  std::size_t b, h, g, t, d;
};

// Context lengths around the 32-key tile (1, 31, 33, 100), D of 64 and 128 and odd
// ones, MHA (G == H), MQA (G == 1) and G == 2.
constexpr std::array<Shape, 6> kShapes = {{{1, 1, 1, 1, 64},
                                           {2, 4, 2, 33, 64},
                                           {1, 8, 1, 100, 128},
                                           {2, 3, 3, 31, 7},
                                           {1, 6, 2, 77, 128},
                                           {3, 4, 4, 40, 33}}};

/// tol_attention for the online softmax and the combine step: every K/V tile may
/// rescale the running sum and output once (one exp and one product), and the
/// combine adds one exp, one product and a sum over the chunks, so tol_attention's
/// bound is taken with n = Tk + 2 per K/V tile + splits + 2 roundings in place of Tk.
Tolerance tol_decode(std::size_t d, std::size_t t, std::size_t splits) {
  const std::size_t tiles = (t + gpu::kDecodeKeys - 1) / gpu::kDecodeKeys;
  const std::size_t n = t + 2 * tiles + splits + 2;
  Tolerance tol = tol_attention(d, n, 1.0, 1.0, 1.0);
  tol.why = "float32 decode attention, D=" + std::to_string(d) + ", Tk=" + std::to_string(t) + " keys in " +
            std::to_string(tiles) + " K/V tiles, splits = " + std::to_string(splits) +
            ": tol_attention's bound with n = Tk + 2 per tile + splits + 2 = " + std::to_string(n) +
            " in place of Tk (the online softmax's rescaling and the combine): V * (2 gamma_{D+1} sqrt(D) Q K + "
            "gamma_{n+3} + gamma_n)";
  return tol;
}

/// Decode against lesson 04's gqa_attention_cached, both float32: the sum of both
/// sides' bounds against the exact result, tol_decode and tol_attention over Tk keys.
Tolerance tol_decode_vs_cached(std::size_t d, std::size_t t, std::size_t splits) {
  const Tolerance decode = tol_decode(d, t, splits), cached = tol_attention(d, t, 1.0, 1.0, 1.0);
  return {decode.atol + cached.atol, 0.0,
          "tol_decode + tol_attention (D=" + std::to_string(d) + ", Tk=" + std::to_string(t) + ", splits = " +
              std::to_string(splits) + "): two float32 results, each within its bound of the exact one"};
}

/// The cache of lesson 04 holding t random tokens (capacity t + 3), and its copy on the device.
struct Caches {
  KVCache host;
  DeviceKVCache device;
};

KVCache host_cache(const Shape& s, std::uint64_t seed) {
  KVCache host(s.b, s.g, s.t + 3, s.d);
  host.append(random_uniform<4>({s.b, s.g, s.t, s.d}, seed), random_uniform<4>({s.b, s.g, s.t, s.d}, seed + 1));
  return host;
}

Caches filled(const Shape& s, std::uint64_t seed) {
  KVCache host = host_cache(s, seed);
  DeviceKVCache device(host);
  return Caches{std::move(host), std::move(device)};
}

}  // namespace

TEST_CASE("a device cache made from lesson 04's holds its tokens, length and capacity, and decode reads them") {
  // The copy constructor is given: checked here with no append (so it does not wait for
  // TODO 10.2), then decode (TODO 10.11) reads the copy.
  KVCache host(2, 2, 9, 3);
  const Tensor4 k = random_uniform<4>({2, 2, 5, 3}, 1020), v = random_uniform<4>({2, 2, 5, 3}, 1021);
  host.append(k, v);
  const DeviceKVCache device(host);
  CHECK(device.length() == 5);
  CHECK(device.capacity() == 9);
  CHECK(device.batch() == 2);
  CHECK(device.kv_heads() == 2);
  CHECK(device.head_dim() == 3);
  ATTN_CHECK_CLOSE_NAMED("the copy's keys, at (b, g, position, column)", device.keys(), k,
                         (Tolerance{0.0, 0.0, "a copy is exact"}));
  ATTN_CHECK_CLOSE_NAMED("the copy's values, at (b, g, position, column)", device.values(), v,
                         (Tolerance{0.0, 0.0, "a copy is exact"}));
  const Tensor4 q = random_uniform<4>({2, 4, 1, 3}, 1024);
  ATTN_CHECK_CLOSE_NAMED("decode over the copy against lesson 04's gqa_attention_cached, at (b, h, 0, column)",
                         gqa_decode_gpu(q, device, 1), gqa_attention_cached(q, host), tol_decode_vs_cached(3, 5, 1));
}

TEST_CASE("decode attention equals lesson 04's gqa_attention_cached and the float64 reference") {
  for (const Shape& s : kShapes) {
    CAPTURE(s.b);
    CAPTURE(s.h);
    CAPTURE(s.g);
    CAPTURE(s.t);
    CAPTURE(s.d);
    const Caches c = filled(s, 1100 + s.t);
    const Tensor4 q = random_uniform<4>({s.b, s.h, 1, s.d}, 1200 + s.h);
    const Tensor4 k = c.host.keys(), v = c.host.values();
    const Tensor4 cpu = gqa_attention_cached(q, c.host);
    for (const std::size_t splits : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
      CAPTURE(splits);
      const Tensor4 got = gqa_decode_gpu(q, c.device, splits);
      ATTN_CHECK_CLOSE_NAMED("decode against the float64 reference, at (b, h, 0, column)", got,
                             ref::attention(q, k, v, true, s.t - 1), tol_decode(s.d, s.t, splits));
      ATTN_CHECK_CLOSE_NAMED("decode against lesson 04's gqa_attention_cached, at (b, h, 0, column)", got, cpu,
                             tol_decode_vs_cached(s.d, s.t, splits));
    }
  }
}

TEST_CASE("split-K: partial results relative to different maxima combine to the unsplit result") {
  // Scores grow along the keys, so every chunk has its own, larger maximum: a combine
  // that adds the partial sums without rescaling them by e^(m_s - M) is far off.
  const std::size_t nb = 1, nh = 4, ng = 2, t = 150, d = 64;
  KVCache host(nb, ng, t, d);
  Tensor4 k({nb, ng, t, d});
  for (std::size_t j = 0; j < t; ++j) xt::view(k, xt::all(), xt::all(), j) = static_cast<float>(j) * 0.01f;
  const Tensor4 v = random_uniform<4>({nb, ng, t, d}, 1301);
  host.append(k, v);
  const DeviceKVCache cache(host);
  const Tensor4 q = xt::ones<float>({nb, nh, std::size_t{1}, d});
  const Tensor4 ref = ref::attention(q, k, v, true, t - 1);
  for (const std::size_t splits : {std::size_t{1}, std::size_t{2}, std::size_t{5}}) {
    CAPTURE(splits);
    ATTN_CHECK_CLOSE_NAMED("decode against the float64 reference, at (b, h, 0, column)",
                           gqa_decode_gpu(q, cache, splits), ref, tol_decode(d, t, splits));
  }
}

TEST_CASE("more splits than key tiles: empty chunks weigh nothing") {
  const Shape s{2, 4, 2, 40, 16};  // 2 key tiles, up to 9 chunks
  const Caches c = filled(s, 1400);
  const Tensor4 q = random_uniform<4>({s.b, s.h, 1, s.d}, 1402);
  const Tensor4 ref = ref::attention(q, c.host.keys(), c.host.values(), true, s.t - 1);
  for (const std::size_t splits : {std::size_t{4}, std::size_t{9}}) {
    CAPTURE(splits);
    ATTN_CHECK_CLOSE_NAMED("decode against the float64 reference, at (b, h, 0, column)",
                           gqa_decode_gpu(q, c.device, splits), ref, tol_decode(s.d, s.t, splits));
  }
}

TEST_CASE("query head h reads KV head h / (H/G), not the tile-order head h mod G") {
  // Every value of KV head g is g + 1, so each output is the number of the KV head read, plus one.
  const std::size_t nb = 2, nh = 6, ng = 2, t = 37, d = 8;
  KVCache host(nb, ng, t, d);
  const Tensor4 k = random_uniform<4>({nb, ng, t, d}, 1501);
  Tensor4 v({nb, ng, t, d});
  for (std::size_t g = 0; g < ng; ++g) xt::view(v, xt::all(), g) = static_cast<float>(g + 1);
  host.append(k, v);
  const DeviceKVCache cache(host);
  const Tensor4 q = random_uniform<4>({nb, nh, 1, d}, 1502);
  const Tensor4 out = gqa_decode_gpu(q, cache, 2);
  for (std::size_t h = 0; h < nh; ++h) {
    CAPTURE(h);
    const Tensor4 head = xt::view(out, xt::all(), xt::range(h, h + 1));
    ATTN_CHECK_CLOSE_NAMED("query head h's output, g + 1 for the KV head g it reads (expected g = h / (H/G))", head,
                           xt::ones_like(head) * static_cast<float>(h / (nh / ng) + 1), tol_decode(d, t, 2));
  }
}

TEST_CASE("decode after appends on the device follows the cache as it grows") {
  // Prefill 20 tokens, then decode token by token: each step appends one K/V pair and
  // attends over everything cached so far, as in lesson 05's generation loop.
  const std::size_t nb = 1, nh = 4, ng = 2, d = 32, cap = 40;
  DeviceKVCache device(nb, ng, cap, d);
  KVCache host(nb, ng, cap, d);
  const Tensor4 k0 = random_uniform<4>({nb, ng, 20, d}, 1601), v0 = random_uniform<4>({nb, ng, 20, d}, 1602);
  device.append(k0, v0);
  host.append(k0, v0);
  for (std::uint64_t step = 0; step < 15; ++step) {
    CAPTURE(step);
    const Tensor4 k1 = random_uniform<4>({nb, ng, 1, d}, 1700 + step);
    const Tensor4 v1 = random_uniform<4>({nb, ng, 1, d}, 1800 + step);
    device.append(k1, v1);
    host.append(k1, v1);
    const Tensor4 q = random_uniform<4>({nb, nh, 1, d}, 1900 + step);
    ATTN_CHECK_CLOSE_NAMED("decode after the appends against lesson 04's gqa_attention_cached, at (b, h, 0, column)",
                           gqa_decode_gpu(q, device, 2), gqa_attention_cached(q, host),
                           tol_decode_vs_cached(d, host.length(), 2));
  }
}

TEST_CASE("gqa_decode_gpu refuses bad shapes, groups over 16 and an empty cache, naming expected and given") {
  DeviceKVCache cache(1, 2, 8, 4);
  const Tensor4 q = xt::zeros<float>({1, 6, 1, 4});
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(q, cache, 1),
                       "gqa_decode_gpu: the cache is empty: decode needs at least one cached key", std::out_of_range);
  cache.append(xt::zeros<float>({1, 2, 3, 4}), xt::zeros<float>({1, 2, 3, 4}));
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(xt::zeros<float>({1, 6, 2, 4}), cache, 1),
                       "gqa_decode_gpu: queries per sequence (decode: Tq of q): expected 1, given 2",
                       std::invalid_argument);
  // Lesson 03's checks of q against the cache's K and V, named after gqa_decode_gpu.
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(xt::zeros<float>({2, 6, 1, 4}), cache, 1),
                       "gqa_decode_gpu: batch of k (B of q): expected 2, given 1", std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(xt::zeros<float>({1, 6, 1, 8}), cache, 1),
                       "gqa_decode_gpu: head dimension of k (D of q): expected 8, given 4", std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(xt::zeros<float>({1, 5, 1, 4}), cache, 1),
                       "gqa_decode_gpu: the query heads must be a multiple of the KV heads: given H = 5 query heads "
                       "and G = 2 KV heads",
                       std::invalid_argument);
  // The kernel's own limits.
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(xt::zeros<float>({1, 34, 1, 4}), cache, 1),
                       "gqa_decode_gpu: at most 16 query heads per KV head (a warp each in one block), given H / G = 17",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(q, cache, 0), "gqa_decode_gpu: splits must be at least 1, given 0",
                       std::invalid_argument);
  KVCache wide(1, 1, 2, 129);
  wide.append(xt::zeros<float>({1, 1, 1, 129}), xt::zeros<float>({1, 1, 1, 129}));
  CHECK_THROWS_WITH_AS(gqa_decode_gpu(xt::zeros<float>({1, 1, 1, 129}), DeviceKVCache(wide), 1),
                       "gqa_decode_gpu: the head dimension must be at most 128, given D = 129", std::invalid_argument);
}
