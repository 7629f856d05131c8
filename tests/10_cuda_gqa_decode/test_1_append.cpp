// Lesson 10, part 1: the KV cache in device memory, appended to by a kernel, checked
// against lesson 04's KVCache fed the same tokens.
#include "gqa_decode.hpp"

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"
#include "kv_cache.hpp"

using namespace attn;

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
    ATTN_CHECK_CLOSE(device.keys(), host_k, (Tolerance{0.0, 0.0, "a copy is exact"}));
    ATTN_CHECK_CLOSE(device.values(), host_v, (Tolerance{0.0, 0.0, "a copy is exact"}));
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
  ATTN_CHECK_CLOSE(cache.keys(), before, (Tolerance{0.0, 0.0, "unchanged"}));
  const Tensor4 wrong_heads = random_uniform<4>({1, 3, 1, 4}, 1012);
  CHECK_THROWS_AS(cache.append(wrong_heads, wrong_heads), std::invalid_argument);
  CHECK_THROWS_AS(cache.append(four, three), std::invalid_argument);
  CHECK(cache.length() == 4);
}
