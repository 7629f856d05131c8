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

using QTile = float[kDecodeMaxHeadDim];      // a row of q_tile: one query head, times scale
using KTile = float[kDecodeMaxHeadDim + 1];  // a row of k_tile: one key (+1: no bank conflicts)
using VTile = float[kDecodeMaxHeadDim];      // a row of v_tile: one value

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
  // TODO(10.1): e from the grid (skip e >= total); row (b, g) = e / (Tn D), t D + c = e % (Tn D); the cache row has capacity positions
  const long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= total) return;
  const long long per_row = static_cast<long long>(tn) * d;
  const long long row = e / per_row;  // b * G + g
  const long long at = (row * capacity + start) * d + e % per_row;
  k_cache[at] = k_new[e];
  v_cache[at] = v_new[e];
  // END TODO(10.1)
}

/// Warp w = threadIdx.y of the block of KV head g of sequence b stages query head
/// h = g (H/G) + w: q_tile[w][c] = q(b, h, 0, c) * scale for c < D. Returns h.
__device__ int stage_group_query(const float* q, QTile* q_tile, int b, int g, int heads, int kv_heads, int d,
                                 float scale) {
  // TODO(10.3): h = g (H/G) + w, the heads of a group being consecutive; the warp's lanes copy q(b, h, 0, :) times scale into q_tile[w]; return h
  const int w = threadIdx.y;
  const int h = g * (heads / kv_heads) + w;  // the group of KV head g: heads g (H/G) ... g (H/G) + H/G - 1
  const float* q_row = q + (static_cast<long long>(b) * heads + h) * d;
  for (int c = threadIdx.x; c < d; c += 32) q_tile[w][c] = q_row[c] * scale;
  return h;
  // END TODO(10.3)
}

/// All 32 (H/G) threads of the block copy keys k0 .. k0 + 31 of one KV head (rows of D
/// floats) into k_tile, and their values into v_tile; rows of keys at or past k_end
/// (the end of the block's chunk) become zeros.
__device__ void load_kv_tile(const float* k_head, const float* v_head, KTile* k_tile, VTile* v_tile, int k0,
                             int k_end, int d) {
  // TODO(10.4): thread 32 threadIdx.y + threadIdx.x copies elements e = tid, tid + 32 blockDim.y, ... < 32 D of the tile, e = j D + c being column c of key k0 + j; zeros past k_end
  const int tid = threadIdx.y * 32 + threadIdx.x, threads = 32 * blockDim.y;
  for (int e = tid; e < kDecodeKeys * d; e += threads) {
    const int j = e / d, c = e % d;
    const bool inside = k0 + j < k_end;
    const long long at = static_cast<long long>(k0 + j) * d + c;
    k_tile[j][c] = inside ? k_head[at] : 0.0f;
    v_tile[j][c] = inside ? v_head[at] : 0.0f;
  }
  // END TODO(10.4)
}

/// Lane j of a warp: the score of key k0 + j of the tile against the warp's staged query
/// row (already times 1/sqrt(D)), or -infinity for a key at or past k_end.
__device__ float tile_score(const float* q_row, const KTile* k_tile, int k0, int k_end, int d) {
  // TODO(10.5): -infinity past k_end; otherwise the dot product of q_row and row j = lane of k_tile over the D columns
  const int j = threadIdx.x;
  if (k0 + j >= k_end) return -INFINITY;  // past the chunk: weight e^-inf = 0
  float s = 0.0f;
  for (int c = 0; c < d; ++c) s += q_row[c] * k_tile[j][c];
  return s;
  // END TODO(10.5)
}

/// The online softmax of one warp's row over one tile: lane j holds the score s of key
/// k0 + j. The running maximum m and sum l (the same in every lane) become those of all
/// keys so far, p_row[j] = e^(s - m_new). Returns alpha = e^(m_old - m_new), the factor
/// by which what was summed relative to the old maximum is rescaled (0 on the first
/// tile, where m_old = -infinity).
__device__ float online_softmax_update(float s, float& m, float& l, float* p_row) {
  // TODO(10.6): m_new = max(m, warp_max(s)); alpha = e^(m - m_new); p = e^(s - m_new) into p_row[lane]; l = alpha l + warp_sum(p); m = m_new; return alpha
  const float m_new = fmaxf(m, warp_max(s));  // finite: every tile holds at least one key
  const float alpha = expf(m - m_new);
  const float p = expf(s - m_new);
  p_row[threadIdx.x] = p;
  l = l * alpha + warp_sum(p);
  m = m_new;
  return alpha;
  // END TODO(10.6)
}

