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
  ATTN_KERNEL_TODO("09.2", "3. K/V tiles in shared memory");
  // END TODO(09.2)
}

/// One block per (tile of kFlashRows query rows, batch * H + head): block (32, kFlashRows),
/// warp `threadIdx.y` owns query row blockIdx.x * kFlashRows + threadIdx.y, lane j scores
/// key j of each K/V tile and accumulates output columns lane, lane + 32, ...
__global__ void __launch_bounds__(32 * kFlashRows)
    flash_attention_kernel(const float* q, const float* k, const float* v, float* out, int heads,
                           int kv_heads, int tq, int tk, int d, float scale, bool causal, int q_offset) {
  // TODO(09.3): stage the block's query rows; for each K/V tile up to kv_end: barrier, scores, online softmax (rescale l and o by exp(m_old - m_new)), o += p v, barrier; then out = o / l
  ATTN_KERNEL_TODO("09.3", "4. Online softmax: one pass over the keys");
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
