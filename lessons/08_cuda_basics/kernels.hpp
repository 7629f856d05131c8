/// @file kernels.hpp
/// @brief Lesson 08: the host functions that launch the kernels of kernels.cu.
///
/// Every pointer is device memory (cudaMalloc), every matrix row-major. Each
/// function launches its kernel, checks the launch with cudaGetLastError() and
/// returns; the result is ready once the device has synchronized (cudaMemcpy does).
#pragma once

/// The CUDA lessons' kernel launchers: raw device pointers in, no tensors.
namespace attn::gpu {

/// c = a b for a (m, k) and b (k, n): one thread per element of c.
void launch_matmul_naive(const float* a, const float* b, float* c, int m, int k, int n);

/// The same product in 16 x 16 tiles staged in shared memory.
void launch_matmul_tiled(const float* a, const float* b, float* c, int m, int k, int n);

/// Each of `rows` rows of x (rows, cols) -> its softmax in y: one block of 128 threads per row.
void launch_softmax_rows(const float* x, float* y, int rows, int cols);

/// scores (B, H, Tq, Tk) = q k^T * scale, query head h reading key head h / (H / G);
/// with `causal`, scores of keys after the query's position q_offset + i are -infinity.
/// q is (B, H, Tq, D), k is (B, G, Tk, D).
void launch_attention_scores(const float* q, const float* k, float* scores, int batch, int heads,
                             int kv_heads, int tq, int tk, int d, float scale, bool causal,
                             int q_offset);

/// out (B, H, Tq, D) = p v, query head h reading value head h / (H / G); p is
/// (B, H, Tq, Tk), v is (B, G, Tk, D).
void launch_attention_output(const float* p, const float* v, float* out, int batch, int heads,
                             int kv_heads, int tq, int tk, int d);

}  // namespace attn::gpu
