// Lesson 09: attention in one kernel, with online softmax. Fill in each body between
// TODO(09.k) and END TODO(09.k), in the order of the README. The same file compiles
// with nvcc for a GPU and, as C++, against the CPU emulator of common/cuda.
#include "flash_kernels.hpp"

#include <cmath>
#include <string>

#include "attn/cuda.hpp"
#include "attn/cuda_fp16.hpp"
#include "attn/cuda_todo.hpp"
#include "attn/cuda_wmma.hpp"

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

// ---------------------------------------------------------------------------
// Half precision on the tensor cores (README section 8).
// ---------------------------------------------------------------------------
namespace flash_tc {

using namespace nvcuda;
using flash::kFullMask;
constexpr int kTile = 16;  // wmma's tiles are 16 x 16 x 16

using FragmentQ = wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, __half, wmma::row_major>;
/// K^T as the right operand: K's tile rows (keys) are its columns, so column-major.
using FragmentKt = wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, __half, wmma::col_major>;
using FragmentP = wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, __half, wmma::row_major>;
using FragmentV = wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, __half, wmma::row_major>;
using Accumulator = wmma::fragment<wmma::accumulator, kTile, kTile, kTile, float>;
static_assert(kFlashTcRows <= kFlashTcKeys, "the query rows are staged in the key tile's memory");

/// The block's dynamic shared memory at head dimension d. Every row stride is padded
/// (by 16 bytes) against bank conflicts and stays a multiple of 16 bytes, and every
/// array starts 32 bytes aligned, as wmma requires. The query rows have no array of
/// their own: they pass through k_s on their way to the warps' registers.
struct SharedLayout {
  int ld;   ///< row stride of k_s, v_s (and of the query rows staged in k_s): d + 8 halves
  int lds;  ///< row stride of s_s: kFlashTcKeys + 4 floats
  int ldp;  ///< row stride of p_s: kFlashTcKeys + 8 halves
  int ldo;  ///< row stride of o_s: d + 4 floats
  __host__ __device__ explicit SharedLayout(int d)
      : ld(d + 8), lds(kFlashTcKeys + 4), ldp(kFlashTcKeys + 8), ldo(d + 4) {}
  __host__ __device__ std::size_t kv_bytes() const { return sizeof(__half) * kFlashTcKeys * ld; }
  __host__ __device__ std::size_t s_bytes() const { return sizeof(float) * kFlashTcRows * lds; }
  __host__ __device__ std::size_t p_bytes() const { return sizeof(__half) * kFlashTcRows * ldp; }
  __host__ __device__ std::size_t o_bytes() const { return sizeof(float) * kFlashTcRows * ldo; }
  __host__ __device__ std::size_t bytes() const { return 2 * kv_bytes() + s_bytes() + p_bytes() + o_bytes(); }
};

/// The block copies rows [r0, r0 + rows) of a (T, d) matrix of halves into a shared
/// tile of row stride ld, 8 halves (16 bytes) per load; rows at or past `end` are zeros.
__device__ void load_rows(const __half* src, __half* tile, int ld, int r0, int rows, int end, int d) {
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, threads = blockDim.x * blockDim.y;
  const int vectors = d / 8;  // per row
  for (int e = tid; e < rows * vectors; e += threads) {
    const int r = e / vectors, c = e % vectors * 8;
    int4 value = make_int4(0, 0, 0, 0);
    if (r0 + r < end) value = *reinterpret_cast<const int4*>(src + static_cast<long long>(r0 + r) * d + c);
    *reinterpret_cast<int4*>(tile + r * ld + c) = value;
  }
}

/// s_w (16 x kFlashTcKeys floats, row stride lds) = the warp's 16 query rows, as the
/// d/16 fragments q_frag, times the transposed key tile k_s (kFlashTcKeys x d halves,
/// row stride ld), on the tensor cores. Unscaled: the softmax multiplies by `scale`.
__device__ void warp_scores(const FragmentQ* q_frag, const __half* k_s, int ld, float* s_w, int lds, int d) {
  // TODO(09.4): for each 16-key block n: an accumulator set to 0; for each 16-column block kk of d: load K^T's fragment (col_major, at k_s + 16 n ld + 16 kk) and mma_sync; store the accumulator at s_w + 16 n
  ATTN_KERNEL_TODO("09.4", "8. Half precision and tensor cores");
  // END TODO(09.4)
}

/// o_w (16 x d floats, row stride ldo) += p_w (16 x kFlashTcKeys halves, row stride
/// ldp) times the value tile v_s (kFlashTcKeys x d halves, row stride ld), on the
/// tensor cores, 16 output columns at a time.
__device__ void warp_accumulate_pv(const __half* p_w, int ldp, const __half* v_s, int ld, float* o_w, int ldo,
                                   int d) {
  // TODO(09.5): load the kFlashTcKeys/16 fragments of p_w once; for each 16-column block n of d: load o_w's accumulator (mem_row_major), mma_sync with each p fragment and V's fragment (row_major, at v_s + 16 kk ld + 16 n), store it back
  ATTN_KERNEL_TODO("09.5", "8. Half precision and tensor cores");
  // END TODO(09.5)
}

/// One block of kFlashTcWarps warps per (tile of kFlashTcRows query rows, batch * H + head).
/// Warp w owns query rows 16 w .. 16 w + 15 of the tile; in the softmax, lanes 2r and
/// 2r + 1 share row r, each with half of the tile's keys.
__global__ void __launch_bounds__(32 * kFlashTcWarps)
    flash_attention_fp16_kernel(const __half* q, const __half* k, const __half* v, float* out, int heads,
                                int kv_heads, int tq, int tk, int d, float scale, bool causal, int q_offset) {
  // TODO(09.6): stage Q in k_s, load the warp's Q fragments, zero its output rows, barrier; per K/V tile: load, barrier, warp_scores, __syncwarp, online softmax of row r over this lane's keys (p as __half in p_w, l from the rounded p, o_w's row times alpha), __syncwarp, warp_accumulate_pv, barrier; then out = o / l
  ATTN_KERNEL_TODO("09.6", "8. Half precision and tensor cores");
  // END TODO(09.6)
}

}  // namespace flash_tc