/// One warp's output row o (lane j holds columns j + 32 r, r < kDecodeDimsPerLane, those
/// below D), rescaled and extended by the tile: o(c) = alpha o(c) + sum_j p_row[j] v_tile[j][c].
__device__ void accumulate_pv(float (&o)[kDecodeDimsPerLane], float alpha, const float* p_row,
                              const VTile* v_tile, int d) {
  // TODO(10.7): o[r] *= alpha; then for each key j of the tile, o[r] += p_row[j] v_tile[j][c] at column c = lane + 32 r, for the columns c < D
  for (int r = 0; r < kDecodeDimsPerLane; ++r) o[r] *= alpha;
  for (int j = 0; j < kDecodeKeys; ++j) {
    const float pj = p_row[j];
    for (int r = 0; r < kDecodeDimsPerLane; ++r) {
      const int c = threadIdx.x + 32 * r;
      if (c < d) o[r] += pj * v_tile[j][c];
    }
  }
  // END TODO(10.7)
}

/// One warp: the chunk's unnormalized output row o (columns lane + 32 r) goes to slot
/// bh * splits + split of partial_o (B H, splits, D), its m and l to that slot of
/// partial_ml (B H, splits, 2).
__device__ void store_chunk_partial(const float (&o)[kDecodeDimsPerLane], float m, float l, float* partial_o,
                                    float* partial_ml, long long bh, int split, int splits, int d) {
  // TODO(10.8): slot = bh splits + split; column c = lane + 32 r < D of the slot's row gets o[r] (not divided by l); lane 0 writes m and l
  const long long slot = bh * splits + split;
  for (int r = 0; r < kDecodeDimsPerLane; ++r) {
    const int c = threadIdx.x + 32 * r;
    if (c < d) partial_o[slot * d + c] = o[r];  // not divided by l: the combine needs the sums
  }
  if (threadIdx.x == 0) {
    partial_ml[2 * slot] = m;
    partial_ml[2 * slot + 1] = l;
  }
  // END TODO(10.8)
}

