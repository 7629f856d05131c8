// Lesson 09, the host side: check, copy to the device, launch the fused kernel, copy back.
// Fill in the body between TODO(09.1) and END TODO(09.1): the checks that both host
// functions below make.
#include "flash_attention.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "attn/cuda_fp16.hpp"
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

/// A tensor's elements rounded to half precision (to nearest, ties to even), as a device array.
inline cuda::DeviceBuffer<__half> to_device_half(const Tensor4& t) {
  std::vector<__half> halves(t.size());
  std::transform(t.begin(), t.end(), halves.begin(), [](float x) { return __float2half(x); });
  return cuda::DeviceBuffer<__half>(halves);
}

/// The sizes of a checked call, as the ints that kernels index with.
struct FlashSizes {
  int b, h, g, tq, tk, d, q_offset;
  float scale;
};

/// Checks a call of `where` (flash_attention_gpu or flash_attention_gpu_fp16): the
/// shapes, divisibility and offset rules of lesson 03 with its messages, and the
/// kernels' limits (1 <= D <= kFlashMaxHeadDim, B * H <= 65535). Returns the sizes.
FlashSizes check_flash_arguments(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                                 std::size_t q_offset, const char* where) {
  // TODO(09.1): the checks of lesson 03, 1 <= D <= kFlashMaxHeadDim and B * H <= 65535 (messages: README section 2); the sizes as ints, scale = 1/sqrt(D)
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
  to_int(std::max(q.size(), k.size()), where, "the elements of q and of k");
  return {to_int(nb, where, "B"),   to_int(nh, where, "H"),  to_int(ng, where, "G"),
          to_int(tq, where, "Tq"),  to_int(tk, where, "Tk"), to_int(d, where, "D"),
          to_int(q_offset, where, "q_offset"), 1.0f / std::sqrt(static_cast<float>(d))};
  // END TODO(09.1)
}

}  // namespace

Tensor4 flash_attention_gpu(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                            std::size_t q_offset) {
  const FlashSizes s = check_flash_arguments(q, k, v, mask, q_offset, "flash_attention_gpu");
  if (q.size() == 0) return Tensor4(q.shape());  // a grid cannot be empty
  const cuda::DeviceBuffer<float> dq = to_device(q), dk = to_device(k), dv = to_device(v);
  cuda::DeviceBuffer<float> out(q.size());  // (B, H, Tq, D); no (B, H, Tq, Tk) scores anywhere
  gpu::launch_flash_attention(dq.get(), dk.get(), dv.get(), out.get(), s.b, s.h, s.g, s.tq, s.tk, s.d, s.scale,
                              mask == Mask::causal, s.q_offset);
  return to_host(out, q.shape());
}

Tensor4 flash_attention_gpu_fp16(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                                 std::size_t q_offset) {
  constexpr auto where = "flash_attention_gpu_fp16";
  const FlashSizes s = check_flash_arguments(q, k, v, mask, q_offset, where);
  require(s.d % 16 == 0, where,
          "the head dimension must be a multiple of 16 (the tensor cores' 16 x 16 tiles), given D = " +
              std::to_string(s.d));
  if (q.size() == 0) return Tensor4(q.shape());
  const cuda::DeviceBuffer<__half> dq = to_device_half(q), dk = to_device_half(k), dv = to_device_half(v);
  cuda::DeviceBuffer<float> out(q.size());
  gpu::launch_flash_attention_fp16(dq.get(), dk.get(), dv.get(), out.get(), s.b, s.h, s.g, s.tq, s.tk, s.d,
                                   s.scale, mask == Mask::causal, s.q_offset);
  return to_host(out, q.shape());
}

}  // namespace attn
