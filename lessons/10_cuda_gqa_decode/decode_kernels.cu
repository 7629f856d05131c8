// Lesson 10: decode attention over the compact KV cache, and the append that fills it.
// Fill in each body between TODO(10.k) and END TODO(10.k), in the order of the README.
// The same file compiles with nvcc for a GPU and, as C++, against the CPU emulator.
#include "decode_kernels.hpp"

#include <cmath>

#include "attn/cuda.hpp"
#include "attn/cuda_todo.hpp"

namespace attn::gpu {

namespace decode {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kAppendThreads = 256;

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

/// One thread per element e of new (B, G, Tn, D), `total` of them: element (b, g, t, c)
/// goes to position start + t of row (b, g) of the cache (B, G, capacity, D).
__global__ void kv_append_kernel(const float* k_new, const float* v_new, float* k_cache, float* v_cache,
                                 int tn, int capacity, int d, int start, long long total) {
  // TODO(10.2): e from the grid (skip e >= total); row (b, g) = e / (Tn D), t D + c = e % (Tn D); the cache row has capacity positions
  ATTN_KERNEL_TODO("10.2", "3. The cache on the device, and append");
  // END TODO(10.2)
}

/// One block per (chunk blockIdx.x of `chunk` keys, b * G + g): block (32, H / G), warp w
/// serves query head g * (H / G) + w, lane j scores key j of each K/V tile. Each K/V
/// tile is loaded once for the whole group. Writes the chunk's unnormalized output
/// (B, H, splits, D) and its running maximum and sum (B, H, splits, 2).
__global__ void __launch_bounds__(32 * kDecodeMaxGroup)
    decode_partial_kernel(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                          float* partial_ml, int heads, int kv_heads, int length, int capacity, int d,
                          float scale, int chunk) {
  // TODO(10.4): the group's queries in shared memory; for each K/V tile of this block's chunk: load once for all warps, barrier, online softmax per warp, barrier; then store o, m and l of the chunk
  ATTN_KERNEL_TODO("10.4", "4. One block per KV head: the whole group at once");
  // END TODO(10.4)
}

/// One block per (b, h), thread c per output column: the chunks' partial results,
/// each relative to its own maximum m_s, rescaled to the overall maximum and summed.
__global__ void decode_combine_kernel(const float* partial_o, const float* partial_ml, float* out,
                                      int splits, int d) {
  // TODO(10.5): M = max over chunks of m_s; out(c) = sum_s e^(m_s - M) o_s(c) / sum_s e^(m_s - M) l_s
  ATTN_KERNEL_TODO("10.5", "5. Split-K and the combine step");
  // END TODO(10.5)
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace decode

void launch_kv_append(const float* k_new, const float* v_new, float* k_cache, float* v_cache, int batch,
                      int kv_heads, int tn, int capacity, int d, int start) {
  const long long total = static_cast<long long>(batch) * kv_heads * tn * d;
  const int blocks = static_cast<int>((total + decode::kAppendThreads - 1) / decode::kAppendThreads);
  ATTN_LAUNCH(decode::kv_append_kernel, blocks, decode::kAppendThreads, 0, k_new, v_new, k_cache, v_cache, tn,
              capacity, d, start, total);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void launch_gqa_decode(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                       float* partial_ml, float* out, int batch, int heads, int kv_heads, int length,
                       int capacity, int d, float scale, int splits) {
  // Chunks of whole K/V tiles; with more splits than tiles, the last chunks are empty.
  const int chunk = decode::ceil_div(decode::ceil_div(length, splits), kDecodeKeys) * kDecodeKeys;
  const dim3 block(32, heads / kv_heads);  // a warp per query head of the group
  const dim3 grid(splits, batch * kv_heads);
  ATTN_LAUNCH(decode::decode_partial_kernel, grid, block, 0, q, k_cache, v_cache, partial_o, partial_ml,
              heads, kv_heads, length, capacity, d, scale, chunk);
  ATTN_CUDA_CHECK(cudaGetLastError());
  ATTN_LAUNCH(decode::decode_combine_kernel, batch * heads, kDecodeMaxHeadDim, 0, partial_o, partial_ml, out,
              splits, d);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace attn::gpu
