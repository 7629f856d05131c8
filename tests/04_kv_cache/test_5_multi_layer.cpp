// Lesson 04, part 5: one cache per layer.
#include "kv_cache.hpp"

#include <cstddef>
#include <stdexcept>
#include <utility>

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("a multi-layer cache holds L separate caches of the same sizes") {
  const std::size_t nl = 3, nb = 2, ng = 2, cap = 7, d = 4;
  MultiLayerKVCache cache(nl, nb, ng, cap, d);
  CHECK(cache.layers() == nl);
  CHECK(cache.length() == 0);
  CHECK(cache.capacity() == cap);
  for (std::size_t l = 0; l < nl; ++l) {
    CAPTURE(l);
    const KVCache& layer = std::as_const(cache).layer(l);
    CHECK(layer.batch() == nb);
    CHECK(layer.kv_heads() == ng);
    CHECK(layer.capacity() == cap);
    CHECK(layer.head_dim() == d);
    CHECK(&cache.layer(l) == &layer);  // the same cache through either overload
    for (std::size_t m = 0; m < l; ++m) CHECK(cache.layer(m).keys().data() != layer.keys().data());
  }
  // Each layer gets its own tokens: appending to layer 1 leaves layers 0 and 2 alone.
  const Tensor4 k = random_uniform<4>({nb, ng, 3, d}, 5001, 1.0f, 2.0f);
  cache.layer(1).append(k, k);
  CHECK(cache.layer(0).length() == 0);
  CHECK(cache.layer(1).length() == 3);
  CHECK(cache.layer(2).length() == 0);
  CHECK(cache.layer(1).keys()(1, 1, 2, 3) == k(1, 1, 2, 3));
  // A full decode step: every layer gets one token; length is layer 0's.
  const Tensor4 one = random_uniform<4>({nb, ng, 1, d}, 5002);
  for (std::size_t l = 0; l < nl; ++l) cache.layer(l).append(one, one);
  CHECK(cache.length() == 1);
  CHECK(cache.layer(1).length() == 4);
}

TEST_CASE("a layer index past the last layer is std::out_of_range and zero layers is std::invalid_argument") {
  MultiLayerKVCache cache(2, 1, 1, 4, 2);
  CHECK_THROWS_WITH_AS(cache.layer(2),
                       "MultiLayerKVCache::layer: layer index out of range: expected l < 2 layers, "
                       "given l = 2",
                       std::out_of_range);
  CHECK_THROWS_AS(std::as_const(cache).layer(5), std::out_of_range);
  CHECK_THROWS_WITH_AS(MultiLayerKVCache(0, 1, 1, 4, 2),
                       "MultiLayerKVCache: layers must be positive, given 0",
                       std::invalid_argument);
  CHECK_THROWS_AS(MultiLayerKVCache(2, 1, 0, 4, 2), std::invalid_argument);
}

TEST_CASE("multi-layer byte accounting is 2 L B G T D sizeof(float) exactly, and reset empties every layer") {
  const std::size_t nl = 4, nb = 2, ng = 3, cap = 9, d = 5;
  MultiLayerKVCache cache(nl, nb, ng, cap, d);
  CHECK(cache.bytes_allocated() == 2 * nl * nb * ng * cap * d * sizeof(float));
  CHECK(cache.bytes_used() == 0);
  std::size_t length = 0;
  for (std::size_t tn : {5, 1, 1}) {
    const Tensor4 x = random_uniform<4>({nb, ng, tn, d}, 5100 + tn);
    for (std::size_t l = 0; l < nl; ++l) cache.layer(l).append(x, x);
    length += tn;
    CHECK(cache.length() == length);
    CHECK(cache.bytes_used() == 2 * nl * nb * ng * length * d * sizeof(float));
    CHECK(cache.bytes_used() == kv_cache_bytes(nl, nb, ng, length, d, sizeof(float)));
  }
  cache.reset();
  CHECK(cache.length() == 0);
  for (std::size_t l = 0; l < nl; ++l) CHECK(cache.layer(l).length() == 0);
  CHECK(cache.bytes_used() == 0);
  CHECK(cache.bytes_allocated() == 2 * nl * nb * ng * cap * d * sizeof(float));
}
