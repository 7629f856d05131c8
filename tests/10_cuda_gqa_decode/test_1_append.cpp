// Lesson 10, part 1: the KV cache in device memory, appended to by a kernel: the kernel
// alone on device buffers, then DeviceKVCache::append against lesson 04's KVCache fed
// the same tokens.
#include "gqa_decode.hpp"

#include <vector>

#include <xtensor/xview.hpp>

#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "decode_kernels.hpp"
#include "kv_cache.hpp"

using namespace attn;

TEST_CASE("kv_append_kernel writes element (b, g, t, c) at position start + t of row (b, g), nothing else") {
  const std::size_t nb = 2, ng = 3, cap = 10, d = 5, tn = 4, start = 5;
  constexpr float kUntouched = -7.0f;
  const Tensor4 k_new = random_uniform<4>({nb, ng, tn, d}, 990), v_new = random_uniform<4>({nb, ng, tn, d}, 991);
  cuda::DeviceBuffer<float> dk(std::span<const float>(k_new.data(), k_new.size()));
  cuda::DeviceBuffer<float> dv(std::span<const float>(v_new.data(), v_new.size()));
  cuda::DeviceBuffer<float> k_cache(std::vector<float>(nb * ng * cap * d, kUntouched));
  cuda::DeviceBuffer<float> v_cache(std::vector<float>(nb * ng * cap * d, kUntouched));
  gpu::launch_kv_append(dk.get(), dv.get(), k_cache.get(), v_cache.get(), int(nb), int(ng), int(tn), int(cap),
                        int(d), int(start));
  Tensor4 want_k = xt::ones<float>({nb, ng, cap, d}) * kUntouched, want_v = want_k;
  xt::view(want_k, xt::all(), xt::all(), xt::range(start, start + tn)) = k_new;
  xt::view(want_v, xt::all(), xt::all(), xt::range(start, start + tn)) = v_new;
  Tensor4 got_k({nb, ng, cap, d}), got_v({nb, ng, cap, d});
  const std::vector<float> hk = k_cache.download(), hv = v_cache.download();
  std::copy(hk.begin(), hk.end(), got_k.begin());
  std::copy(hv.begin(), hv.end(), got_v.begin());
  ATTN_CHECK_CLOSE_NAMED("the K cache after the kernel (new tokens at start + t, the marker -7 elsewhere), at (b, g, "
                         "position, column)",
                         got_k, want_k, (Tolerance{0.0, 0.0, "a copy is exact"}));
  ATTN_CHECK_CLOSE_NAMED("the V cache after the kernel, at (b, g, position, column)", got_v, want_v,
                         (Tolerance{0.0, 0.0, "a copy is exact"}));
}

TEST_CASE("device appends land where lesson 04's cache puts them, in pieces of any length") {
  const std::size_t nb = 2, ng = 3, cap = 20, d = 5;
  DeviceKVCache device(nb, ng, cap, d);
  KVCache host(nb, ng, cap, d);
  std::uint64_t seed = 1000;
  for (const std::size_t tn : {std::size_t{3}, std::size_t{1}, std::size_t{0}, std::size_t{7}, std::size_t{9}}) {
    CAPTURE(tn);
    const Tensor4 k_new = random_uniform<4>({nb, ng, tn, d}, seed++);
    const Tensor4 v_new = random_uniform<4>({nb, ng, tn, d}, seed++);
    device.append(k_new, v_new);
    host.append(k_new, v_new);
    REQUIRE(device.length() == host.length());
    const Tensor4 host_k = host.keys(), host_v = host.values();
    ATTN_CHECK_CLOSE_NAMED("the device cache's keys against lesson 04's, at (b, g, position, column)",
                           device.keys(), host_k, (Tolerance{0.0, 0.0, "a copy is exact"}));
    ATTN_CHECK_CLOSE_NAMED("the device cache's values against lesson 04's, at (b, g, position, column)",
                           device.values(), host_v, (Tolerance{0.0, 0.0, "a copy is exact"}));
  }
  CHECK(device.length() == cap);
}

TEST_CASE("a device append past capacity is out_of_range and leaves the cache unchanged") {
  DeviceKVCache cache(1, 2, 6, 4);
  const Tensor4 four = random_uniform<4>({1, 2, 4, 4}, 1010);
  cache.append(four, four);
  const Tensor4 before = cache.keys();
  const Tensor4 three = random_uniform<4>({1, 2, 3, 4}, 1011);
  CHECK_THROWS_WITH_AS(cache.append(three, three),
                       "DeviceKVCache::append: no room: capacity 6, length 4, given Tn = 3 new tokens (at most 2 fit)",
                       std::out_of_range);
  CHECK(cache.length() == 4);
  ATTN_CHECK_CLOSE_NAMED("the keys after the refused append", cache.keys(), before,
                         (Tolerance{0.0, 0.0, "unchanged"}));
  const Tensor4 wrong_heads = random_uniform<4>({1, 3, 1, 4}, 1012);
  CHECK_THROWS_WITH_AS(cache.append(wrong_heads, wrong_heads),
                       "DeviceKVCache::append: k_new (B, G, Tn, D): expected shape (1, 2, 1, 4), given (1, 3, 1, 4)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(cache.append(four, three),
                       "DeviceKVCache::append: v_new (the shape of k_new): expected shape (1, 2, 4, 4), given "
                       "(1, 2, 3, 4)",
                       std::invalid_argument);
  CHECK(cache.length() == 4);
}

// The copy alone (no append) is checked in test_5_decode.cpp, before decode reads it.
TEST_CASE("a device cache made from lesson 04's goes on growing by append, after the copied tokens") {
  KVCache host(2, 2, 9, 3);
  const Tensor4 k = random_uniform<4>({2, 2, 5, 3}, 1020), v = random_uniform<4>({2, 2, 5, 3}, 1021);
  host.append(k, v);
  DeviceKVCache device(host);
  REQUIRE(device.length() == 5);
  const Tensor4 one = random_uniform<4>({2, 2, 1, 3}, 1022), two = random_uniform<4>({2, 2, 1, 3}, 1023);
  device.append(one, two);
  host.append(one, two);
  CHECK(device.length() == 6);
  const Tensor4 host_k = host.keys(), host_v = host.values();
  ATTN_CHECK_CLOSE_NAMED("the keys after the append, against lesson 04's, at (b, g, position, column)", device.keys(),
                         host_k, (Tolerance{0.0, 0.0, "a copy is exact"}));
  ATTN_CHECK_CLOSE_NAMED("the values after the append, against lesson 04's, at (b, g, position, column)",
                         device.values(), host_v, (Tolerance{0.0, 0.0, "a copy is exact"}));
}
