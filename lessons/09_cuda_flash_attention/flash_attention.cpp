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
  throw NotImplemented("09.1", "2. The host side");
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
