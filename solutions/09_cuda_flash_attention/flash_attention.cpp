// Lesson 09, the host side: check, copy to the device, launch the fused kernel, copy back.
// Fill in the body between TODO(09.1) and END TODO(09.1).
#include "flash_attention.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "attn/device_buffer.hpp"
#include "flash_kernels.hpp"

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

/// Copies a device array back into a tensor of the given shape (row-major).
inline Tensor4 to_host(const cuda::DeviceBuffer<float>& buffer, const Tensor4::shape_type& shape) {
  Tensor4 t(shape);
  const std::vector<float> host = buffer.download();
  std::copy(host.begin(), host.end(), t.begin());
  return t;
}

}  // namespace

Tensor4 flash_attention_gpu(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                            std::size_t q_offset) {
  // TODO(09.1): the checks of lesson 03 and 1 <= D <= kFlashMaxHeadDim; q, k, v to the device; launch_flash_attention; the output back
  constexpr auto where = "flash_attention_gpu";
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t ng = k.shape(1), tk = k.shape(2);
  require_equal(where, "batch of k (B of q)", nb, k.shape(0));
  require_equal(where, "head dimension of k (D of q)", d, k.shape(3));
  require_equal(where, "batch of v (B of q)", nb, v.shape(0));
  require_equal(where, "KV heads of v (G of k)", ng, v.shape(1));
  require_equal(where, "length of v (Tk of k)", tk, v.shape(2));
  require_equal(where, "head dimension of v (D of q)", d, v.shape(3));
  require(ng > 0 && nh % ng == 0, where,
          "the query heads must be a multiple of the KV heads: given H = " + std::to_string(nh) +
              " query heads and G = " + std::to_string(ng) + " KV heads");
  require(tk > 0, where, "attention needs at least one key, given Tk = 0");
  require(d >= 1 && d <= static_cast<std::size_t>(gpu::kFlashMaxHeadDim), where,
          "the head dimension must be between 1 and " + std::to_string(gpu::kFlashMaxHeadDim) +
              " (the kernel's shared-memory tiles), given D = " + std::to_string(d));
  require(nb * nh <= 65535, where,
          "B * H must be at most 65535 (the grid's y dimension), given " + std::to_string(nb * nh));
  if (mask == Mask::none) {
    require_equal(where, "q_offset with Mask::none (only a causal mask uses positions)", 0, q_offset);
  } else {
    require_in_range(q_offset <= tk && tq <= tk - q_offset, where,
                     "query positions past the last key: expected q_offset + Tq <= Tk = " +
                         std::to_string(tk) + ", given q_offset = " + std::to_string(q_offset) +
                         " and Tq = " + std::to_string(tq));
  }
  const int b = to_int(nb, where, "B"), h = to_int(nh, where, "H"), g = to_int(ng, where, "G");
  const int iq = to_int(tq, where, "Tq"), ik = to_int(tk, where, "Tk"), id = to_int(d, where, "D");
  const int offset = to_int(q_offset, where, "q_offset");
  to_int(std::max(q.size(), k.size()), where, "the elements of q and of k");
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));

  if (q.size() == 0) return Tensor4(q.shape());
  const cuda::DeviceBuffer<float> dq = to_device(q), dk = to_device(k), dv = to_device(v);
  cuda::DeviceBuffer<float> out(q.size());  // (B, H, Tq, D); no (B, H, Tq, Tk) scores anywhere
  gpu::launch_flash_attention(dq.get(), dk.get(), dv.get(), out.get(), b, h, g, iq, ik, id, scale,
                              mask == Mask::causal, offset);
  return to_host(out, q.shape());
  // END TODO(09.1)
}

}  // namespace attn
