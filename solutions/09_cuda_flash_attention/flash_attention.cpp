// Lesson 09, the host side (given code, README section 2): check the arguments with
// lesson 03's check_gqa_arguments and the kernels' own limits, copy to the device,
// launch a fused kernel, copy back. The lesson's TODOs are in flash_kernels.cu.
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
#include "gqa.hpp"

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

/// Checks a call of `where` (flash_attention_gpu or flash_attention_gpu_fp16): lesson 03's
/// rules for q, k, v, the mask and the offset, with its messages, then the kernels' own
/// limits (README section 2). Returns the sizes as the ints that kernels index with.
FlashSizes check_flash_arguments(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                                 std::size_t q_offset, const char* where) {
  check_gqa_arguments(q, k, v, mask, q_offset, where);
  const std::size_t nb = q.shape(0), nh = q.shape(1), d = q.shape(3);
  // The kernels' limits: the output has D columns, and so has every shared tile.
  require_equal(where, "head dimension of v (D of q)", d, v.shape(3));
  require(d >= 1 && d <= static_cast<std::size_t>(gpu::kFlashMaxHeadDim), where,
          "the head dimension must be between 1 and " + std::to_string(gpu::kFlashMaxHeadDim) +
              " (the kernel's shared-memory tiles), given D = " + std::to_string(d));
  require(nb * nh <= 65535, where,
          "B * H must be at most 65535 (the grid's y dimension), given " + std::to_string(nb * nh));
  to_int(std::max(q.size(), k.size()), where, "the elements of q and of k");
  return {to_int(nb, where, "B"),          to_int(nh, where, "H"),          to_int(k.shape(1), where, "G"),
          to_int(q.shape(2), where, "Tq"), to_int(k.shape(2), where, "Tk"), to_int(d, where, "D"),
          to_int(q_offset, where, "q_offset"), 1.0f / std::sqrt(static_cast<float>(d))};
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
