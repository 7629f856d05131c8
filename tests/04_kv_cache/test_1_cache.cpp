// Lesson 04, part 1: a cache of fixed capacity, allocated once, seen through views.
#include "kv_cache.hpp"

#include <array>

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("a new cache is empty and keeps the sizes it was given") {
  const KVCache cache(2, 3, 10, 4);
  CHECK(cache.length() == 0);
  CHECK(cache.capacity() == 10);
  CHECK(cache.batch() == 2);
  CHECK(cache.kv_heads() == 3);
  CHECK(cache.head_dim() == 4);
  CHECK(cache.keys().shape() == std::array<std::size_t, 4>{2, 3, 0, 4});
  CHECK(cache.values().shape() == std::array<std::size_t, 4>{2, 3, 0, 4});
}
