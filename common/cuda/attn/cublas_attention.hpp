/// @file cublas_attention.hpp
/// @brief The GPU benchmarks' library baseline: lesson 08's unfused attention on cuBLAS
///        (nvcc only; the benchmarks link CUDA::cublas).
///
/// Per (batch, KV head) the rows of the H/G query heads of its group are contiguous in
/// (B, H, Tq, D), so S = Q K^T is one GEMM of (H/G Tq) x Tk x D, batched over B G, and
/// reads each K/V head once; a softmax kernel (a warp per row) writes P; O = P V is a
/// second batched GEMM. In float32 (cublasSgemmStridedBatched) or with half inputs and
/// P, float32 S, accumulation and output (cublasGemmStridedBatchedEx, tensor cores).
/// It always computes the whole Tq x Tk square, masked or not.
#pragma once

#if defined(__CUDACC__)
#include <cublas_v2.h>
#include <cuda_fp16.h>

#include <cmath>
#include <string>

#include "attn/cuda.hpp"

namespace attn::cuda {

inline void cublas_check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS: ") + cublasGetStatusString(status) + " in " + call);
}

/// p = softmax(s) along rows of tk scores, a warp per row. Row R is query R mod tq of
/// its (batch, head); with `causal` it sits at position tk - tq + R mod tq (the
/// bottom-right alignment of lesson 02) and sees the keys up to it.
template <class P>
__global__ void baseline_softmax_kernel(const float* s, P* p, long long rows, int tq, int tk, bool causal) {
  const long long row = static_cast<long long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // a whole warp: one row per warp
  const int visible = causal ? tk - tq + static_cast<int>(row % tq) + 1 : tk;
  const float* sr = s + row * tk;
  P* pr = p + row * tk;
  float m = -INFINITY, l = 0.0f;
  for (int j = lane; j < visible; j += 32) m = fmaxf(m, sr[j]);
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  for (int j = lane; j < visible; j += 32) l += expf(sr[j] - m);
  for (int o = 16; o > 0; o /= 2) l += __shfl_xor_sync(0xffffffffu, l, o);
  for (int j = lane; j < tk; j += 32) pr[j] = static_cast<P>(j < visible ? expf(sr[j] - m) / l : 0.0f);
}

/// The unfused attention on cuBLAS for one problem size: its handle and its
/// (B, H, Tq, Tk) buffers of scores and probabilities.
class CublasAttention {
 public:
  CublasAttention(int b, int h, int g, int tq, int tk, int d, bool half)
      : b_(b), h_(h), g_(g), tq_(tq), tk_(tk), d_(d), half_(half) {
    cublas_check(cublasCreate(&handle_), "cublasCreate");
    const std::size_t n = std::size_t(b) * h * tq * tk;
    ATTN_CUDA_CHECK(cudaMalloc(&s_, n * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&p_, n * (half ? sizeof(__half) : sizeof(float))));
  }
  ~CublasAttention() {
    cudaFree(s_);
    cudaFree(p_);
    cublasDestroy(handle_);
  }
  CublasAttention(const CublasAttention&) = delete;
  CublasAttention& operator=(const CublasAttention&) = delete;

  /// out (B, H, Tq, D) floats from q (B, H, Tq, D) and k, v (B, G, Tk, D), float or
  /// __half as constructed. cuBLAS is column-major: a row-major X (r x c) is its X^T,
  /// so it computes S^T = K Q^T and O^T = V^T P^T.
  void run(const void* q, const void* k, const void* v, float* out, bool causal) {
    const int m = h_ / g_ * tq_, batches = b_ * g_;
    const long long q_stride = static_cast<long long>(m) * d_, kv_stride = static_cast<long long>(tk_) * d_;
    const long long s_stride = static_cast<long long>(m) * tk_;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d_)), one = 1.0f, zero = 0.0f;
    const cudaDataType in = half_ ? CUDA_R_16F : CUDA_R_32F;
    cublas_check(cublasGemmStridedBatchedEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, tk_, m, d_, &scale, k, in, d_,
                                            kv_stride, q, in, d_, q_stride, &zero, s_, CUDA_R_32F, tk_, s_stride,
                                            batches, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "S = Q K^T");
    const long long rows = static_cast<long long>(b_) * h_ * tq_;
    constexpr int kWarps = 8;
    const auto blocks = static_cast<unsigned>((rows + kWarps - 1) / kWarps);
    if (half_)
      baseline_softmax_kernel<<<blocks, 32 * kWarps>>>(s_, static_cast<__half*>(p_), rows, tq_, tk_, causal);
    else
      baseline_softmax_kernel<<<blocks, 32 * kWarps>>>(s_, static_cast<float*>(p_), rows, tq_, tk_, causal);
    ATTN_CUDA_CHECK(cudaGetLastError());
    cublas_check(cublasGemmStridedBatchedEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, d_, m, tk_, &one, v, in, d_,
                                            kv_stride, p_, in, tk_, s_stride, &zero, out, CUDA_R_32F, d_, q_stride,
                                            batches, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                 "O = P V");
  }

 private:
  int b_, h_, g_, tq_, tk_, d_;
  bool half_;
  cublasHandle_t handle_{};
  float* s_ = nullptr;
  void* p_ = nullptr;
};

}  // namespace attn::cuda

#endif
