// Lesson 09: attention in one kernel, with online softmax. Fill in each body between
// TODO(09.k) and END TODO(09.k), in the order of the README: first the device functions
// of a kernel, each with a test of its own, then the kernel that calls them. The same
// file compiles with nvcc for a GPU and, as C++, against the CPU emulator of common/cuda.
// The test kernels at the end run one device function alone (given code).
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
constexpr int kDimsPerLane = kFlashMaxHeadDim / 32;  // output columns lane, lane + 32, ... of a row

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

/// Row 0 of head `head` of batch b in a (B, heads, T, D) tensor: its T x D rows.
template <class T>
__device__ T* head_rows(T* x, int b, int head, int heads, int t, int d) {
  return x + (static_cast<long long>(b) * heads + head) * t * d;
}

/// The batch b and query head h that a block serves, and the key/value head g it reads.
struct BlockHeads {
  int b, h, g;
};

/// README section 4. The block with blockIdx.y = b * heads + h serves batch b and query
/// head h, which reads key/value head g = h / (heads / kv_heads).
__device__ BlockHeads block_heads(int heads, int kv_heads) {
  // TODO(09.1): b and h from blockIdx.y = b * heads + h; g = h / (heads / kv_heads), the repeat_interleave order of lesson 03
  const int b = blockIdx.y / heads, h = blockIdx.y % heads;
  return {b, h, h / (heads / kv_heads)};
  // END TODO(09.1)
}

/// README section 5. Warp threadIdx.y stores query row i of its head (q_head: Tq x D)
/// times scale in q_row (D floats of shared memory), its lanes over the columns; zeros
/// when i >= tq (the padding rows of the last query tile).
__device__ void stage_query_row(const float* q_head, float* q_row, int i, int tq, int d, float scale) {
  // TODO(09.2): lane by lane over the columns c = lane, lane + 32, ...: q_row[c] = q_head[i * d + c] * scale, or 0 if i >= tq
  for (int c = threadIdx.x; c < d; c += 32)
    q_row[c] = i < tq ? q_head[static_cast<long long>(i) * d + c] * scale : 0.0f;
  // END TODO(09.2)
}

/// The keys a block of query rows must read, and those one of its rows sees.
struct KeyRange {
  int kv_end;   ///< the block reads keys [0, kv_end): those its last row sees, or all of them
  int row_end;  ///< this row sees keys [0, row_end)
};

/// README section 6. For the block of query rows [i0, i0 + rows) (those below tq) and its
/// row i: without the mask every row sees all tk keys; with it, row i sits at position
/// q_offset + i and sees keys j <= q_offset + i, and the block reads up to what its last
/// row sees.
__device__ KeyRange causal_key_range(int i0, int rows, int i, int tq, int tk, bool causal, int q_offset) {
  // TODO(09.3): without the mask {tk, tk}; with it, kv_end from the block's last row min(i0 + rows, tq) - 1, row_end = min(kv_end, q_offset + i + 1)
  if (!causal) return {tk, tk};
  const int last_row = min(i0 + rows, tq) - 1;
  const int kv_end = min(tk, q_offset + last_row + 1);
  return {kv_end, min(kv_end, q_offset + i + 1)};
  // END TODO(09.3)
}

/// README section 7. Every thread of the block copies its share of keys [k0, k0 + kFlashKeys)
/// of one head, k_head and v_head (Tk x D), into the shared tiles; rows at or past kv_end,
/// the end of the keys the block may see, are zeros and are never read from memory.
__device__ void load_kv_tile(const float* k_head, const float* v_head,
                             float (*k_tile)[kFlashMaxHeadDim + 1], float (*v_tile)[kFlashMaxHeadDim],
                             int k0, int kv_end, int d) {
  // TODO(09.4): all threads of the block, strided by the block size, copy element (j, c) of the tile; zeros past kv_end
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  const int threads = blockDim.x * blockDim.y;
  for (int e = tid; e < kFlashKeys * d; e += threads) {
    const int j = e / d, c = e % d;  // consecutive threads, consecutive columns: coalesced reads
    const bool visible = k0 + j < kv_end;
    const long long at = static_cast<long long>(k0 + j) * d + c;
    k_tile[j][c] = visible ? k_head[at] : 0.0f;
    v_tile[j][c] = visible ? v_head[at] : 0.0f;
  }
  // END TODO(09.4)
}

/// README section 8. Lane j's score of key k0 + j for the warp's query row q_row (D floats,
/// already times scale): the dot product of q_row and k_tile[j], or -INFINITY if the key is
/// at or past row_end, hidden from this row.
__device__ float tile_score(const float* q_row, const float (*k_tile)[kFlashMaxHeadDim + 1], int k0, int row_end,
                            int d) {
  // TODO(09.5): -INFINITY if k0 + lane >= row_end; otherwise the sum over c < d of q_row[c] * k_tile[lane][c]
  const int lane = threadIdx.x;
  if (k0 + lane >= row_end) return -INFINITY;  // its exponential is exactly 0
  float s = 0.0f;
  for (int c = 0; c < d; ++c) s += q_row[c] * k_tile[lane][c];
  return s;
  // END TODO(09.5)
}

