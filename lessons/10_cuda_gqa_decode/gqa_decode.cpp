// Lesson 10, the host side: the device KV cache and decode attention over it.
// Fill in each body between TODO(10.k) and END TODO(10.k), in the order of the README.
#include "gqa_decode.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "decode_kernels.hpp"

namespace attn {

namespace {

/// A size as the int that kernels index with.
inline int to_int(std::size_t n, const char* where, const char* what) {
  require(n <= static_cast<std::size_t>(INT_MAX), where,
          std::string(what) + " must be below 2^31, given " + std::to_string(n));
  return static_cast<int>(n);
}

/// A tensor's elements, in row-major order, as a device array.
inline cuda::DeviceBuffer<float> to_device(const Tensor4& t) {
  return cuda::DeviceBuffer<float>(std::span<const float>(t.data(), t.size()));
}

/// B * G * capacity * D, after checking that no size is 0.
std::size_t cache_elements(std::size_t batch, std::size_t kv_heads, std::size_t capacity,
                           std::size_t head_dim) {
  require(batch > 0 && kv_heads > 0 && capacity > 0 && head_dim > 0, "DeviceKVCache",
          "every size must be positive, given B = " + std::to_string(batch) + ", G = " +
              std::to_string(kv_heads) + ", capacity = " + std::to_string(capacity) +
              ", D = " + std::to_string(head_dim));
  return batch * kv_heads * capacity * head_dim;
}

}  // namespace

DeviceKVCache::DeviceKVCache(std::size_t batch, std::size_t kv_heads, std::size_t capacity,
                             std::size_t head_dim)
    : batch_(batch),
      kv_heads_(kv_heads),
      capacity_(capacity),
      head_dim_(head_dim),
      k_(cache_elements(batch, kv_heads, capacity, head_dim)),
      v_(cache_elements(batch, kv_heads, capacity, head_dim)) {}

Tensor4 DeviceKVCache::download_prefix(const cuda::DeviceBuffer<float>& buffer) const {
  const std::vector<float> all = buffer.download();  // (B, G, capacity, D)
  Tensor4 t({batch_, kv_heads_, length_, head_dim_});
  auto out = t.begin();
  for (std::size_t row = 0; row < batch_ * kv_heads_; ++row) {
    const auto first = all.begin() + static_cast<std::ptrdiff_t>(row * capacity_ * head_dim_);
    out = std::copy(first, first + static_cast<std::ptrdiff_t>(length_ * head_dim_), out);
  }
  return t;
}

Tensor4 DeviceKVCache::keys() const { return download_prefix(k_); }
Tensor4 DeviceKVCache::values() const { return download_prefix(v_); }

void DeviceKVCache::append(const Tensor4& k_new, const Tensor4& v_new) {
  // TODO(10.1): lesson 04's checks (shapes, then room, before writing anything); k_new and v_new to the device; launch_kv_append at length_; length_ += Tn
  throw NotImplemented("10.1", "3. The cache on the device, and append");
  // END TODO(10.1)
}

Tensor4 gqa_decode_gpu(const Tensor4& q, const DeviceKVCache& cache, std::size_t splits) {
  // TODO(10.3): check q (B, H, 1, D) against the cache, the group size, D and splits; device buffers for q, the partials and out; launch_gqa_decode; out back
  throw NotImplemented("10.3", "4. One block per KV head: the whole group at once");
  // END TODO(10.3)
}

}  // namespace attn
