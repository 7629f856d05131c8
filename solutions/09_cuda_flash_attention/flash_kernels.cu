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
  for (int n = 0; n < kFlashTcKeys / kTile; ++n) {
    Accumulator acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < d / kTile; ++kk) {
      FragmentKt kt;
      wmma::load_matrix_sync(kt, k_s + n * kTile * ld + kk * kTile, ld);
      wmma::mma_sync(acc, q_frag[kk], kt, acc);
    }
    wmma::store_matrix_sync(s_w + n * kTile, acc, lds, wmma::mem_row_major);
  }
  // END TODO(09.4)
}

/// o_w (16 x d floats, row stride ldo) += p_w (16 x kFlashTcKeys halves, row stride
/// ldp) times the value tile v_s (kFlashTcKeys x d halves, row stride ld), on the
/// tensor cores, 16 output columns at a time.
__device__ void warp_accumulate_pv(const __half* p_w, int ldp, const __half* v_s, int ld, float* o_w, int ldo,
                                   int d) {
  // TODO(09.5): load the kFlashTcKeys/16 fragments of p_w once; for each 16-column block n of d: load o_w's accumulator (mem_row_major), mma_sync with each p fragment and V's fragment (row_major, at v_s + 16 kk ld + 16 n), store it back
  FragmentP p[kFlashTcKeys / kTile];
  for (int kk = 0; kk < kFlashTcKeys / kTile; ++kk) wmma::load_matrix_sync(p[kk], p_w + kk * kTile, ldp);
  for (int n = 0; n < d / kTile; ++n) {
    Accumulator acc;
    wmma::load_matrix_sync(acc, o_w + n * kTile, ldo, wmma::mem_row_major);
    for (int kk = 0; kk < kFlashTcKeys / kTile; ++kk) {
      FragmentV vf;
      wmma::load_matrix_sync(vf, v_s + kk * kTile * ld + n * kTile, ld);
      wmma::mma_sync(acc, p[kk], vf, acc);
    }
    wmma::store_matrix_sync(o_w + n * kTile, acc, ldo, wmma::mem_row_major);
  }
  // END TODO(09.5)
}