/// README section 9. One key tile of the online softmax of the warp's row: s is this
/// lane's score (-INFINITY for a hidden key); m and l, the same in every lane, are the
/// row's running maximum and running sum of exp(s - m). Updates both with the tile, sets
/// p = exp(s - m_new) and returns alpha = exp(m_old - m_new), the factor by which what
/// was summed against the old maximum must be rescaled.
__device__ float online_softmax_update(float s, float& m, float& l, float& p) {
  // TODO(09.6): m_new = max(m, warp_max(s)); alpha = exp(m - m_new); p = exp(s - m_new); l = alpha l + warp_sum(p); m = m_new
  const float m_new = fmaxf(m, warp_max(s));  // every lane gets the tile's maximum
  const float alpha = expf(m - m_new);
  p = expf(s - m_new);
  l = l * alpha + warp_sum(p);
  m = m_new;
  return alpha;
  // END TODO(09.6)
}

/// README section 10. The warp's running output, this lane's columns lane + 32 r in o[r]:
/// o = alpha o + the sum over the tile's keys j of p_row[j] v_tile[j], with p_row the
/// warp's kFlashKeys probabilities in shared memory (complete before the call).
__device__ void accumulate_pv(const float* p_row, float alpha, const float (*v_tile)[kFlashMaxHeadDim],
                              float (&o)[kDimsPerLane], int d) {
  // TODO(09.7): every o[r] times alpha; then for each key j, o[r] += p_row[j] * v_tile[j][lane + 32 r] for the columns below d
  const int lane = threadIdx.x;
  for (int r = 0; r < kDimsPerLane; ++r) o[r] *= alpha;
  for (int j = 0; j < kFlashKeys; ++j) {
    const float pj = p_row[j];
    for (int r = 0; r < kDimsPerLane; ++r)
      if (lane + 32 * r < d) o[r] += pj * v_tile[j][lane + 32 * r];
  }
  // END TODO(09.7)
}

/// README section 11. The row's output o / l into out_row (D floats of global memory):
/// column lane + 32 r from this lane's o[r].
__device__ void write_output(const float (&o)[kDimsPerLane], float l, float* out_row, int d) {
  // TODO(09.8): out_row[lane + 32 r] = o[r] / l for the columns below d
  const int lane = threadIdx.x;
  for (int r = 0; r < kDimsPerLane; ++r)
    if (lane + 32 * r < d) out_row[lane + 32 * r] = o[r] / l;
  // END TODO(09.8)
}

/// The float32 kernel's shared memory (README section 13): the block's query rows, one
/// K/V tile, and each warp's probabilities of the tile.
struct FlashTiles {
  float q[kFlashRows][kFlashMaxHeadDim];      ///< the block's query rows, times scale
  float k[kFlashKeys][kFlashMaxHeadDim + 1];  ///< +1: lane j reads row j, no bank conflicts
  float v[kFlashKeys][kFlashMaxHeadDim];
  float p[kFlashRows][kFlashKeys];            ///< row w: warp w's probabilities of the tile
};

