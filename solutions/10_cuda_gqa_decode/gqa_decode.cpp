// Lesson 10, the host side: the device KV cache and decode attention over it.
// Fill in each body between TODO(10.k) and END TODO(10.k), in the order of the README.
#include "gqa_decode.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include <xtensor/xview.hpp>

#include "decode_kernels.hpp"
#include "gqa.hpp"
#include "kv_cache.hpp"

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

/// The (B, G, length, D) tokens of a view of lesson 04's cache in a (B, G, capacity, D)
/// tensor, zeros past length: the layout of the device buffers.
template <class View>
Tensor4 padded_to_capacity(const View& stored, std::size_t capacity) {
  Tensor4 all = xt::zeros<float>({stored.shape(0), stored.shape(1), capacity, stored.shape(3)});
  xt::view(all, xt::all(), xt::all(), xt::range(std::size_t{0}, stored.shape(2)), xt::all()) = stored;
  return all;
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

DeviceKVCache::DeviceKVCache(const KVCache& host)
    : DeviceKVCache(host.batch(), host.kv_heads(), host.capacity(), host.head_dim()) {
  const Tensor4 k = padded_to_capacity(host.keys(), capacity_), v = padded_to_capacity(host.values(), capacity_);
  k_.upload(std::span<const float>(k.data(), k.size()));
  v_.upload(std::span<const float>(v.data(), v.size()));
  length_ = host.length();
}

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
  // Lesson 04's checks, with its messages, before anything is written: a refused append
  // leaves the cache unchanged.
  constexpr auto where = "DeviceKVCache::append";
  const std::size_t tn = k_new.shape(2);
  require_shape(where, "k_new (B, G, Tn, D)", std::array{batch_, kv_heads_, tn, head_dim_}, k_new.shape());
  require_shape(where, "v_new (the shape of k_new)", k_new.shape(), v_new.shape());
  require_in_range(tn <= capacity_ - length_, where,
                   "no room: capacity " + std::to_string(capacity_) + ", length " + std::to_string(length_) +
                       ", given Tn = " + std::to_string(tn) + " new tokens (at most " +
                       std::to_string(capacity_ - length_) + " fit)");
  if (tn == 0) return;  // nothing to write, and a grid cannot be empty
  // TODO(10.2): k_new and v_new to the device; launch_kv_append at position length_ (the kernel takes int sizes: to_int); then length_ += Tn
  const cuda::DeviceBuffer<float> dk = to_device(k_new), dv = to_device(v_new);  // (B, G, Tn, D)
  gpu::launch_kv_append(dk.get(), dv.get(), k_.get(), v_.get(), to_int(batch_, where, "B"),
                        to_int(kv_heads_, where, "G"), to_int(tn, where, "Tn"),
                        to_int(capacity_, where, "capacity"), to_int(head_dim_, where, "D"),
                        to_int(length_, where, "length"));
  length_ += tn;
  // END TODO(10.2)
}

Tensor4 gqa_decode_gpu(const Tensor4& q, const DeviceKVCache& cache, std::size_t splits) {
  constexpr auto where = "gqa_decode_gpu";
  const std::size_t nb = q.shape(0), nh = q.shape(1), d = q.shape(3), ng = cache.kv_heads();
  require_in_range(cache.length() > 0, where, "the cache is empty: decode needs at least one cached key");
  require_equal(where, "queries per sequence (decode: Tq of q)", 1, q.shape(2));
  // Lesson 03's checks of q against K and V (batch, D, G dividing H). The cache has no
  // host tensors: one position of zeros of its (B, G, ., D) stands for them; a decode
  // query sees every key, so neither a mask nor positions are checked.
  const Tensor4 kv_shape = xt::zeros<float>({cache.batch(), ng, std::size_t{1}, cache.head_dim()});
  check_gqa_arguments(q, kv_shape, kv_shape, Mask::none, 0, where);
  // This kernel's limits.
  require(nh / ng <= static_cast<std::size_t>(gpu::kDecodeMaxGroup), where,
          "at most " + std::to_string(gpu::kDecodeMaxGroup) +
              " query heads per KV head (a warp each in one block), given H / G = " + std::to_string(nh / ng));
  require(d <= static_cast<std::size_t>(gpu::kDecodeMaxHeadDim), where,
          "the head dimension must be at most " + std::to_string(gpu::kDecodeMaxHeadDim) + ", given D = " +
              std::to_string(d));
  require(splits >= 1, where, "splits must be at least 1, given 0");
  require(nb * ng <= 65535, where,
          "B * G must be at most 65535 (the grid's y dimension), given " + std::to_string(nb * ng));
  // TODO(10.11): device buffers for q, the partial results and out; launch_gqa_decode over the cache's buffers (int sizes: to_int; scale 1/sqrt(D)); out back to the host
  // 1. device buffers: q (B, H, 1, D), partial_o (B, H, splits, D), partial_ml (B, H, splits, 2), out (B, H, 1, D)
  const cuda::DeviceBuffer<float> dq = to_device(q);
  cuda::DeviceBuffer<float> partial_o(nb * nh * splits * d);
  cuda::DeviceBuffer<float> partial_ml(nb * nh * splits * 2);
  cuda::DeviceBuffer<float> out(q.size());
  // 2. gpu::launch_gqa_decode over cache.keys_device() and cache.values_device(), with scale 1 / sqrt(D)
  const int b = to_int(nb, where, "B"), h = to_int(nh, where, "H"), g = to_int(ng, where, "G");
  const int id = to_int(d, where, "D"), length = to_int(cache.length(), where, "length");
  const int capacity = to_int(cache.capacity(), where, "capacity"), isplits = to_int(splits, where, "splits");
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  gpu::launch_gqa_decode(dq.get(), cache.keys_device(), cache.values_device(), partial_o.get(),
                         partial_ml.get(), out.get(), b, h, g, length, capacity, id, scale, isplits);
  // 3. out back to the host, in a tensor of q's shape
  Tensor4 result(q.shape());
  const std::vector<float> host = out.download();
  std::copy(host.begin(), host.end(), result.begin());
  return result;
  // END TODO(10.11)
}

}  // namespace attn
