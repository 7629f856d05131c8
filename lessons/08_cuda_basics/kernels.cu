// Lesson 08: first CUDA kernels. Fill in each kernel body between TODO(08.k) and
// END TODO(08.k), in the order of the README. The same file compiles with nvcc
// for a GPU and, as C++, against the CPU emulator of common/cuda.
#include "kernels.hpp"

#include <cmath>

#include "attn/cuda.hpp"
#include "attn/cuda_todo.hpp"

namespace attn::gpu {

constexpr int kTile = 16;          // matmul and attention blocks are kTile x kTile threads
constexpr int kSoftmaxThreads = 128;  // one block per row: 4 warps
constexpr unsigned kFullMask = 0xffffffffu;

int ceil_div(int a, int b) { return (a + b - 1) / b; }

/// Checks the launch that was just made; on a GPU it does not wait for the kernel.
void check_launch() { ATTN_CUDA_CHECK(cudaGetLastError()); }

// --- Matrix product. ---

__global__ void matmul_naive_kernel(const float* a, const float* b, float* c, int m, int k, int n) {
  // TODO(08.2): one thread per c(row, col): row from y, col from x; skip threads outside c
  ATTN_KERNEL_TODO("08.2", "4. The naive kernel: one thread per output");
  // END TODO(08.2)
}

void launch_matmul_naive(const float* a, const float* b, float* c, int m, int k, int n) {
  const dim3 block(kTile, kTile);
  const dim3 grid(ceil_div(n, kTile), ceil_div(m, kTile));  // x covers the columns, y the rows
  ATTN_LAUNCH(matmul_naive_kernel, grid, block, 0, a, b, c, m, k, n);
  check_launch();
}

__global__ void matmul_tiled_kernel(const float* a, const float* b, float* c, int m, int k, int n) {
  // TODO(08.3): stage kTile x kTile tiles of a and b in shared memory; a barrier after loading, one after using
  ATTN_KERNEL_TODO("08.3", "5. Tiles in shared memory, and the barrier");
  // END TODO(08.3)
}

void launch_matmul_tiled(const float* a, const float* b, float* c, int m, int k, int n) {
  const dim3 block(kTile, kTile);
  const dim3 grid(ceil_div(n, kTile), ceil_div(m, kTile));
  ATTN_LAUNCH(matmul_tiled_kernel, grid, block, 0, a, b, c, m, k, n);
  check_launch();
}

// --- Row softmax. ---

/// The maximum of v over the 32 lanes of the warp, in every lane.
__device__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

/// The sum of v over the 32 lanes of the warp, in every lane.
__device__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__global__ void softmax_rows_kernel(const float* x, float* y, int cols) {
  // TODO(08.4): block = row; strided max, warp_max, per-warp maxima in shared memory, barrier; then the sum the same way; then write
  ATTN_KERNEL_TODO("08.4", "6. Row softmax with warp reductions");
  // END TODO(08.4)
}

void launch_softmax_rows(const float* x, float* y, int rows, int cols) {
  ATTN_LAUNCH(softmax_rows_kernel, rows, kSoftmaxThreads, 0, x, y, cols);
  check_launch();
}

// --- Attention in three kernels: scores, softmax (above), weighted sum. ---

__global__ void attention_scores_kernel(const float* q, const float* k, float* scores, int heads,
                                        int kv_heads, int tq, int tk, int d, float scale, bool causal,
                                        int q_offset) {
  // TODO(08.5): one thread per score (i, j) of head blockIdx.z; key head h / (H / G); -INFINITY above the diagonal
  ATTN_KERNEL_TODO("08.5", "7. Attention in three kernels");
  // END TODO(08.5)
}

void launch_attention_scores(const float* q, const float* k, float* scores, int batch, int heads,
                             int kv_heads, int tq, int tk, int d, float scale, bool causal,
                             int q_offset) {
  const dim3 block(kTile, kTile);
  const dim3 grid(ceil_div(tk, kTile), ceil_div(tq, kTile), batch * heads);
  ATTN_LAUNCH(attention_scores_kernel, grid, block, 0, q, k, scores, heads, kv_heads, tq, tk, d, scale,
              causal, q_offset);
  check_launch();
}

__global__ void attention_output_kernel(const float* p, const float* v, float* out, int heads,
                                        int kv_heads, int tq, int tk, int d) {
  // TODO(08.6): one thread per out(i, c) of head blockIdx.z: the sum over keys of p(i, j) v(j, c), value head h / (H / G)
  ATTN_KERNEL_TODO("08.6", "7. Attention in three kernels");
  // END TODO(08.6)
}

void launch_attention_output(const float* p, const float* v, float* out, int batch, int heads,
                             int kv_heads, int tq, int tk, int d) {
  const dim3 block(kTile, kTile);
  const dim3 grid(ceil_div(d, kTile), ceil_div(tq, kTile), batch * heads);
  ATTN_LAUNCH(attention_output_kernel, grid, block, 0, p, v, out, heads, kv_heads, tq, tk, d);
  check_launch();
}

}  // namespace attn::gpu