/// README section 12. One block per (tile of kFlashRows query rows, batch * H + head):
/// block (32, kFlashRows), warp `threadIdx.y` owns query row blockIdx.x * kFlashRows +
/// threadIdx.y, lane j scores key j of each K/V tile and accumulates output columns
/// lane, lane + 32, ...
__global__ void __launch_bounds__(32 * kFlashRows)
    flash_attention_kernel(const float* q, const float* k, const float* v, float* out, int heads,
                           int kv_heads, int tq, int tk, int d, float scale, bool causal, int q_offset) {
  // TODO(09.9): the steps of README section 12, with its three barriers
  // 1. the block's tiles, __shared__ FlashTiles t; this thread's lane and row (its warp)
  __shared__ FlashTiles t;
  const int lane = threadIdx.x, row = threadIdx.y;
  // 2. block_heads; with head_rows, q_head of query head h, k_head and v_head of KV head g
  const BlockHeads bh = block_heads(heads, kv_heads);
  const float* q_head = head_rows(q, bh.b, bh.h, heads, tq, d);
  const float* k_head = head_rows(k, bh.b, bh.g, kv_heads, tk, d);
  const float* v_head = head_rows(v, bh.b, bh.g, kv_heads, tk, d);
  // 3. stage_query_row of this warp's row i = blockIdx.x * kFlashRows + row into t.q[row]
  const int i0 = blockIdx.x * kFlashRows, i = i0 + row;
  stage_query_row(q_head, t.q[row], i, tq, d, scale);
  // 4. causal_key_range: the keys the block reads (kv_end) and those row i sees (row_end)
  const KeyRange keys = causal_key_range(i0, kFlashRows, i, tq, tk, causal, q_offset);
  // 5. the running maximum, sum and output: m = -infinity, l = 0, o[kDimsPerLane] = 0
  float m = -INFINITY, l = 0.0f, o[kDimsPerLane] = {};
  // 6. for each tile of kFlashKeys keys from k0 = 0 while k0 < kv_end:
  for (int k0 = 0; k0 < keys.kv_end; k0 += kFlashKeys) {
    // 6a. load_kv_tile into t.k, t.v; __syncthreads: the tiles (and the staged rows) are complete
    load_kv_tile(k_head, v_head, t.k, t.v, k0, keys.kv_end, d);
    __syncthreads();  // the tiles (and, the first time, the query rows) are complete before anyone reads them
    // 6b. s = tile_score of key k0 + lane; alpha = online_softmax_update(s, m, l, p)
    const float s = tile_score(t.q[row], t.k, k0, keys.row_end, d);
    float p;
    const float alpha = online_softmax_update(s, m, l, p);
    // 6c. t.p[row][lane] = p; __syncwarp: the warp's 32 probabilities are stored before any lane reads them
    t.p[row][lane] = p;
    __syncwarp();  // the warp's 32 probabilities are stored before any lane reads them
    // 6d. accumulate_pv; __syncthreads: no warp still reads the tiles when the next ones are stored
    accumulate_pv(t.p[row], alpha, t.v, o, d);
    __syncthreads();  // no warp still reads the tiles when the next ones are stored over them
  }
  // 7. padding rows (i >= tq) return only now, after the last barrier; the others write_output
  if (i >= tq) return;
  write_output(o, l, head_rows(out, bh.b, bh.h, heads, tq, d) + static_cast<long long>(i) * d, d);
  // END TODO(09.9)
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace flash

// ---------------------------------------------------------------------------
// Half precision on the tensor cores (README section 14).
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

/// README section 15. The block's kFlashTcRows query rows [i0, i0 + kFlashTcRows) of
/// q_head (Tq x d halves; zeros past tq) pass through k_s (row stride ld) into the
/// registers of the warps: warp w's d/16 fragments q_frag[kk] hold its rows 16 w ..
/// 16 w + 15, columns 16 kk .. 16 kk + 15. Called by every thread of the block; on
/// return k_s is free for the keys.
__device__ void stage_queries(const __half* q_head, __half* k_s, int ld, int i0, int tq, int d, FragmentQ* q_frag) {
  // TODO(09.10): load_rows of the block's query rows into k_s, barrier; this warp's fragments from its 16 rows, barrier
  load_rows(q_head, k_s, ld, i0, kFlashTcRows, tq, d);
  __syncthreads();  // every thread's part of the query rows is in k_s before any warp loads fragments
  const __half* q_w = k_s + threadIdx.y * kTile * ld;  // this warp's 16 rows
  for (int kk = 0; kk < d / kTile; ++kk) wmma::load_matrix_sync(q_frag[kk], q_w + kk * kTile, ld);
  __syncthreads();  // every warp holds its fragments before k_s takes keys
  // END TODO(09.10)
}

/// README section 16. s_w (16 x kFlashTcKeys floats, row stride lds) = the warp's 16 query
/// rows, as the d/16 fragments q_frag, times the transposed key tile k_s (kFlashTcKeys x d
/// halves, row stride ld), on the tensor cores. Unscaled: the softmax multiplies by `scale`.
__device__ void warp_scores(const FragmentQ* q_frag, const __half* k_s, int ld, float* s_w, int lds, int d) {
  // TODO(09.11): for each 16-key block n: an accumulator set to 0; for each 16-column block kk of d: load K^T's fragment (col_major, at k_s + 16 n ld + 16 kk) and mma_sync; store the accumulator at s_w + 16 n
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
  // END TODO(09.11)
}

/// README section 17. One key tile of the online softmax of the warp's 16 rows, two lanes
/// per row: lane serves row r = lane / 2 and keys j0 = (lane % 2) * kFlashTcKeys / 2 ..
/// j0 + kFlashTcKeys / 2 - 1. From the unscaled scores s_w (16 x kFlashTcKeys floats, row
/// stride lds) of keys k0 + j, those at or past row_end (of this lane's row) hidden:
/// updates the row's running maximum m and sum l (equal in both of its lanes), writes
/// p = exp(s * scale - m_new) rounded to half into p_w (16 x kFlashTcKeys, row stride ldp;
/// 0 for a hidden key), adds the rounded p to l, and multiplies row r of the running
/// output o_w (16 x d floats, row stride ldo) by alpha = exp(m_old - m_new).
__device__ void warp_online_softmax(const float* s_w, int lds, __half* p_w, int ldp, float* o_w, int ldo, int d,
                                    float scale, int k0, int row_end, float& m, float& l) {
  // TODO(09.12): the tile's maximum of s * scale over this lane's visible keys, joined with the other lane of the row (__shfl_xor_sync(.., 1)); m_new, alpha; p as __half into p_w, l from the rounded p of both lanes; m = m_new; o_w's row r times alpha
  const int lane = threadIdx.x, r = lane / 2, j0 = lane % 2 * (kFlashTcKeys / 2);
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
    sum += __half2float(p);  // the rounded p that the tensor cores multiply: the weights sum to l
  }
  l = l * alpha + sum + __shfl_xor_sync(kFullMask, sum, 1);
  m = m_new;
  for (int c = lane % 2; c < d; c += 2) o_w[r * ldo + c] *= alpha;
  // END TODO(09.12)
}

