/// @file kv_cache.hpp
/// @brief Lesson 04: the KV cache. During generation the keys and values of past tokens
///        never change, so each layer keeps them in two preallocated buffers, K and V,
///        each (B, G, capacity, D): G key/value heads, never expanded to the H query heads.
///        A decode step appends one token and attends over the cache in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/core.hpp"

namespace attn {

/// A read-only (B, G, length, D) window on a (B, G, capacity, D) cache buffer:
/// xt::view(buffer, all, all, range(0, length), all). It copies nothing; its strides are
/// the buffer's, and it stays valid while the cache it came from is alive and not moved.
using KVView = decltype(xt::view(std::declval<const Tensor4&>(), xt::all(), xt::all(),
                                 xt::range(std::size_t{0}, std::size_t{0}), xt::all()));

/// The keys and values of one attention layer for a batch of sequences that advance
/// together. Both buffers are allocated once, in the constructor; append copies new
/// tokens into the next free positions and never reallocates.
class KVCache {
 public:
  /// Allocates K and V, each (batch, kv_heads, capacity, head_dim), filled with zeros: the
  /// only allocation the cache makes (given code, README section 3).
  /// @throws std::invalid_argument if any size is 0.
  KVCache(std::size_t batch, std::size_t kv_heads, std::size_t capacity, std::size_t head_dim);

  /// Copies Tn new tokens into positions length() ... length() + Tn - 1, then length() += Tn.
  /// Any Tn works: the whole prompt at once (prefill) or one token (decode).
  /// @param k_new (B, G, Tn, D)
  /// @param v_new (B, G, Tn, D)
  /// @throws std::invalid_argument if B, G or D differ from the cache's, or k_new and v_new
  ///         differ in length.
  /// @throws std::out_of_range if length() + Tn > capacity(); the cache is then unchanged.
  void append(const Tensor4& k_new, const Tensor4& v_new);

  /// Number of tokens stored, T.
  std::size_t length() const { return length_; }
  /// Number of tokens the buffers can hold, T_max.
  std::size_t capacity() const { return capacity_; }
  std::size_t batch() const { return batch_; }        ///< B
  std::size_t kv_heads() const { return kv_heads_; }  ///< G
  std::size_t head_dim() const { return head_dim_; }  ///< D

  /// The stored keys, (B, G, length(), D): a view of the K buffer, no copy.
  KVView keys() const { return valid_prefix(k_); }
  /// The stored values, (B, G, length(), D): a view of the V buffer, no copy.
  KVView values() const { return valid_prefix(v_); }

  /// Forgets every token (length() becomes 0) and keeps both buffers for the next sequence.
  void reset();

  /// Bytes of the two buffers: 2 B G capacity D sizeof(float).
  std::size_t bytes_allocated() const;
  /// Bytes holding stored tokens: 2 B G length D sizeof(float).
  std::size_t bytes_used() const;

 private:
  /// Positions 0 ... length() - 1 of a buffer, as a view.
  KVView valid_prefix(const Tensor4& buffer) const;

