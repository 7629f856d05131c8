// Lesson 08, the host side: check, copy to the device, launch, copy back.
// Fill in each body between TODO(08.k) and END TODO(08.k), in the order of the README.
#include "cuda_basics.hpp"

#include <climits>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "attn/device_buffer.hpp"
#include "gqa.hpp"
#include "kernels.hpp"

namespace attn {

namespace {

/// A size as the int that kernels index with.
int to_int(std::size_t n, const char* where, const char* what) {
  require(n <= static_cast<std::size_t>(INT_MAX), where,
          std::string(what) + " must be below 2^31, given " + std::to_string(n));
  return static_cast<int>(n);
}

/// A tensor's elements, in row-major order, as a device array.
template <class Tensor>
cuda::DeviceBuffer<float> to_device(const Tensor& t) {
  return cuda::DeviceBuffer<float>(std::span<const float>(t.data(), t.size()));
}

/// Copies a device array back into a tensor of the given shape (row-major).
template <class Tensor, class Shape>
Tensor to_host(const cuda::DeviceBuffer<float>& buffer, const Shape& shape) {
  Tensor t(shape);
  const std::vector<float> host = buffer.download();
  std::copy(host.begin(), host.end(), t.begin());
  return t;
}

}  // namespace

Tensor2 matmul_gpu(const Tensor2& a, const Tensor2& b, MatmulKernel kernel) {
  // TODO(08.1): check the inner dimensions; a and b to the device; launch the chosen kernel; c back to the host
  constexpr auto where = "matmul_gpu";
  require_equal(where, "rows of b (the inner dimension, columns of a)", a.shape(1), b.shape(0));
  const int m = to_int(a.shape(0), where, "rows of a");
  const int k = to_int(a.shape(1), where, "columns of a");
  const int n = to_int(b.shape(1), where, "columns of b");
  const cuda::DeviceBuffer<float> da = to_device(a), db = to_device(b);  // (M, K), (K, N)
  cuda::DeviceBuffer<float> dc(a.shape(0) * b.shape(1));                 // (M, N)
  if (kernel == MatmulKernel::naive) {
    gpu::launch_matmul_naive(da.get(), db.get(), dc.get(), m, k, n);
  } else {
    gpu::launch_matmul_tiled(da.get(), db.get(), dc.get(), m, k, n);
  }
  return to_host<Tensor2>(dc, std::array{a.shape(0), b.shape(1)});
  // END TODO(08.1)
}

Tensor2 softmax_rows_gpu(const Tensor2& x) {
  constexpr auto where = "softmax_rows_gpu";
  require(x.shape(1) > 0, where, "each row needs at least one logit, given 0 columns");
  const int rows = to_int(x.shape(0), where, "rows"), cols = to_int(x.shape(1), where, "columns");
  const cuda::DeviceBuffer<float> dx = to_device(x);
  cuda::DeviceBuffer<float> dy(x.size());
  if (rows > 0) gpu::launch_softmax_rows(dx.get(), dy.get(), rows, cols);
  return to_host<Tensor2>(dy, x.shape());
}

Tensor4 gqa_attention_gpu(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                          std::size_t q_offset) {
  constexpr auto where = "gqa_attention_gpu";
  check_gqa_arguments(q, k, v, mask, q_offset, where);  // lesson 03's checks, in this name
  // This lesson's output kernel reads v rows of D values, and kernels index with ints.
  require_equal(where, "head dimension of v (D of q)", q.shape(3), v.shape(3));
  to_int(q.shape(0) * q.shape(1) * q.shape(2) * k.shape(2), where, "B * H * Tq * Tk");
  const int b = to_int(q.shape(0), where, "B"), h = to_int(q.shape(1), where, "H");
  const int g = to_int(k.shape(1), where, "G"), iq = to_int(q.shape(2), where, "Tq");
  const int ik = to_int(k.shape(2), where, "Tk"), id = to_int(q.shape(3), where, "D");
  const int offset = to_int(q_offset, where, "q_offset");
  const float scale = 1.0f / std::sqrt(static_cast<float>(id));
  // TODO(08.7): device buffers for q, k, v, the scores and the output; the scores, softmax and output kernels; out back
  const cuda::DeviceBuffer<float> dq = to_device(q), dk = to_device(k), dv = to_device(v);
  cuda::DeviceBuffer<float> scores(q.shape(0) * q.shape(1) * q.shape(2) * k.shape(2));  // (B, H, Tq, Tk)
  cuda::DeviceBuffer<float> out(q.size());                                               // (B, H, Tq, D)
  if (q.size() == 0) return Tensor4(q.shape());
  gpu::launch_attention_scores(dq.get(), dk.get(), scores.get(), b, h, g, iq, ik, id, scale,
                               mask == Mask::causal, offset);
  gpu::launch_softmax_rows(scores.get(), scores.get(), b * h * iq, ik);  // in place: the probabilities
  gpu::launch_attention_output(scores.get(), dv.get(), out.get(), b, h, g, iq, ik, id);
  return to_host<Tensor4>(out, q.shape());
  // END TODO(08.7)
}

}  // namespace attn
