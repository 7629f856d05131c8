// Lesson 09: attention in one kernel, with online softmax. Fill in each body between
// TODO(09.k) and END TODO(09.k), in the order of the README. The same file compiles
// with nvcc for a GPU and, as C++, against the CPU emulator of common/cuda.
#include "flash_kernels.hpp"

#include <cmath>

#include "attn/cuda.hpp"
#include "attn/cuda_todo.hpp"

namespace attn::gpu {

namespace flash {

constexpr unsigned kFullMask = 0xffffffffu;

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

/// Every thread of the block copies its share of keys [k0, k0 + kFlashKeys) of one
/// head, k_head and v_head (Tk, D), into the shared tiles; rows at or past kv_end,
/// the end of the keys the block may see, are zeros and are never read from memory.
__device__ void load_kv_tile(const float* k_head, const float* v_head,
                             float (*k_tile)[kFlashMaxHeadDim + 1], float (*v_tile)[kFlashMaxHeadDim],
                             int k0, int kv_end, int d) {
  // TODO(09.2): all threads of the block, strided by the block size, copy element (j, c) of the tile; zeros past kv_end
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int threads = blockDim.x * blockDim.y;
  for (int e = tid; e < kFlashKeys * d; e += threads) {
    const int j = e / d, c = e % d;  // consecutive threads, consecutive columns: coalesced reads
    const bool visible = k0 + j < kv_end;
    const long long at = static_cast<long long>(k0 + j) * d + c;
    k_tile[j][c] = visible ? k_head[at] : 0.0f;
    v_tile[j][c] = visible ? v_head[at] : 0.0f;
  }
  // END TODO(09.2)
}

/// One block per (tile of kFlashRows query rows, batch * H + head): block (32, kFlashRows),
/// warp `threadIdx.y` owns query row blockIdx.x * kFlashRows + threadIdx.y, lane j scores
/// key j of each K/V tile and accumulates output columns lane, lane + 32, ...
__global__ void __launch_bounds__(32 * kFlashRows)
    flash_attention_kernel(const float* q, const float* k, const float* v, float* out, int heads,
                           int kv_heads, int tq, int tk, int d, float scale, bool causal, int q_offset) {
  // TODO(09.3): stage the block's query rows; for each K/V tile up to kv_end: barrier, scores, online softmax (rescale l and o by exp(m_old - m_new)), o += p v, barrier; then out = o / l
  constexpr int kDimsPerLane = kFlashMaxHeadDim / 32;        // output columns lane, lane + 32, ... of a row
  __shared__ float q_tile[kFlashRows][kFlashMaxHeadDim];      // the block's query rows, times scale
  __shared__ float k_tile[kFlashKeys][kFlashMaxHeadDim + 1];  // +1: lane j reads row j, no bank conflicts
  __shared__ float v_tile[kFlashKeys][kFlashMaxHeadDim];
  __shared__ float p_tile[kFlashRows][kFlashKeys];            // each warp's probabilities of the tile
  const int lane = threadIdx.x, row = threadIdx.y;
  const int b = blockIdx.y / heads, h = blockIdx.y % heads;
  const int g = h / (heads / kv_heads);  // repeat_interleave order, as in lesson 03
  const int i0 = blockIdx.x * kFlashRows, i = i0 + row;
  const float* q_head = q + (static_cast<long long>(b) * heads + h) * tq * d;    // (Tq, D)
  const float* k_head = k + (static_cast<long long>(b) * kv_heads + g) * tk * d;  // (Tk, D)
  const float* v_head = v + (static_cast<long long>(b) * kv_heads + g) * tk * d;  // (Tk, D)

  for (int c = lane; c < d; c += 32)
    q_tile[row][c] = i < tq ? q_head[static_cast<long long>(i) * d + c] * scale : 0.0f;

  // Keys the block may see: all of them, or up to the position of its last row.
  // Tiles from kv_end on are fully masked for every row: the loop never reaches them.
  const int last_row = min(i0 + kFlashRows, tq) - 1;
  const int kv_end = causal ? min(tk, q_offset + last_row + 1) : tk;
  const int row_end = causal ? min(kv_end, q_offset + i + 1) : kv_end;  // keys this row sees

  float m = -INFINITY;          // running maximum of the row's scores
  float l = 0.0f;               // running sum of exp(s - m)
  float o[kDimsPerLane] = {};   // running sum of exp(s - m) v, columns lane + 32 r
  for (int k0 = 0; k0 < kv_end; k0 += kFlashKeys) {
    load_kv_tile(k_head, v_head, k_tile, v_tile, k0, kv_end, d);
    __syncthreads();  // the tiles (and the query rows) are complete

    float s = -INFINITY;  // score of key k0 + lane; its exponential is exactly 0 when hidden
    if (k0 + lane < row_end) {
      s = 0.0f;
      for (int c = 0; c < d; ++c) s += q_tile[row][c] * k_tile[lane][c];
    }
    // Key 0 is visible to every row, so m is finite from the first tile on.
    const float m_new = fmaxf(m, warp_max(s));
    const float alpha = expf(m - m_new);  // rescales what was summed against the old maximum
    const float p = expf(s - m_new);
    l = l * alpha + warp_sum(p);
    p_tile[row][lane] = p;
    __syncwarp();  // the warp's probabilities are visible to all its lanes
    for (int r = 0; r < kDimsPerLane; ++r) o[r] *= alpha;
    for (int j = 0; j < kFlashKeys; ++j) {
      const float pj = p_tile[row][j];
      for (int r = 0; r < kDimsPerLane; ++r) {
        const int c = lane + 32 * r;
        if (c < d) o[r] += pj * v_tile[j][c];
      }
    }
    m = m_new;
    __syncthreads();  // no one still reads the tiles when the next ones are loaded
  }

  if (i >= tq) return;  // padding rows of the last query tile (after the last barrier)
  float* out_row = out + ((static_cast<long long>(b) * heads + h) * tq + i) * d;
  for (int r = 0; r < kDimsPerLane; ++r) {
    const int c = lane + 32 * r;
    if (c < d) out_row[c] = o[r] / l;
  }
  // END TODO(09.3)
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace flash

void launch_flash_attention(const float* q, const float* k, const float* v, float* out, int batch,
                            int heads, int kv_heads, int tq, int tk, int d, float scale, bool causal,
                            int q_offset) {
  const dim3 block(32, kFlashRows);                                // a warp per query row
  const dim3 grid(flash::ceil_div(tq, kFlashRows), batch * heads);  // x: query tiles, y: (b, h)
  ATTN_LAUNCH(flash::flash_attention_kernel, grid, block, 0, q, k, v, out, heads, kv_heads, tq, tk, d,
              scale, causal, q_offset);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace attn::gpu