  std::size_t batch_ = 0, kv_heads_ = 0, capacity_ = 0, head_dim_ = 0;
  std::size_t length_ = 0;  // T, tokens stored
  Tensor4 k_;               // (B, G, capacity, D)
  Tensor4 v_;               // (B, G, capacity, D)
};

/// Bytes of a KV cache: 2 (K and V) x layers x batch x kv_heads x tokens x head_dim x
/// element_bytes. Any size may be 0 (the product is then 0).
/// @throws std::overflow_error if the product does not fit in 64 bits.
std::uint64_t kv_cache_bytes(std::uint64_t layers, std::uint64_t batch, std::uint64_t kv_heads,
                             std::uint64_t tokens, std::uint64_t head_dim,
                             std::uint64_t element_bytes);

/// The checks of cached attention (given): values of the shape of keys, B and D of q equal
/// to theirs, G dividing H (std::invalid_argument), Tq <= T (std::out_of_range), at least
/// one stored key (std::invalid_argument); every message starts with `where`.
/// @param q      (B, H, Tq, D)
/// @param keys   (B, G, T, D), a view of a cache's K buffer
/// @param values (B, G, T, D), a view of a cache's V buffer
/// @param where  the caller, the first word of every message
void check_cached_attention(const Tensor4& q, const KVView& keys, const KVView& values,
                            std::string_view where);

/// One query row of cached attention, reading keys and values in place: out_row =
/// sum_j softmax_j(q_row . k_j / sqrt(D)) v_j over j = 0 ... last, where key j is the D
/// floats at k_rows + j * row_stride and value j those at v_rows + j * row_stride.
/// @param q_row      D floats
/// @param k_rows     key 0 of the row's KV head; key j starts row_stride floats after key j-1
/// @param v_rows     value 0, laid out as the keys
/// @param row_stride floats from one position to the next (D for the cache's buffers)
/// @param last       the last position the row may see (inclusive)
/// @param d          D, the head dimension
/// @param weights    scratch for the last + 1 attention weights (the caller allocates it once)
/// @param out_row    D floats, overwritten
void attend_cached_row(const float* q_row, const float* k_rows, const float* v_rows,
                       std::size_t row_stride, std::size_t last, std::size_t d, float* weights,
                       float* out_row);

/// Causal grouped-query attention of the last Tq positions over stored keys and values,
/// read in place through their views (no copy of K or V). Query row i sits at position
/// T - Tq + i and sees keys 0 ... T - Tq + i; query head h reads KV head h / (H/G).
/// Equals gqa_attention(q, keys, values, Mask::causal, T - Tq).
/// @param q      (B, H, Tq, D), G dividing H: the queries of the tokens appended last
/// @param keys   (B, G, T, D), T >= Tq and T >= 1: a view of a (B, G, capacity, D) buffer
/// @param values (B, G, T, D), the same kind of view
/// @return       (B, H, Tq, D)
/// @throws as check_cached_attention, in messages that start "gqa_attention_in_place: ".
Tensor4 gqa_attention_in_place(const Tensor4& q, const KVView& keys, const KVView& values);

/// Causal grouped-query attention of the last Tq positions over the cache:
/// gqa_attention_in_place(q, cache.keys(), cache.values()), reading the cache's buffers in
/// place. Query row i sits at position length() - Tq + i.
/// @param q     (B, H, Tq, D), G dividing H: the queries of the tokens appended last
/// @param cache holds at least Tq tokens, and at least one
/// @return      (B, H, Tq, D)
/// @throws std::invalid_argument if B or D differ from the cache's, G does not divide H,
///         or the cache is empty (no key to attend to).
/// @throws std::out_of_range if Tq > cache.length().
Tensor4 gqa_attention_cached(const Tensor4& q, const KVCache& cache);

/// One KVCache per layer of a model, all of the same sizes and advancing together: a
/// decode step appends one token to every layer.
class MultiLayerKVCache {
 public:
  /// @throws std::invalid_argument if any size is 0.
  MultiLayerKVCache(std::size_t layers, std::size_t batch, std::size_t kv_heads,
                    std::size_t capacity, std::size_t head_dim);

  /// Number of layers, L.
  std::size_t layers() const { return layers_.size(); }
  /// The cache of layer l. @throws std::out_of_range if l >= layers().
  KVCache& layer(std::size_t l);
  /// The cache of layer l. @throws std::out_of_range if l >= layers().
  const KVCache& layer(std::size_t l) const;

  /// Tokens stored in layer 0 (every layer holds as many after a full step).
  std::size_t length() const { return layers_.front().length(); }
  /// Tokens each layer can hold.
  std::size_t capacity() const { return layers_.front().capacity(); }
  /// Resets every layer.
  void reset();

  /// Sum over the layers: 2 L B G capacity D sizeof(float).
  std::size_t bytes_allocated() const;
  /// Sum over the layers: 2 L B G length D sizeof(float) when every layer holds length tokens.
  std::size_t bytes_used() const;

 private:
  std::vector<KVCache> layers_;
};

}  // namespace attn
