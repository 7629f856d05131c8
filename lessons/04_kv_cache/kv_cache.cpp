// Lesson 04: the KV cache. Fill in each body between TODO(04.k) and END TODO(04.k),
// in the order of the README.
#include "kv_cache.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace attn {

KVCache::KVCache(std::size_t batch, std::size_t kv_heads, std::size_t capacity,
                 std::size_t head_dim)
    : batch_(batch), kv_heads_(kv_heads), capacity_(capacity), head_dim_(head_dim) {
  require(batch > 0 && kv_heads > 0 && capacity > 0 && head_dim > 0, "KVCache",
          "every size must be positive: given batch " + std::to_string(batch) + ", kv_heads " +
              std::to_string(kv_heads) + ", capacity " + std::to_string(capacity) +
              ", head_dim " + std::to_string(head_dim));
  const std::array<std::size_t, 4> shape{batch, kv_heads, capacity, head_dim};
  k_ = xt::zeros<float>(shape);
  v_ = xt::zeros<float>(shape);  // the only allocation the cache ever makes
}

KVView KVCache::valid_prefix(const Tensor4& buffer) const {
  // TODO(04.1): a view of positions 0 ... length_ - 1 of buffer, every batch, head and dimension
  throw NotImplemented("04.1", "4. Views, not copies");
  // END TODO(04.1)
}

void KVCache::append(const Tensor4& k_new, const Tensor4& v_new) {
  // TODO(04.2): check shapes, then room (before writing anything); copy into positions length_ ... length_ + Tn - 1
  throw NotImplemented("04.2", "5. Appending, and the full cache");
  // END TODO(04.2)
}

void KVCache::reset() {
  // TODO(04.3): forget the tokens, keep the buffers
  throw NotImplemented("04.3", "5. Appending, and the full cache");
  // END TODO(04.3)
}

std::size_t KVCache::bytes_allocated() const {
  return kv_cache_bytes(1, batch_, kv_heads_, capacity_, head_dim_, sizeof(float));
}

std::size_t KVCache::bytes_used() const {
  return kv_cache_bytes(1, batch_, kv_heads_, length_, head_dim_, sizeof(float));
}

std::uint64_t kv_cache_bytes(std::uint64_t layers, std::uint64_t batch, std::uint64_t kv_heads,
                             std::uint64_t tokens, std::uint64_t head_dim,
                             std::uint64_t element_bytes) {
  // TODO(04.4): 2 * layers * batch * kv_heads * tokens * head_dim * element_bytes, refusing to overflow
  throw NotImplemented("04.4", "6. The memory formula");
  // END TODO(04.4)
}

void check_cached_attention(const Tensor4& q, const KVView& keys, const KVView& values,
                            std::string_view where) {
  const std::size_t nh = q.shape(1), tq = q.shape(2), ng = keys.shape(1), tk = keys.shape(2);
  require_shape(where, "values (the shape of keys)", keys.shape(), values.shape());
  require_equal(where, "batch of q (B of the cache)", keys.shape(0), q.shape(0));
  require_equal(where, "head dimension of q (D of the cache)", keys.shape(3), q.shape(3));
  require(ng > 0 && nh % ng == 0, where,
          "the query heads must be a multiple of the KV heads: given H = " + std::to_string(nh) +
              " query heads and G = " + std::to_string(ng) + " KV heads");
  require_in_range(tq <= tk, where,
                   "more queries than cached tokens: expected Tq <= length = " +
                       std::to_string(tk) + ", given Tq = " + std::to_string(tq));
  require(tk > 0, where, "attention needs at least one key, given an empty cache");
}

void attend_cached_row(const float* q_row, const float* k_rows, const float* v_rows,
                       std::size_t row_stride, std::size_t last, std::size_t d, float* weights,
                       float* out_row) {
  // TODO(04.5): scores of keys 0 ... last (k_rows + j * row_stride), scaled; softmax shifted by the max; out_row = the weighted sum of the values
  // 1. the scores of keys 0 ... last, and their maximum
  // 2. their exponentials, shifted by the maximum, and their sum
  // 3. out_row = the sum of the values of the same positions, weighted
  throw NotImplemented("04.5", "7. Attention over the cache");
  // END TODO(04.5)
}

Tensor4 gqa_attention_in_place(const Tensor4& q, const KVView& keys, const KVView& values) {
  check_cached_attention(q, keys, values, "gqa_attention_in_place");
  // TODO(04.6): for each (b, h) and query row i: attend_cached_row over keys 0 ... T - Tq + i of KV head h / (H/G), read in place
  throw NotImplemented("04.6", "7. Attention over the cache");
  // END TODO(04.6)
}

Tensor4 gqa_attention_cached(const Tensor4& q, const KVCache& cache) {
  const KVView keys = cache.keys(), values = cache.values();  // (B, G, T, D), no copy
  check_cached_attention(q, keys, values, "gqa_attention_cached");
  return gqa_attention_in_place(q, keys, values);
}

MultiLayerKVCache::MultiLayerKVCache(std::size_t layers, std::size_t batch, std::size_t kv_heads,
                                     std::size_t capacity, std::size_t head_dim) {
  // TODO(04.7): check layers > 0; one KVCache per layer, all of the same sizes
  throw NotImplemented("04.7", "9. Many layers");
  // END TODO(04.7)
}

KVCache& MultiLayerKVCache::layer(std::size_t l) {
  return const_cast<KVCache&>(std::as_const(*this).layer(l));
}

const KVCache& MultiLayerKVCache::layer(std::size_t l) const {
  require_in_range(l < layers_.size(), "MultiLayerKVCache::layer",
                   "layer index out of range: expected l < " + std::to_string(layers_.size()) +
                       " layers, given l = " + std::to_string(l));
  return layers_[l];
}

void MultiLayerKVCache::reset() {
  for (KVCache& c : layers_) c.reset();
}

std::size_t MultiLayerKVCache::bytes_allocated() const {
  std::size_t bytes = 0;
  for (const KVCache& c : layers_) bytes += c.bytes_allocated();
  return bytes;
}

std::size_t MultiLayerKVCache::bytes_used() const {
  std::size_t bytes = 0;
  for (const KVCache& c : layers_) bytes += c.bytes_used();
  return bytes;
}

}  // namespace attn
