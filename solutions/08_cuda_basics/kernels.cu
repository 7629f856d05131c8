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
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (row >= m || col >= n) return;
  float acc = 0.0f;
  for (int j = 0; j < k; ++j) acc += a[row * k + j] * b[j * n + col];
  c[row * n + col] = acc;
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
  __shared__ float a_tile[kTile][kTile];  // a(row, t + tx)
  __shared__ float b_tile[kTile][kTile];  // b(t + ty, col)
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kTile + ty;
  const int col = blockIdx.x * kTile + tx;
  float acc = 0.0f;
  for (int t = 0; t < k; t += kTile) {
    // Every thread loads one element of each tile; zeros outside the matrices.
    a_tile[ty][tx] = row < m && t + tx < k ? a[row * k + t + tx] : 0.0f;
    b_tile[ty][tx] = t + ty < k && col < n ? b[(t + ty) * n + col] : 0.0f;
    __syncthreads();  // the tiles are complete
    for (int j = 0; j < kTile; ++j) acc += a_tile[ty][j] * b_tile[j][tx];
    __syncthreads();  // no one still reads them when the next tiles are loaded
  }
  if (row < m && col < n) c[row * n + col] = acc;
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
  constexpr int kWarps = kSoftmaxThreads / 32;
  __shared__ float warp_maxima[kWarps];
  __shared__ float warp_sums[kWarps];
  const float* in = x + static_cast<long long>(blockIdx.x) * cols;
  float* out = y + static_cast<long long>(blockIdx.x) * cols;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

  float m = -INFINITY;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, in[j]);
  m = warp_max(m);
  if (lane == 0) warp_maxima[warp] = m;
  __syncthreads();
  m = warp_maxima[0];
  for (int w = 1; w < kWarps; ++w) m = fmaxf(m, warp_maxima[w]);

  float s = 0.0f;
  for (int j = threadIdx.x; j < cols; j += blockDim.x) s += expf(in[j] - m);
  s = warp_sum(s);
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  s = 0.0f;
  for (int w = 0; w < kWarps; ++w) s += warp_sums[w];

  for (int j = threadIdx.x; j < cols; j += blockDim.x) out[j] = expf(in[j] - m) / s;
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
  const int j = blockIdx.x * blockDim.x + threadIdx.x;  // key
  const int i = blockIdx.y * blockDim.y + threadIdx.y;  // query
  const int b = blockIdx.z / heads, h = blockIdx.z % heads;
  if (i >= tq || j >= tk) return;
  const int g = h / (heads / kv_heads);
  const float* q_row = q + ((static_cast<long long>(b) * heads + h) * tq + i) * d;
  const float* k_row = k + ((static_cast<long long>(b) * kv_heads + g) * tk + j) * d;
  float dot = 0.0f;
  for (int c = 0; c < d; ++c) dot += q_row[c] * k_row[c];
  const bool hidden = causal && j > q_offset + i;
  scores[((static_cast<long long>(b) * heads + h) * tq + i) * tk + j] = hidden ? -INFINITY : dot * scale;
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
  const int c = blockIdx.x * blockDim.x + threadIdx.x;  // head dimension
  const int i = blockIdx.y * blockDim.y + threadIdx.y;  // query
  const int b = blockIdx.z / heads, h = blockIdx.z % heads;
  if (i >= tq || c >= d) return;
  const int g = h / (heads / kv_heads);
  const float* p_row = p + ((static_cast<long long>(b) * heads + h) * tq + i) * tk;
  const float* v_head = v + (static_cast<long long>(b) * kv_heads + g) * tk * d;
  float acc = 0.0f;
  for (int j = 0; j < tk; ++j) acc += p_row[j] * v_head[static_cast<long long>(j) * d + c];
  out[((static_cast<long long>(b) * heads + h) * tq + i) * d + c] = acc;
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
