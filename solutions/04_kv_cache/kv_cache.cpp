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
  return xt::view(buffer, xt::all(), xt::all(), xt::range(std::size_t{0}, length_), xt::all());
  // END TODO(04.1)
}

void KVCache::append(const Tensor4& k_new, const Tensor4& v_new) {
  // TODO(04.2): check shapes, then room (before writing anything); copy into positions length_ ... length_ + Tn - 1
  constexpr auto where = "KVCache::append";
  const std::size_t tn = k_new.shape(2);
  require_shape(where, "k_new (B, G, Tn, D)", std::array{batch_, kv_heads_, tn, head_dim_},
                k_new.shape());
  require_shape(where, "v_new (the shape of k_new)", k_new.shape(), v_new.shape());
  // Written so that a huge Tn cannot wrap the sum around.
  require_in_range(tn <= capacity_ - length_, where,
                   "no room: capacity " + std::to_string(capacity_) + ", length " +
                       std::to_string(length_) + ", given Tn = " + std::to_string(tn) +
                       " new tokens (at most " + std::to_string(capacity_ - length_) + " fit)");
  xt::view(k_, xt::all(), xt::all(), xt::range(length_, length_ + tn), xt::all()) = k_new;
  xt::view(v_, xt::all(), xt::all(), xt::range(length_, length_ + tn), xt::all()) = v_new;
  length_ += tn;
  // END TODO(04.2)
}

void KVCache::reset() {
  // TODO(04.3): forget the tokens, keep the buffers
  length_ = 0;
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
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::array factors{layers, batch, kv_heads, tokens, head_dim, element_bytes};
  for (const std::uint64_t factor : factors)
    if (factor == 0) return 0;
  std::uint64_t bytes = 2;  // K and V
  for (const std::uint64_t factor : factors) {
    if (bytes > max / factor)  // bytes * factor > max, asked without overflowing
      throw std::overflow_error(
          "kv_cache_bytes: 2 x " + std::to_string(layers) + " layers x " + std::to_string(batch) +
          " batch x " + std::to_string(kv_heads) + " kv_heads x " + std::to_string(tokens) +
          " tokens x " + std::to_string(head_dim) + " head_dim x " + std::to_string(element_bytes) +
          " bytes does not fit in 64 bits (at most " + std::to_string(max) + ")");
    bytes *= factor;
  }
  return bytes;
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
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  // 1. the scores of keys 0 ... last, and their maximum
  float m = -std::numeric_limits<float>::infinity();
  for (std::size_t j = 0; j <= last; ++j) {
    const float* k_row = k_rows + j * row_stride;
    float s = 0.0f;
    for (std::size_t c = 0; c < d; ++c) s += q_row[c] * k_row[c];
    weights[j] = s * scale;
    m = std::max(m, weights[j]);
  }
  // 2. their exponentials, shifted by the maximum, and their sum
  float sum = 0.0f;
  for (std::size_t j = 0; j <= last; ++j) sum += weights[j] = std::exp(weights[j] - m);
  // 3. out_row = the sum of the values of the same positions, weighted
  for (std::size_t c = 0; c < d; ++c) out_row[c] = 0.0f;
  for (std::size_t j = 0; j <= last; ++j) {
    const float w = weights[j] / sum;
    const float* v_row = v_rows + j * row_stride;
    for (std::size_t c = 0; c < d; ++c) out_row[c] += w * v_row[c];
  }
  // END TODO(04.5)
}

Tensor4 gqa_attention_in_place(const Tensor4& q, const KVView& keys, const KVView& values) {
  check_cached_attention(q, keys, values, "gqa_attention_in_place");
  // TODO(04.6): for each (b, h) and query row i: attend_cached_row over keys 0 ... T - Tq + i of KV head h / (H/G), read in place
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t length = keys.shape(2);
  const std::size_t q_offset = length - tq;     // query row i sits at position q_offset + i
  const std::size_t group = nh / keys.shape(1);  // query heads per KV head
  // Within one (b, g), position j's D numbers are contiguous and positions are
  // row_stride apart (D: the buffers are (B, G, capacity, D), K and V alike).
  const auto row_stride = static_cast<std::size_t>(keys.strides()[2]);
  Tensor4 out({nb, nh, tq, d});
  std::vector<float> weights(length);  // the attention weights of one row, allocated once
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h) {
      const std::size_t g = h / group;
      for (std::size_t i = 0; i < tq; ++i)
        attend_cached_row(&q(b, h, i, 0), &keys(b, g, 0, 0), &values(b, g, 0, 0), row_stride,
                          q_offset + i, d, weights.data(), &out(b, h, i, 0));
    }
  return out;
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
  require(layers > 0, "MultiLayerKVCache", "layers must be positive, given 0");
  layers_.reserve(layers);
  for (std::size_t l = 0; l < layers; ++l) layers_.emplace_back(batch, kv_heads, capacity, head_dim);
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
