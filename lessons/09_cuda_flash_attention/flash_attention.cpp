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
  throw NotImplemented("09.1", "2. The host side");
  // END TODO(09.1)
}

}  // namespace attn
