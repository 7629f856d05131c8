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
  const long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const long long per_row = static_cast<long long>(tn) * d;
  const long long row = e / per_row;  // b * G + g
  const long long at = (row * capacity + start) * d + e % per_row;
  k_cache[at] = k_new[e];
  v_cache[at] = v_new[e];
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
  constexpr int kDimsPerLane = kDecodeMaxHeadDim / 32;
  __shared__ float q_tile[kDecodeMaxGroup][kDecodeMaxHeadDim];     // the group's queries, times scale
  __shared__ float k_tile[kDecodeKeys][kDecodeMaxHeadDim + 1];     // +1: no bank conflicts
  __shared__ float v_tile[kDecodeKeys][kDecodeMaxHeadDim];
  __shared__ float p_tile[kDecodeMaxGroup][kDecodeKeys];
  const int lane = threadIdx.x, w = threadIdx.y;
  const int split = blockIdx.x, splits = gridDim.x;
  const int b = blockIdx.y / kv_heads, g = blockIdx.y % kv_heads;
  const int h = g * (heads / kv_heads) + w;  // the group of KV head g: heads g (H/G) ... g (H/G) + H/G - 1
  const long long bh = static_cast<long long>(b) * heads + h;
  const long long row = static_cast<long long>(b) * kv_heads + g;
  const float* k_head = k_cache + row * capacity * d;  // (capacity, D)
  const float* v_head = v_cache + row * capacity * d;

  for (int c = lane; c < d; c += 32) q_tile[w][c] = q[bh * d + c] * scale;

  const int k_begin = split * chunk, k_end = min(length, k_begin + chunk);
  const int tid = w * 32 + lane, threads = 32 * blockDim.y;
  float m = -INFINITY, l = 0.0f;
  float o[kDimsPerLane] = {};
  for (int k0 = k_begin; k0 < k_end; k0 += kDecodeKeys) {
    for (int e = tid; e < kDecodeKeys * d; e += threads) {
      const int j = e / d, c = e % d;
      const bool inside = k0 + j < k_end;
      const long long at = static_cast<long long>(k0 + j) * d + c;
      k_tile[j][c] = inside ? k_head[at] : 0.0f;
      v_tile[j][c] = inside ? v_head[at] : 0.0f;
    }
    __syncthreads();  // the tiles (and the queries) are complete

    float s = -INFINITY;
    if (k0 + lane < k_end) {
      s = 0.0f;
      for (int c = 0; c < d; ++c) s += q_tile[w][c] * k_tile[lane][c];
    }
    const float m_new = fmaxf(m, warp_max(s));  // finite: key k_begin is in the first tile
    const float alpha = expf(m - m_new);
    const float p = expf(s - m_new);
    l = l * alpha + warp_sum(p);
    p_tile[w][lane] = p;
    __syncwarp();
    for (int r = 0; r < kDimsPerLane; ++r) o[r] *= alpha;
    for (int j = 0; j < kDecodeKeys; ++j) {
      const float pj = p_tile[w][j];
      for (int r = 0; r < kDimsPerLane; ++r) {
        const int c = lane + 32 * r;
        if (c < d) o[r] += pj * v_tile[j][c];
      }
    }
    m = m_new;
    __syncthreads();  // no one still reads the tiles when the next ones are loaded
  }

  // An empty chunk (past the last key) leaves m = -infinity, l = 0, o = 0: weight 0 in the combine.
  const long long slot = bh * splits + split;
  for (int r = 0; r < kDimsPerLane; ++r) {
    const int c = lane + 32 * r;
    if (c < d) partial_o[slot * d + c] = o[r];
  }
  if (lane == 0) {
    partial_ml[slot * 2] = m;
    partial_ml[slot * 2 + 1] = l;
  }
  // END TODO(10.4)
}

/// One block per (b, h), thread c per output column: the chunks' partial results,
/// each relative to its own maximum m_s, rescaled to the overall maximum and summed.
__global__ void decode_combine_kernel(const float* partial_o, const float* partial_ml, float* out,
                                      int splits, int d) {
  // TODO(10.5): M = max over chunks of m_s; out(c) = sum_s e^(m_s - M) o_s(c) / sum_s e^(m_s - M) l_s
  const long long bh = blockIdx.x;
  const float* ml = partial_ml + bh * splits * 2;
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, ml[2 * s]);  // finite: chunk 0 holds key 0
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float num = 0.0f, den = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float weight = expf(ml[2 * s] - m);  // 0 for an empty chunk
      num += weight * partial_o[(bh * splits + s) * d + c];
      den += weight * ml[2 * s + 1];
    }
    out[bh * d + c] = num / den;
  }
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