/// Block (chunk blockIdx.x of `chunk` keys, b * G + g), threads (32, H / G): warp w
/// serves query head g * (H / G) + w, lane j scores key j of each K/V tile, and each K/V
/// tile is loaded once for the whole group. Writes the chunk's unnormalized output
/// (B, H, splits, D) and its maximum and sum (B, H, splits, 2).
__global__ void __launch_bounds__(32 * kDecodeMaxGroup)
    decode_partial_kernel(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                          float* partial_ml, int heads, int kv_heads, int length, int capacity, int d,
                          float scale, int chunk) {
  // TODO(10.9): the steps of section 7, calling 10.3 to 10.8; two block barriers and one warp barrier per tile
  // 1. shared memory (section 10): q_tile[16][128] (the group's queries), k_tile[32][129] (+1: no bank conflicts), v_tile[32][128], p_tile[16][32]
  __shared__ float q_tile[kDecodeMaxGroup][kDecodeMaxHeadDim];
  __shared__ float k_tile[kDecodeKeys][kDecodeMaxHeadDim + 1];
  __shared__ float v_tile[kDecodeKeys][kDecodeMaxHeadDim];
  __shared__ float p_tile[kDecodeMaxGroup][kDecodeKeys];
  // 2. block (split, b G + g): warp w = threadIdx.y stages query head h of KV head g (stage_group_query)
  const int w = threadIdx.y, split = blockIdx.x;
  const int b = blockIdx.y / kv_heads, g = blockIdx.y % kv_heads;
  const int h = stage_group_query(q, q_tile, b, g, heads, kv_heads, d, scale);
  // 3. the chunk: keys [split chunk, min(length, split chunk + chunk)) of KV head (b, g), whose rows are capacity long
  const long long row = static_cast<long long>(b) * kv_heads + g;
  const float* k_head = k_cache + row * capacity * d;  // (capacity, D)
  const float* v_head = v_cache + row * capacity * d;
  const int k_begin = split * chunk, k_end = min(length, k_begin + chunk);
  float m = -INFINITY, l = 0.0f;
  float o[kDecodeDimsPerLane] = {};
  // 4. for each tile of 32 keys of the chunk, from k_begin:
  for (int k0 = k_begin; k0 < k_end; k0 += kDecodeKeys) {
    // 5. load K and V once for the whole group (load_kv_tile)
    load_kv_tile(k_head, v_head, k_tile, v_tile, k0, k_end, d);
    // 6. __syncthreads(): the tiles (and the staged queries) are complete before any warp reads them
    __syncthreads();
    // 7. each warp: its lane's score (tile_score), the online softmax of its row (online_softmax_update)
    const float s = tile_score(q_tile[w], k_tile, k0, k_end, d);
    const float alpha = online_softmax_update(s, m, l, p_tile[w]);
    // 8. __syncwarp(): the warp's row of p_tile is complete before its lanes read all of it
    // CUDA orders the lanes' stores for the others at __syncwarp(), not at warp_sum's shuffles before it; the
    // emulator's shuffles happen to order memory, so there its absence passes (common/cuda/README.md, section 4)
    __syncwarp();
    // 9. o = alpha o + p V (accumulate_pv)
    accumulate_pv(o, alpha, p_tile[w], v_tile, d);
    // 10. __syncthreads(): no warp still reads the tiles (or its p row) when the next ones are written
    __syncthreads();
  }
  // 11. the chunk's o, m and l (store_chunk_partial); an empty chunk leaves m = -infinity, l = 0, o = 0
  store_chunk_partial(o, m, l, partial_o, partial_ml, static_cast<long long>(b) * heads + h, split, gridDim.x, d);
  // END TODO(10.9)
}

/// One block per (b, h), thread c per output column: the chunks' partial results,
/// each relative to its own maximum m_s, rescaled to the overall maximum and summed.
__global__ void decode_combine_kernel(const float* partial_o, const float* partial_ml, float* out,
                                      int splits, int d) {
  // TODO(10.10): M = max over chunks of m_s; out(c) = sum_s e^(m_s - M) o_s(c) / sum_s e^(m_s - M) l_s
  // 1. M = the largest m_s of this row's chunks (finite: chunk 0 holds key 0)
  const long long bh = blockIdx.x;
  const float* ml = partial_ml + bh * splits * 2;
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, ml[2 * s]);
  // 2. for each column c = threadIdx.x, c + blockDim.x, ... < D: num = sum_s e^(m_s - M) o_s(c), den = sum_s e^(m_s - M) l_s
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float num = 0.0f, den = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float weight = expf(ml[2 * s] - m);  // 0 for an empty chunk
      num += weight * partial_o[(bh * splits + s) * d + c];
      den += weight * ml[2 * s + 1];
    }
    // 3. out(c) = num / den
    out[bh * d + c] = num / den;
  }
  // END TODO(10.10)
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