/// README section 18. o_w (16 x d floats, row stride ldo) += p_w (16 x kFlashTcKeys halves,
/// row stride ldp) times the value tile v_s (kFlashTcKeys x d halves, row stride ld), on
/// the tensor cores, 16 output columns at a time.
__device__ void warp_accumulate_pv(const __half* p_w, int ldp, const __half* v_s, int ld, float* o_w, int ldo,
                                   int d) {
  // TODO(09.13): load the kFlashTcKeys/16 fragments of p_w once; for each 16-column block n of d: load o_w's accumulator (mem_row_major), mma_sync with each p fragment and V's fragment (row_major, at v_s + 16 kk ld + 16 n), store it back
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
  // END TODO(09.13)
}

/// README section 19. The warp's 16 output rows o_w / l (o_w: 16 x d floats, row stride
/// ldo; l of row r in lanes 2 r and 2 r + 1) into rows row0 .. row0 + 15 of out_head
/// (Tq x d floats), those below tq; the 32 lanes write one row at a time, over its columns.
__device__ void warp_write_output(const float* o_w, int ldo, float l, float* out_head, int row0, int tq, int d) {
  // TODO(09.14): for each row rr < 16: l_row = l of lane 2 rr (__shfl_sync, every lane takes part); if row0 + rr < tq, lanes over the columns c: out_head[(row0 + rr) * d + c] = o_w[rr * ldo + c] / l_row
  for (int rr = 0; rr < kTile; ++rr) {
    const float l_row = __shfl_sync(kFullMask, l, 2 * rr);  // all 32 lanes, also for rows past tq
    if (row0 + rr >= tq) continue;
    float* out_row = out_head + static_cast<long long>(row0 + rr) * d;
    for (int c = threadIdx.x; c < d; c += 32) out_row[c] = o_w[rr * ldo + c] / l_row;
  }
  // END TODO(09.14)
}

/// The block's dynamic shared memory `smem` as SharedLayout(d) lays it out (README section
/// 14), and warp w's 16 rows of the per-warp arrays.
struct WarpTiles {
  int ld, lds, ldp, ldo;  ///< the row strides of SharedLayout
  __half* k_s;            ///< (kFlashTcKeys, ld): first the block's query rows, then each tile's keys
  __half* v_s;            ///< (kFlashTcKeys, ld): each tile's values
  float* s_w;             ///< (16, lds): warp w's scores of the tile
  __half* p_w;            ///< (16, ldp): warp w's probabilities of the tile
  float* o_w;             ///< (16, ldo): warp w's running output
  __device__ WarpTiles(unsigned char* smem, int d, int w) {
    const SharedLayout layout(d);
    ld = layout.ld, lds = layout.lds, ldp = layout.ldp, ldo = layout.ldo;
    unsigned char* s_s = smem + 2 * layout.kv_bytes();
    unsigned char* p_s = s_s + layout.s_bytes();
    unsigned char* o_s = p_s + layout.p_bytes();
    k_s = reinterpret_cast<__half*>(smem);
    v_s = reinterpret_cast<__half*>(smem + layout.kv_bytes());
    s_w = reinterpret_cast<float*>(s_s) + w * kTile * lds;
    p_w = reinterpret_cast<__half*>(p_s) + w * kTile * ldp;
    o_w = reinterpret_cast<float*>(o_s) + w * kTile * ldo;
  }
};

