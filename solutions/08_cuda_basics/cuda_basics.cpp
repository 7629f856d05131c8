// Lesson 08, the host side: check, copy to the device, launch, copy back.
// Fill in each body between TODO(08.k) and END TODO(08.k), in the order of the README.
#include "cuda_basics.hpp"

#include <climits>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "attn/device_buffer.hpp"
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
  // TODO(08.7): the checks of lesson 03; then scores, softmax and output kernels on device buffers
  constexpr auto where = "gqa_attention_gpu";
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
  to_int(nb * nh * tq * tk, where, "B * H * Tq * Tk");
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));

  const cuda::DeviceBuffer<float> dq = to_device(q), dk = to_device(k), dv = to_device(v);
  cuda::DeviceBuffer<float> scores(nb * nh * tq * tk);  // (B, H, Tq, Tk), then the probabilities
  cuda::DeviceBuffer<float> out(q.size());              // (B, H, Tq, D)
  if (q.size() == 0) return Tensor4(q.shape());
  gpu::launch_attention_scores(dq.get(), dk.get(), scores.get(), b, h, g, iq, ik, id, scale,
                               mask == Mask::causal, offset);
  gpu::launch_softmax_rows(scores.get(), scores.get(), b * h * iq, ik);
  gpu::launch_attention_output(scores.get(), dv.get(), out.get(), b, h, g, iq, ik, id);
  return to_host<Tensor4>(out, q.shape());
  // END TODO(08.7)
}

}  // namespace attn