void launch_decode_partial(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                           float* partial_ml, int batch, int heads, int kv_heads, int length, int capacity,
                           int d, float scale, int splits) {
  // Chunks of whole K/V tiles; with more splits than tiles, the last chunks are empty.
  const int chunk = decode::ceil_div(decode::ceil_div(length, splits), kDecodeKeys) * kDecodeKeys;
  const dim3 block(32, heads / kv_heads);  // a warp per query head of the group
  const dim3 grid(splits, batch * kv_heads);
  ATTN_LAUNCH(decode::decode_partial_kernel, grid, block, 0, q, k_cache, v_cache, partial_o, partial_ml,
              heads, kv_heads, length, capacity, d, scale, chunk);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void launch_decode_combine(const float* partial_o, const float* partial_ml, float* out, int rows, int splits,
                           int d) {
  ATTN_LAUNCH(decode::decode_combine_kernel, rows, kDecodeMaxHeadDim, 0, partial_o, partial_ml, out, splits, d);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void launch_gqa_decode(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                       float* partial_ml, float* out, int batch, int heads, int kv_heads, int length,
                       int capacity, int d, float scale, int splits) {
  launch_decode_partial(q, k_cache, v_cache, partial_o, partial_ml, batch, heads, kv_heads, length, capacity, d,
                        scale, splits);
  launch_decode_combine(partial_o, partial_ml, out, batch * heads, splits, d);
}

// --------------------------------------------------------------------------------------
// Test kernels: each runs one device function of decode_partial_kernel, its inputs
// staged and its results copied out by plain code (decode_kernels.hpp, namespace testing).
// --------------------------------------------------------------------------------------

namespace testing {

namespace {

__global__ void stage_group_query_kernel(const float* q, float* staged, int* heads_out, int heads,
                                         int kv_heads, int d, float scale) {
  __shared__ float q_tile[kDecodeMaxGroup][kDecodeMaxHeadDim];
  const int b = blockIdx.x / kv_heads, g = blockIdx.x % kv_heads, w = threadIdx.y;
  const int h = decode::stage_group_query(q, q_tile, b, g, heads, kv_heads, d, scale);
  __syncthreads();  // every warp's row is complete before it is copied out
  const long long row = static_cast<long long>(blockIdx.x) * blockDim.y + w;
  for (int c = threadIdx.x; c < d; c += 32) staged[row * d + c] = q_tile[w][c];
  if (threadIdx.x == 0) heads_out[row] = h;
}

__global__ void load_kv_tile_kernel(const float* k_head, const float* v_head, float* k_out, float* v_out, int k0,
                                    int k_end, int d) {
  __shared__ float k_tile[kDecodeKeys][kDecodeMaxHeadDim + 1];
  __shared__ float v_tile[kDecodeKeys][kDecodeMaxHeadDim];
  const int tid = threadIdx.y * 32 + threadIdx.x, threads = 32 * blockDim.y;
  for (int e = tid; e < kDecodeKeys * d; e += threads) k_tile[e / d][e % d] = v_tile[e / d][e % d] = NAN;
  __syncthreads();  // the NaN fill is complete before the load overwrites it
  decode::load_kv_tile(k_head, v_head, k_tile, v_tile, k0, k_end, d);
  __syncthreads();  // the tiles are complete before they are copied out
  for (int e = tid; e < kDecodeKeys * d; e += threads) {
    k_out[e] = k_tile[e / d][e % d];
    v_out[e] = v_tile[e / d][e % d];
  }
}

__global__ void tile_scores_kernel(const float* q_rows, const float* k_rows, float* scores, int k0, int k_end,
                                   int d) {
  __shared__ float q_tile[kDecodeMaxGroup][kDecodeMaxHeadDim];
  __shared__ float k_tile[kDecodeKeys][kDecodeMaxHeadDim + 1];
  const int w = threadIdx.y, lane = threadIdx.x;
  for (int c = lane; c < d; c += 32) q_tile[w][c] = q_rows[w * d + c];
  for (int e = w * 32 + lane; e < kDecodeKeys * d; e += 32 * blockDim.y) k_tile[e / d][e % d] = k_rows[e];
  __syncthreads();  // both tiles are complete before any warp scores
  scores[w * kDecodeKeys + lane] = decode::tile_score(q_tile[w], k_tile, k0, k_end, d);
}

__global__ void online_softmax_rows_kernel(const float* scores, float* alpha, float* m_out, float* l_out,
                                           float* p, int tiles) {
  __shared__ float p_tile[kDecodeMaxGroup][kDecodeKeys];
  const int w = threadIdx.y, lane = threadIdx.x;
  float m = -INFINITY, l = 0.0f;
  for (int t = 0; t < tiles; ++t) {
    const long long row = static_cast<long long>(t) * blockDim.y + w;
    const float a = decode::online_softmax_update(scores[row * kDecodeKeys + lane], m, l, p_tile[w]);
    __syncwarp();  // the warp's p row is complete before it is copied out
    p[row * kDecodeKeys + lane] = p_tile[w][lane];
    if (lane == 0) {
      alpha[row] = a;
      m_out[row] = m;
      l_out[row] = l;
    }
    __syncwarp();  // every lane has copied its p before the next update overwrites the row
  }
}

__global__ void accumulate_pv_kernel(const float* o_in, const float* alpha, const float* p, const float* v_rows,
                                     float* o_out, int d) {
  __shared__ float p_tile[kDecodeMaxGroup][kDecodeKeys];
  __shared__ float v_tile[kDecodeKeys][kDecodeMaxHeadDim];
  const int w = threadIdx.y, lane = threadIdx.x;
  p_tile[w][lane] = p[w * kDecodeKeys + lane];
  for (int e = w * 32 + lane; e < kDecodeKeys * d; e += 32 * blockDim.y) v_tile[e / d][e % d] = v_rows[e];
  float o[kDecodeDimsPerLane];
  for (int r = 0; r < kDecodeDimsPerLane; ++r) {
    const int c = lane + 32 * r;
    o[r] = c < d ? o_in[w * d + c] : 0.0f;
  }
  __syncthreads();  // both tiles are complete before any warp reads them
  decode::accumulate_pv(o, alpha[w], p_tile[w], v_tile, d);
  for (int r = 0; r < kDecodeDimsPerLane; ++r) {
    const int c = lane + 32 * r;
    if (c < d) o_out[w * d + c] = o[r];
  }
}

__global__ void store_chunk_partial_kernel(const float* o_rows, const float* ml, float* partial_o,
                                           float* partial_ml, int d) {
  const int split = blockIdx.x, splits = gridDim.x;
  const long long bh = blockIdx.y, slot = bh * splits + split;
  float o[kDecodeDimsPerLane];
  for (int r = 0; r < kDecodeDimsPerLane; ++r) {
    const int c = threadIdx.x + 32 * r;
    o[r] = c < d ? o_rows[slot * d + c] : NAN;  // NaN: the columns past D are never stored
  }
  decode::store_chunk_partial(o, ml[2 * slot], ml[2 * slot + 1], partial_o, partial_ml, bh, split, splits, d);
}

}  // namespace

void stage_group_query(const float* q, float* staged, int* heads, int batch, int heads_q, int kv_heads, int d,
                       float scale) {
  ATTN_LAUNCH(stage_group_query_kernel, batch * kv_heads, dim3(32, heads_q / kv_heads), 0, q, staged, heads,
              heads_q, kv_heads, d, scale);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void load_kv_tile(const float* k_head, const float* v_head, float* k_out, float* v_out, int group, int k0,
                  int k_end, int d) {
  ATTN_LAUNCH(load_kv_tile_kernel, 1, dim3(32, group), 0, k_head, v_head, k_out, v_out, k0, k_end, d);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void tile_scores(const float* q_rows, const float* k_rows, float* scores, int group, int k0, int k_end,
                 int d) {
  ATTN_LAUNCH(tile_scores_kernel, 1, dim3(32, group), 0, q_rows, k_rows, scores, k0, k_end, d);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void online_softmax_rows(const float* scores, float* alpha, float* m, float* l, float* p, int group,
                         int tiles) {
  ATTN_LAUNCH(online_softmax_rows_kernel, 1, dim3(32, group), 0, scores, alpha, m, l, p, tiles);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void accumulate_pv(const float* o_in, const float* alpha, const float* p, const float* v_rows, float* o_out,
                   int group, int d) {
  ATTN_LAUNCH(accumulate_pv_kernel, 1, dim3(32, group), 0, o_in, alpha, p, v_rows, o_out, d);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

void store_chunk_partial(const float* o, const float* ml, float* partial_o, float* partial_ml, int rows,
                         int splits, int d) {
  ATTN_LAUNCH(store_chunk_partial_kernel, dim3(splits, rows), 32, 0, o, ml, partial_o, partial_ml, d);
  ATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace testing

}  // namespace attn::gpu
