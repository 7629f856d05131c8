// Lesson 04, part 1: a cache of fixed capacity, allocated once, seen through views.
#include "kv_cache.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <stdexcept>

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("a new cache is empty, keeps the sizes it was given and refuses a size of 0") {
  // The constructor is given code (README section 3); keys() and values() are TODO 04.1.
  const KVCache cache(2, 3, 10, 4);
  CHECK(cache.length() == 0);
  CHECK(cache.capacity() == 10);
  CHECK(cache.batch() == 2);
  CHECK(cache.kv_heads() == 3);
  CHECK(cache.head_dim() == 4);
  CHECK_THROWS_WITH_AS(KVCache(0, 3, 10, 4),
                       "KVCache: every size must be positive: given batch 0, kv_heads 3, "
                       "capacity 10, head_dim 4",
                       std::invalid_argument);
  CHECK_THROWS_AS(KVCache(2, 0, 10, 4), std::invalid_argument);
  CHECK_THROWS_AS(KVCache(2, 3, 0, 4), std::invalid_argument);
  CHECK_THROWS_AS(KVCache(2, 3, 10, 0), std::invalid_argument);
  CHECK(cache.keys().shape() == std::array<std::size_t, 4>{2, 3, 0, 4});
  CHECK(cache.values().shape() == std::array<std::size_t, 4>{2, 3, 0, 4});
}

TEST_CASE("keys() and values() are views into two distinct (B, G, capacity, D) buffers") {
  const std::size_t nb = 2, ng = 3, cap = 10, d = 4;
  const KVCache cache(nb, ng, cap, d);
  const KVView k = cache.keys(), v = cache.values();
  // The strides of the whole buffer, not of a compact (B, G, length, D) copy: moving
  // one KV head skips capacity positions, stored or not.
  const std::array<std::ptrdiff_t, 4> buffer_strides{ng * cap * d, cap * d, d, 1};
  CHECK(std::equal(k.strides().begin(), k.strides().end(), buffer_strides.begin()));
  CHECK(std::equal(v.strides().begin(), v.strides().end(), buffer_strides.begin()));
  // Two views of the same buffer start at the same address; K and V are apart.
  CHECK(cache.keys().data() + cache.keys().data_offset() == k.data() + k.data_offset());
  CHECK(k.data() != v.data());
  // Each buffer holds the whole capacity: the two do not overlap.
  const float* k0 = k.data();
  const float* v0 = v.data();
  CHECK((v0 >= k0 + nb * ng * cap * d || k0 >= v0 + nb * ng * cap * d));
}