void launch_flash_attention(const float* q, const float* k, const float* v, float* out, int batch,
                            int heads, int kv_heads, int tq, int tk, int d, float scale, bool causal,
                            int q_offset) {
  const dim3 block(32, kFlashRows);                                // a warp per query row
  const dim3 grid(flash::ceil_div(tq, kFlashRows), batch * heads);  // x: query tiles, y: (b, h)
  ATTN_LAUNCH(flash::flash_attention_kernel, grid, block, 0, q, k, v, out, heads, kv_heads, tq, tk, d,
              scale, causal, q_offset);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

std::size_t flash_fp16_shared_bytes(int d) { return flash_tc::SharedLayout(d).bytes(); }

void launch_flash_attention_fp16(const __half* q, const __half* k, const __half* v, float* out, int batch,
                                 int heads, int kv_heads, int tq, int tk, int d, float scale, bool causal,
                                 int q_offset) {
  const std::size_t smem = flash_fp16_shared_bytes(d);  // over 48 KiB: the kernel must opt in
  static const cudaDeviceProp prop = [] {               // read once: the call is slow on a GPU
    cudaDeviceProp p{};
    int device = 0;
    ATTN_CUDA_CHECK(cudaGetDevice(&device));
    ATTN_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    return p;
  }();
  if (smem > prop.sharedMemPerBlockOptin)
    throw cuda::Error("launch_flash_attention_fp16: D = " + std::to_string(d) + " needs " + std::to_string(smem) +
                      " bytes of shared memory per block, and this GPU (" + prop.name + ") allows at most " +
                      std::to_string(prop.sharedMemPerBlockOptin) + ": use a smaller D or the float32 kernel");
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(flash_tc::flash_attention_fp16_kernel,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const dim3 block(32, kFlashTcWarps);
  const dim3 grid(flash::ceil_div(tq, kFlashTcRows), batch * heads);
  ATTN_LAUNCH(flash_tc::flash_attention_fp16_kernel, grid, block, smem, q, k, v, out, heads, kv_heads, tq, tk, d,
              scale, causal, q_offset);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace attn::gpu
