/// @file decode_kernels.hpp
/// @brief Lesson 10: the host functions that launch the decode kernels of decode_kernels.cu,
///        and (namespace testing) those that run one piece of the partial kernel alone.
///
/// Every pointer is device memory, every tensor row-major. Each launcher checks its
/// launch with cudaGetLastError() and returns.
#pragma once

namespace attn::gpu {

/// Keys per K/V tile of the decode kernel (one per lane).
inline constexpr int kDecodeKeys = 32;
/// The most query heads one KV head may serve (H / G): one warp each in a block.
inline constexpr int kDecodeMaxGroup = 16;
/// The largest head dimension the kernel's shared-memory tiles hold.
inline constexpr int kDecodeMaxHeadDim = 128;
/// Output columns one lane holds: lane j holds columns j, j + 32, j + 64, j + 96 (those < D).
inline constexpr int kDecodeDimsPerLane = kDecodeMaxHeadDim / 32;

/// Writes new (B, G, Tn, D) into positions start .. start + Tn - 1 of cache
/// (B, G, capacity, D); k and v alike.
void launch_kv_append(const float* k_new, const float* v_new, float* k_cache, float* v_cache, int batch,
                      int kv_heads, int tn, int capacity, int d, int start);

/// The first kernel of decode: q (B, H, 1, D) over the first `length` positions of the
/// caches (B, G, capacity, D), cut into `splits` chunks of whole K/V tiles; one block
/// per (chunk, batch, KV head) serving the H / G query heads of its group. Writes each
/// chunk's unnormalized output to partial_o (B, H, splits, D) and its maximum m and sum
/// l to partial_ml (B, H, splits, 2). H / G <= kDecodeMaxGroup, D <= kDecodeMaxHeadDim.
void launch_decode_partial(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                           float* partial_ml, int batch, int heads, int kv_heads, int length, int capacity,
                           int d, float scale, int splits);

/// The second kernel of decode: for each of `rows` (= B H) query heads, the `splits`
/// partial results (partial_o (rows, splits, D), partial_ml (rows, splits, 2)) brought to
/// a common maximum and normalized into out (rows, D).
void launch_decode_combine(const float* partial_o, const float* partial_ml, float* out, int rows, int splits,
                           int d);

/// Decode attention, both kernels: launch_decode_partial, then launch_decode_combine into
/// out (B, H, 1, D). `partial_o` (B, H, splits, D) and `partial_ml` (B, H, splits, 2) are
/// scratch. H / G <= kDecodeMaxGroup, D <= kDecodeMaxHeadDim, 1 <= splits.
void launch_gqa_decode(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                       float* partial_ml, float* out, int batch, int heads, int kv_heads, int length,
                       int capacity, int d, float scale, int splits);

/// Each function runs one device function of decode_partial_kernel in a small test
/// kernel of decode_kernels.cu (nvcc compiles every .cu file alone, so the tests reach
/// the device functions through these). `group` is H / G, the warps of a block.
namespace testing {

/// Grid (B G), block (32, H / G): block b G + g calls stage_group_query. staged
/// (B G, H / G, D) receives each warp's row of the query tile, heads (B G, H / G) the
/// query head each warp says it staged. q is (B, H, 1, D).
void stage_group_query(const float* q, float* staged, int* heads, int batch, int heads_q, int kv_heads, int d,
                       float scale);

/// One block (32, group) calls load_kv_tile for keys k0 .. k0 + 31 of k_head, v_head
/// (rows of D floats; at least k_end rows), its tiles first filled with NaN. k_out, v_out
/// (32, D) receive the tiles it left.
void load_kv_tile(const float* k_head, const float* v_head, float* k_out, float* v_out, int group, int k0,
                  int k_end, int d);

/// One block (32, group): q_rows (group, D) and k_rows (32, D) copied into the query and
/// key tiles; warp w, lane j calls tile_score for key k0 + j. scores (group, 32).
void tile_scores(const float* q_rows, const float* k_rows, float* scores, int group, int k0, int k_end,
                 int d);

/// One block (32, group): warp w runs online_softmax_update over `tiles` tiles of scores
/// (tiles, group, 32), starting from m = -infinity, l = 0. After tile t, alpha, m and l
/// (tiles, group) and p (tiles, group, 32) receive what the update left.
void online_softmax_rows(const float* scores, float* alpha, float* m, float* l, float* p, int group,
                         int tiles);

/// One block (32, group): warp w starts from the output row o_in (group, D) (in the
/// lanes' registers), alpha (group), the probabilities p (group, 32) and the value tile
/// v_rows (32, D), calls accumulate_pv once and writes its output row to o_out (group, D).
void accumulate_pv(const float* o_in, const float* alpha, const float* p, const float* v_rows, float* o_out,
                   int group, int d);

/// Grid (splits, rows), block 32: block (s, bh) holds row bh * splits + s of o (rows *
/// splits, D) in its lanes' registers and (m, l) = ml[2 (bh * splits + s) ...] and calls
/// store_chunk_partial into partial_o (rows, splits, D) and partial_ml (rows, splits, 2).
void store_chunk_partial(const float* o, const float* ml, float* partial_o, float* partial_ml, int rows,
                         int splits, int d);

}  // namespace testing

}  // namespace attn::gpu