/// README section 20. One block of kFlashTcWarps warps per (tile of kFlashTcRows query rows,
/// batch * H + head). Warp w owns query rows 16 w .. 16 w + 15 of the tile; in the
/// softmax, lanes 2r and 2r + 1 share row r, each with half of the tile's keys.
__global__ void __launch_bounds__(32 * kFlashTcWarps)
    flash_attention_fp16_kernel(const __half* q, const __half* k, const __half* v, float* out, int heads,
                                int kv_heads, int tq, int tk, int d, float scale, bool causal, int q_offset) {
  // TODO(09.15): the steps of README section 20, with its barriers
  // 1. the block's dynamic shared memory (ATTN_DYNAMIC_SHARED) as WarpTiles t; this thread's lane and warp
  ATTN_DYNAMIC_SHARED(unsigned char, smem);
  const WarpTiles t(smem, d, threadIdx.y);
  const int lane = threadIdx.x, warp = threadIdx.y;
  // 2. block_heads; with head_rows, k_head and v_head of KV head g
  const flash::BlockHeads bh = flash::block_heads(heads, kv_heads);
  const __half* k_head = flash::head_rows(k, bh.b, bh.g, kv_heads, tk, d);
  const __half* v_head = flash::head_rows(v, bh.b, bh.g, kv_heads, tk, d);
  // 3. stage_queries: query head h's rows from i0 = blockIdx.x * kFlashTcRows, through t.k_s into q_frag
  const int i0 = blockIdx.x * kFlashTcRows;
  FragmentQ q_frag[kFlashMaxHeadDim / kTile];
  stage_queries(flash::head_rows(q, bh.b, bh.h, heads, tq, d), t.k_s, t.ld, i0, tq, d, q_frag);
  // 4. causal_key_range of this lane's row i = i0 + 16 warp + lane / 2
  const int i = i0 + warp * kTile + lane / 2;
  const flash::KeyRange keys = flash::causal_key_range(i0, kFlashTcRows, i, tq, tk, causal, q_offset);
  // 5. the running state: m = -infinity, l = 0 in registers, the warp's 16 x d block of t.o_w = 0
  float m = -INFINITY, l = 0.0f;
  for (int e = lane; e < kTile * d; e += 32) t.o_w[e / d * t.ldo + e % d] = 0.0f;
  // 6. for each tile of kFlashTcKeys keys from k0 = 0 while k0 < kv_end:
  for (int k0 = 0; k0 < keys.kv_end; k0 += kFlashTcKeys) {
    // 6a. load_rows of k and of v into t.k_s, t.v_s (zeros past kv_end); __syncthreads: the tiles are complete
    load_rows(k_head, t.k_s, t.ld, k0, kFlashTcKeys, keys.kv_end, d);
    load_rows(v_head, t.v_s, t.ld, k0, kFlashTcKeys, keys.kv_end, d);
    __syncthreads();  // the tiles are complete before any warp reads them
    // 6b. warp_scores into t.s_w; __syncwarp: every lane's part of the scores is stored
    warp_scores(q_frag, t.k_s, t.ld, t.s_w, t.lds, d);
    __syncwarp();  // every lane's part of s_w is stored before the softmax reads whole rows of it
    // 6c. warp_online_softmax of the tile; __syncwarp: p_w and the rescaled o_w are complete
    warp_online_softmax(t.s_w, t.lds, t.p_w, t.ldp, t.o_w, t.ldo, d, scale, k0, keys.row_end, m, l);
    __syncwarp();  // p_w and the rescaled o_w are complete before the tensor cores read them
    // 6d. warp_accumulate_pv; __syncthreads: no warp still reads k_s, v_s when the next tiles are stored
    warp_accumulate_pv(t.p_w, t.ldp, t.v_s, t.ld, t.o_w, t.ldo, d);
    __syncthreads();  // no warp still reads k_s, v_s when the next tiles are stored, and o_w is complete
  }
  // 7. warp_write_output of the warp's 16 rows, from row i0 + 16 warp of the output head
  warp_write_output(t.o_w, t.ldo, l, flash::head_rows(out, bh.b, bh.h, heads, tq, d), i0 + warp * kTile, tq, d);
  // END TODO(09.15)
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

// ---------------------------------------------------------------------------
// Test kernels (given code): each runs one device function above alone, for the tests
// of tests/09_cuda_flash_attention. They live in this file because nvcc compiles each
// .cu file alone, without relocatable device code: a __device__ function can only be
// called from a kernel of its own file (common/cuda/README.md, "Testing device
// functions"). They stage their inputs with plain loops and barriers of their own, so
// each test depends on the one function it names.
// ---------------------------------------------------------------------------
namespace testing {

namespace {

using namespace nvcuda;
using flash::kDimsPerLane;
using flash_tc::kTile;

/// Element (row, col) of a matrix of row stride ld.
__device__ long long at(int row, int ld, int col) { return static_cast<long long>(row) * ld + col; }

__global__ void block_heads_kernel(int heads, int kv_heads, int* bhg) {
  const flash::BlockHeads bh = flash::block_heads(heads, kv_heads);
  bhg[3 * blockIdx.y] = bh.b;
  bhg[3 * blockIdx.y + 1] = bh.h;
  bhg[3 * blockIdx.y + 2] = bh.g;
}

__global__ void stage_query_row_kernel(const float* q_head, int tq, int d, float scale, float* staged) {
  __shared__ float q_tile[kFlashRows][kFlashMaxHeadDim];
  const int lane = threadIdx.x, row = threadIdx.y, i = blockIdx.x * kFlashRows + row;
  for (int c = lane; c < kFlashMaxHeadDim; c += 32) q_tile[row][c] = NAN;  // unwritten columns show
  __syncthreads();
  flash::stage_query_row(q_head, q_tile[row], i, tq, d, scale);
  __syncthreads();
  for (int c = lane; c < d; c += 32) staged[at(i, d, c)] = q_tile[row][c];
}

__global__ void causal_key_range_kernel(int rows, int tq, int tk, bool causal, int q_offset, int* kv_end,
                                        int* row_end) {
  const int i0 = blockIdx.x * rows, i = i0 + threadIdx.x;
  const flash::KeyRange keys = flash::causal_key_range(i0, rows, i, tq, tk, causal, q_offset);
  if (threadIdx.x == 0) kv_end[blockIdx.x] = keys.kv_end;
  if (i < tq) row_end[i] = keys.row_end;
}

__global__ void load_kv_tile_kernel(const float* k_head, const float* v_head, int k0, int kv_end, int d,
                                    float* k_out, float* v_out) {
  __shared__ float k_tile[kFlashKeys][kFlashMaxHeadDim + 1];
  __shared__ float v_tile[kFlashKeys][kFlashMaxHeadDim];
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, threads = blockDim.x * blockDim.y;
  for (int e = tid; e < kFlashKeys * kFlashMaxHeadDim; e += threads)  // what the last tile left
    k_tile[e / kFlashMaxHeadDim][e % kFlashMaxHeadDim] = v_tile[e / kFlashMaxHeadDim][e % kFlashMaxHeadDim] = NAN;
  __syncthreads();
  flash::load_kv_tile(k_head, v_head, k_tile, v_tile, k0, kv_end, d);
  __syncthreads();
  for (int e = tid; e < kFlashKeys * d; e += threads) {
    k_out[e] = k_tile[e / d][e % d];
    v_out[e] = v_tile[e / d][e % d];
  }
}

__global__ void tile_score_kernel(const float* q_rows, const float* k_rows, int k0, const int* row_end, int d,
                                  float* s) {
  __shared__ float q_tile[kFlashRows][kFlashMaxHeadDim];
  __shared__ float k_tile[kFlashKeys][kFlashMaxHeadDim + 1];
  const int lane = threadIdx.x, row = threadIdx.y;
  for (int c = lane; c < d; c += 32) q_tile[row][c] = q_rows[at(row, d, c)];
  for (int j = row; j < kFlashKeys; j += kFlashRows)
    for (int c = lane; c < d; c += 32) k_tile[j][c] = k_rows[at(j, d, c)];
  __syncthreads();
  s[at(row, kFlashKeys, lane)] = flash::tile_score(q_tile[row], k_tile, k0, row_end[row], d);
}

__global__ void online_softmax_kernel(const float* s, int tiles, float* p, float* alpha, float* m, float* l) {
  const int lane = threadIdx.x;
  float m_run = -INFINITY, l_run = 0.0f;
  for (int t = 0; t < tiles; ++t) {
    float p_lane = NAN;
    const float a = flash::online_softmax_update(s[at(t, 32, lane)], m_run, l_run, p_lane);
    p[at(t, 32, lane)] = p_lane;
    alpha[at(t, 32, lane)] = a;
    m[at(t, 32, lane)] = m_run;
    l[at(t, 32, lane)] = l_run;
  }
}

__global__ void accumulate_pv_kernel(const float* p, float alpha, const float* v_rows, float* o, int d) {
  __shared__ float p_row[kFlashKeys];
  __shared__ float v_tile[kFlashKeys][kFlashMaxHeadDim];
  const int lane = threadIdx.x;
  p_row[lane] = p[lane];
  for (int j = 0; j < kFlashKeys; ++j)
    for (int c = lane; c < d; c += 32) v_tile[j][c] = v_rows[at(j, d, c)];
  __syncwarp();  // the probabilities and the value tile are complete
  float o_lane[kDimsPerLane];
  for (int r = 0; r < kDimsPerLane; ++r) o_lane[r] = lane + 32 * r < d ? o[lane + 32 * r] : 0.0f;
  flash::accumulate_pv(p_row, alpha, v_tile, o_lane, d);
  for (int r = 0; r < kDimsPerLane; ++r)
    if (lane + 32 * r < d) o[lane + 32 * r] = o_lane[r];
}

__global__ void write_output_kernel(const float* o, float l, int d, float* out_row) {
  const int lane = threadIdx.x;
  float o_lane[kDimsPerLane];
  for (int r = 0; r < kDimsPerLane; ++r) o_lane[r] = lane + 32 * r < d ? o[lane + 32 * r] : NAN;
  flash::write_output(o_lane, l, out_row, d);
}

__global__ void stage_queries_kernel(const __half* q_head, int i0, int tq, int d, float* q_out) {
  const flash_tc::SharedLayout layout(d);
  ATTN_DYNAMIC_SHARED(unsigned char, smem);
  __half* k_s = reinterpret_cast<__half*>(smem);                        // (kFlashTcKeys, ld)
  __half* eye = reinterpret_cast<__half*>(smem + layout.kv_bytes());  // the 16 x 16 identity
  const int tid = threadIdx.y * blockDim.x + threadIdx.x, threads = blockDim.x * blockDim.y;
  for (int e = tid; e < kTile * kTile; e += threads) eye[e] = __float2half(e / kTile == e % kTile ? 1.0f : 0.0f);
  __syncthreads();
  flash_tc::FragmentQ q_frag[kFlashMaxHeadDim / kTile];
  flash_tc::stage_queries(q_head, k_s, layout.ld, i0, tq, d, q_frag);
  for (int e = tid; e < kFlashTcKeys * layout.ld; e += threads) k_s[e] = __float2half(NAN);  // the first keys
  flash_tc::FragmentV identity;
  wmma::load_matrix_sync(identity, eye, kTile);
  for (int kk = 0; kk < d / kTile; ++kk) {  // the fragments, read back as q_frag[kk] times the identity
    flash_tc::Accumulator acc;
    wmma::fill_fragment(acc, 0.0f);
    wmma::mma_sync(acc, q_frag[kk], identity, acc);
    wmma::store_matrix_sync(q_out + at(threadIdx.y * kTile, d, kk * kTile), acc, d, wmma::mem_row_major);
  }
}

__global__ void warp_scores_kernel(const __half* q_rows, const __half* k_rows, int d, float* s) {
  const flash_tc::SharedLayout layout(d);
  ATTN_DYNAMIC_SHARED(unsigned char, smem);
  __half* k_s = reinterpret_cast<__half*>(smem);                        // (kFlashTcKeys, ld)
  __half* q_s = reinterpret_cast<__half*>(smem + layout.kv_bytes());  // (16, ld)
  float* s_w = reinterpret_cast<float*>(smem + 2 * layout.kv_bytes());  // (16, lds)
  const int lane = threadIdx.x;
  for (int e = lane; e < kFlashTcKeys * d; e += 32) k_s[e / d * layout.ld + e % d] = k_rows[e];
  for (int e = lane; e < kTile * d; e += 32) q_s[e / d * layout.ld + e % d] = q_rows[e];
  __syncwarp();  // the tiles are complete
  flash_tc::FragmentQ q_frag[kFlashMaxHeadDim / kTile];
  for (int kk = 0; kk < d / kTile; ++kk) wmma::load_matrix_sync(q_frag[kk], q_s + kk * kTile, layout.ld);
  flash_tc::warp_scores(q_frag, k_s, layout.ld, s_w, layout.lds, d);
  __syncwarp();  // every lane's part of the scores is stored
  for (int e = lane; e < kTile * kFlashTcKeys; e += 32) s[e] = s_w[e / kFlashTcKeys * layout.lds + e % kFlashTcKeys];
}

__global__ void warp_online_softmax_kernel(const float* s, int tiles, const int* row_end, float scale, int d,
                                           float* p, float* o, float* m, float* l) {
  const flash_tc::SharedLayout layout(d);
  ATTN_DYNAMIC_SHARED(unsigned char, smem);
  float* s_w = reinterpret_cast<float*>(smem);                                                 // (16, lds)
  __half* p_w = reinterpret_cast<__half*>(smem + sizeof(float) * kTile * layout.lds);          // (16, ldp)
  float* o_w = reinterpret_cast<float*>(smem + sizeof(float) * kTile * layout.lds + sizeof(__half) * kTile * layout.ldp);
  const int lane = threadIdx.x;
  float m_run = -INFINITY, l_run = 0.0f;
  for (int t = 0; t < tiles; ++t) {
    for (int e = lane; e < kTile * kFlashTcKeys; e += 32)
      s_w[e / kFlashTcKeys * layout.lds + e % kFlashTcKeys] = s[at(t, kTile * kFlashTcKeys, e)];
    for (int e = lane; e < kTile * d; e += 32) o_w[e / d * layout.ldo + e % d] = 1.0f;  // becomes alpha
    __syncwarp();  // the scores and the output rows are complete
    flash_tc::warp_online_softmax(s_w, layout.lds, p_w, layout.ldp, o_w, layout.ldo, d, scale, t * kFlashTcKeys,
                                  row_end[lane / 2], m_run, l_run);
    __syncwarp();  // every lane's probabilities and output rows are stored
    for (int e = lane; e < kTile * kFlashTcKeys; e += 32)
      p[at(t, kTile * kFlashTcKeys, e)] = __half2float(p_w[e / kFlashTcKeys * layout.ldp + e % kFlashTcKeys]);
    for (int e = lane; e < kTile * d; e += 32) o[at(t, kTile * d, e)] = o_w[e / d * layout.ldo + e % d];
    m[at(t, 32, lane)] = m_run;
    l[at(t, 32, lane)] = l_run;
    __syncwarp();  // the copies are done before the next tile overwrites the arrays
  }
}

__global__ void warp_accumulate_pv_kernel(const __half* p, const __half* v_rows, float* o, int d) {
  const flash_tc::SharedLayout layout(d);
  ATTN_DYNAMIC_SHARED(unsigned char, smem);
  __half* v_s = reinterpret_cast<__half*>(smem);                                     // (kFlashTcKeys, ld)
  __half* p_w = reinterpret_cast<__half*>(smem + layout.kv_bytes());               // (16, ldp)
  float* o_w = reinterpret_cast<float*>(smem + layout.kv_bytes() + sizeof(__half) * kTile * layout.ldp);  // (16, ldo)
  const int lane = threadIdx.x;
  for (int e = lane; e < kFlashTcKeys * d; e += 32) v_s[e / d * layout.ld + e % d] = v_rows[e];
  for (int e = lane; e < kTile * kFlashTcKeys; e += 32) p_w[e / kFlashTcKeys * layout.ldp + e % kFlashTcKeys] = p[e];
  for (int e = lane; e < kTile * d; e += 32) o_w[e / d * layout.ldo + e % d] = o[e];
  __syncwarp();  // the tiles are complete
  flash_tc::warp_accumulate_pv(p_w, layout.ldp, v_s, layout.ld, o_w, layout.ldo, d);
  __syncwarp();  // every lane's part of the output is stored
  for (int e = lane; e < kTile * d; e += 32) o[e] = o_w[e / d * layout.ldo + e % d];
}

__global__ void warp_write_output_kernel(const float* o, const float* l_rows, int row0, int tq, int d,
                                         float* out_head) {
  const flash_tc::SharedLayout layout(d);
  ATTN_DYNAMIC_SHARED(unsigned char, smem);
  float* o_w = reinterpret_cast<float*>(smem);  // (16, ldo)
  const int lane = threadIdx.x;
  for (int e = lane; e < kTile * d; e += 32) o_w[e / d * layout.ldo + e % d] = o[e];
  __syncwarp();  // the output rows are complete
  flash_tc::warp_write_output(o_w, layout.ldo, l_rows[lane / 2], out_head, row0, tq, d);
}

void check_launch() { ATTN_CUDA_CHECK(cudaGetLastError()); }

}  // namespace

void block_heads(int batch, int heads, int kv_heads, int* bhg) {
  ATTN_LAUNCH(block_heads_kernel, dim3(1, batch * heads), 1, 0, heads, kv_heads, bhg);
  check_launch();
}

void stage_query_rows(const float* q_head, int tq, int d, float scale, float* staged) {
  ATTN_LAUNCH(stage_query_row_kernel, flash::ceil_div(tq, kFlashRows), dim3(32, kFlashRows), 0, q_head, tq, d, scale,
              staged);
  check_launch();
}

void causal_key_range(int rows, int tq, int tk, bool causal, int q_offset, int* kv_end, int* row_end) {
  ATTN_LAUNCH(causal_key_range_kernel, flash::ceil_div(tq, rows), rows, 0, rows, tq, tk, causal, q_offset, kv_end,
              row_end);
  check_launch();
}

void load_kv_tile(const float* k_head, const float* v_head, int k0, int kv_end, int d, float* k_tile,
                  float* v_tile) {
  ATTN_LAUNCH(load_kv_tile_kernel, 1, dim3(32, kFlashRows), 0, k_head, v_head, k0, kv_end, d, k_tile, v_tile);
  check_launch();
}

void tile_score(const float* q_rows, const float* k_rows, int k0, const int* row_end, int d, float* s) {
  ATTN_LAUNCH(tile_score_kernel, 1, dim3(32, kFlashRows), 0, q_rows, k_rows, k0, row_end, d, s);
  check_launch();
}

void online_softmax_update(const float* s, int tiles, float* p, float* alpha, float* m, float* l) {
  ATTN_LAUNCH(online_softmax_kernel, 1, 32, 0, s, tiles, p, alpha, m, l);
  check_launch();
}

void accumulate_pv(const float* p, float alpha, const float* v_rows, float* o, int d) {
  ATTN_LAUNCH(accumulate_pv_kernel, 1, 32, 0, p, alpha, v_rows, o, d);
  check_launch();
}

void write_output(const float* o, float l, int d, float* out_row) {
  ATTN_LAUNCH(write_output_kernel, 1, 32, 0, o, l, d, out_row);
  check_launch();
}

void stage_queries(const __half* q_head, int i0, int tq, int d, float* q_out) {
  const std::size_t smem = flash_tc::SharedLayout(d).kv_bytes() + sizeof(__half) * kTile * kTile;
  ATTN_LAUNCH(stage_queries_kernel, 1, dim3(32, kFlashTcWarps), smem, q_head, i0, tq, d, q_out);
  check_launch();
}

void warp_scores(const __half* q_rows, const __half* k_rows, int d, float* s) {
  const flash_tc::SharedLayout layout(d);
  const std::size_t smem = 2 * layout.kv_bytes() + sizeof(float) * kTile * layout.lds;
  ATTN_LAUNCH(warp_scores_kernel, 1, 32, smem, q_rows, k_rows, d, s);
  check_launch();
}

void warp_online_softmax(const float* s, int tiles, const int* row_end, float scale, int d, float* p, float* o,
                         float* m, float* l) {
  const flash_tc::SharedLayout layout(d);
  const std::size_t smem =
      sizeof(float) * kTile * layout.lds + sizeof(__half) * kTile * layout.ldp + sizeof(float) * kTile * layout.ldo;
  ATTN_LAUNCH(warp_online_softmax_kernel, 1, 32, smem, s, tiles, row_end, scale, d, p, o, m, l);
  check_launch();
}

void warp_accumulate_pv(const __half* p, const __half* v_rows, float* o, int d) {
  const flash_tc::SharedLayout layout(d);
  const std::size_t smem = layout.kv_bytes() + sizeof(__half) * kTile * layout.ldp + sizeof(float) * kTile * layout.ldo;
  ATTN_LAUNCH(warp_accumulate_pv_kernel, 1, 32, smem, p, v_rows, o, d);
  check_launch();
}

void warp_write_output(const float* o, const float* l_rows, int row0, int tq, int d, float* out_head) {
  const std::size_t smem = sizeof(float) * kTile * flash_tc::SharedLayout(d).ldo;
  ATTN_LAUNCH(warp_write_output_kernel, 1, 32, smem, o, l_rows, row0, tq, d, out_head);
  check_launch();
}

}  // namespace testing

}  // namespace attn::gpu