/// One block of kFlashTcWarps warps per (tile of kFlashTcRows query rows, batch * H + head).
/// Warp w owns query rows 16 w .. 16 w + 15 of the tile; in the softmax, lanes 2r and
/// 2r + 1 share row r, each with half of the tile's keys.
__global__ void __launch_bounds__(32 * kFlashTcWarps)
    flash_attention_fp16_kernel(const __half* q, const __half* k, const __half* v, float* out, int heads,
                                int kv_heads, int tq, int tk, int d, float scale, bool causal, int q_offset) {
  // TODO(09.6): stage Q in k_s, load the warp's Q fragments, zero its output rows, barrier; per K/V tile: load, barrier, warp_scores, __syncwarp, online softmax of row r over this lane's keys (p as __half in p_w, l from the rounded p, o_w's row times alpha), __syncwarp, warp_accumulate_pv, barrier; then out = o / l
  const SharedLayout layout(d);
  const int ld = layout.ld, lds = layout.lds, ldp = layout.ldp, ldo = layout.ldo;
  ATTN_DYNAMIC_SHARED(unsigned char, smem);
  __half* k_s = reinterpret_cast<__half*>(smem);                                  // (keys, ld)
  __half* v_s = reinterpret_cast<__half*>(smem + layout.kv_bytes());
  float* s_s = reinterpret_cast<float*>(smem + 2 * layout.kv_bytes());            // (rows, lds)
  __half* p_s = reinterpret_cast<__half*>(reinterpret_cast<unsigned char*>(s_s) + layout.s_bytes());
  float* o_s = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(p_s) + layout.p_bytes());

  const int lane = threadIdx.x, warp = threadIdx.y;
  const int b = blockIdx.y / heads, h = blockIdx.y % heads;
  const int g = h / (heads / kv_heads);  // repeat_interleave order, as in lesson 03
  const int i0 = blockIdx.x * kFlashTcRows;
  const __half* q_head = q + (static_cast<long long>(b) * heads + h) * tq * d;
  const __half* k_head = k + (static_cast<long long>(b) * kv_heads + g) * tk * d;
  const __half* v_head = v + (static_cast<long long>(b) * kv_heads + g) * tk * d;
  float* s_w = s_s + warp * kTile * lds;  // this warp's 16 rows of each array
  __half* p_w = p_s + warp * kTile * ldp;
  float* o_w = o_s + warp * kTile * ldo;

  load_rows(q_head, k_s, ld, i0, kFlashTcRows, tq, d);  // the query rows pass through k_s
  for (int e = lane; e < kTile * d; e += 32) o_w[e / d * ldo + e % d] = 0.0f;
  __syncthreads();  // the query rows are complete
  FragmentQ q_frag[kFlashMaxHeadDim / kTile];
  for (int kk = 0; kk < d / kTile; ++kk) wmma::load_matrix_sync(q_frag[kk], k_s + warp * kTile * ld + kk * kTile, ld);
  __syncthreads();  // every warp holds its query fragments: k_s may take keys

  const int last_row = min(i0 + kFlashTcRows, tq) - 1;
  const int kv_end = causal ? min(tk, q_offset + last_row + 1) : tk;
  const int r = lane / 2, j0 = lane % 2 * (kFlashTcKeys / 2);  // this lane's row and first key
  const int i = i0 + warp * kTile + r;
  const int row_end = causal ? min(kv_end, q_offset + i + 1) : kv_end;

  float m = -INFINITY, l = 0.0f;  // row r's running maximum and sum, in both of its lanes
  for (int k0 = 0; k0 < kv_end; k0 += kFlashTcKeys) {
    load_rows(k_head, k_s, ld, k0, kFlashTcKeys, kv_end, d);
    load_rows(v_head, v_s, ld, k0, kFlashTcKeys, kv_end, d);
    __syncthreads();  // the tiles are complete

    warp_scores(q_frag, k_s, ld, s_w, lds, d);
    __syncwarp();  // every lane's part of the scores is in s_w

    float tile_max = -INFINITY;
    for (int j = j0; j < j0 + kFlashTcKeys / 2; ++j)
      if (k0 + j < row_end) tile_max = fmaxf(tile_max, s_w[r * lds + j] * scale);
    tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullMask, tile_max, 1));  // the other lane of the row
    const float m_new = fmaxf(m, tile_max);  // finite: key 0 is visible to every row
    const float alpha = expf(m - m_new);
    float sum = 0.0f;
    for (int j = j0; j < j0 + kFlashTcKeys / 2; ++j) {
      const __half p = __float2half(k0 + j < row_end ? expf(s_w[r * lds + j] * scale - m_new) : 0.0f);
      p_w[r * ldp + j] = p;
      sum += __half2float(p);  // the rounded p that the tensor cores multiply: the weights sum to 1
    }
    l = l * alpha + sum + __shfl_xor_sync(kFullMask, sum, 1);
    m = m_new;
    for (int c = lane % 2; c < d; c += 2) o_w[r * ldo + c] *= alpha;
    __syncwarp();  // p_w and the rescaled o_w are complete before the tensor cores read them

    warp_accumulate_pv(p_w, ldp, v_s, ld, o_w, ldo, d);
    __syncthreads();  // no one still reads k_s, v_s (or o_w) when the next tiles are loaded
  }

  for (int rr = 0; rr < kTile; ++rr) {  // row by row, the 32 lanes over its columns
    const float l_row = __shfl_sync(kFullMask, l, 2 * rr);
    const int row = i0 + warp * kTile + rr;
    if (row >= tq) continue;
    float* out_row = out + ((static_cast<long long>(b) * heads + h) * tq + row) * d;
    for (int c = lane; c < d; c += 32) out_row[c] = o_w[rr * ldo + c] / l_row;
  }
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
