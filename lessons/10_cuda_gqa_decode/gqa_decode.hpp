/// @file gqa_decode.hpp
/// @brief Lesson 10: a KV cache in device memory and GQA decode attention over it,
///        on a GPU or on the CPU emulator.
#pragma once

#include <cstddef>

#include "attn/core.hpp"
#include "attn/device_buffer.hpp"

namespace attn {

class KVCache;  // lesson 04

/// One layer's K and V cache in device memory, each (B, G, capacity, D) float32, in
/// the compact G-head layout of lesson 04: allocated once, appended to on the device.
class DeviceKVCache {
 public:
  /// @throws std::invalid_argument if any size is 0.
  DeviceKVCache(std::size_t batch, std::size_t kv_heads, std::size_t capacity, std::size_t head_dim);

  /// A copy of lesson 04's cache on the device: its sizes, its length and the tokens it
  /// holds (a prompt prefilled on the host, say). Copies by cudaMemcpy, not by append.
  explicit DeviceKVCache(const KVCache& host);

  /// Copies k_new and v_new (B, G, Tn, D) to the device and writes them, by a kernel,
  /// at positions length() .. length() + Tn - 1.
  /// @throws std::invalid_argument if B, G or D differ from the cache's, or k_new and
  ///         v_new differ in shape.
  /// @throws std::out_of_range if length() + Tn > capacity(); the cache is then unchanged.
  void append(const Tensor4& k_new, const Tensor4& v_new);

  std::size_t length() const { return length_; }      ///< positions stored so far
  std::size_t capacity() const { return capacity_; }  ///< positions it can hold
  std::size_t batch() const { return batch_; }        ///< B
  std::size_t kv_heads() const { return kv_heads_; }  ///< G
  std::size_t head_dim() const { return head_dim_; }  ///< D
  const float* keys_device() const { return k_.get(); }    ///< (B, G, capacity, D)
  const float* values_device() const { return v_.get(); }  ///< (B, G, capacity, D)

  /// A copy of the cached keys, (B, G, length, D): for tests and debugging.
  Tensor4 keys() const;
  /// A copy of the cached values, (B, G, length, D): for tests and debugging.
  Tensor4 values() const;

 private:
  Tensor4 download_prefix(const cuda::DeviceBuffer<float>& buffer) const;

  std::size_t batch_, kv_heads_, capacity_, head_dim_;
  std::size_t length_ = 0;
  cuda::DeviceBuffer<float> k_;  // (B, G, capacity, D)
  cuda::DeviceBuffer<float> v_;  // (B, G, capacity, D)
};

/// Decode attention: one new query per sequence, q (B, H, 1, D), at position
/// cache.length() - 1, over every cached key (causal by construction). Query head h
/// reads KV head h / (H / G). The keys are cut into `splits` chunks processed by
/// separate blocks and combined (flash-decoding); splits = 1 is one block per
/// (batch, KV head). The result does not depend on `splits` beyond rounding.
/// @return (B, H, 1, D)
/// @throws std::invalid_argument if q is not (B, H, 1, D) with the cache's B and D,
///         G does not divide H, H / G > 16, D > 128, or splits == 0.
/// @throws std::out_of_range if the cache is empty.
Tensor4 gqa_decode_gpu(const Tensor4& q, const DeviceKVCache& cache, std::size_t splits);

}  // namespace attn
