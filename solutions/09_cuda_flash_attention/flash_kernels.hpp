/// @file flash_kernels.hpp
/// @brief Lesson 09: the host functions that launch the fused attention kernels of
///        flash_kernels.cu, and (namespace testing) the test kernels of their device functions.
///
/// Every pointer is device memory, every tensor row-major. A launcher checks the
/// launch with cudaGetLastError() and returns; the output is ready once the device
/// has synchronized (cudaMemcpy does).
#pragma once

#include <cstddef>

#include "attn/cuda_fp16.hpp"

namespace attn::gpu {

/// Query rows per block of the fused kernel, one warp each.
inline constexpr int kFlashRows = 16;
/// Keys per K/V tile of the fused kernel, one per lane of a warp.
inline constexpr int kFlashKeys = 32;
/// The largest head dimension the kernel's shared-memory tiles hold.
inline constexpr int kFlashMaxHeadDim = 128;

/// out (B, H, Tq, D) = softmax(q k^T * scale) v in one kernel that never stores the
/// scores: one block per (tile of kFlashRows query rows, batch, query head), query
/// head h reading key/value head h / (H / G). With `causal`, query row i sits at
/// position q_offset + i and sees keys j <= q_offset + i; key tiles that no row of
/// a block can see are not read. q is (B, H, Tq, D), k and v are (B, G, Tk, D),
/// 1 <= D <= kFlashMaxHeadDim.
void launch_flash_attention(const float* q, const float* k, const float* v, float* out, int batch,
                            int heads, int kv_heads, int tq, int tk, int d, float scale, bool causal,
                            int q_offset);

/// Query rows per block of the tensor-core kernel: 16 per warp, kFlashTcWarps warps.
inline constexpr int kFlashTcRows = 64;
/// Warps per block of the tensor-core kernel.
inline constexpr int kFlashTcWarps = kFlashTcRows / 16;
/// Keys per K/V tile of the tensor-core kernel.
inline constexpr int kFlashTcKeys = 64;

/// Bytes of dynamic shared memory the tensor-core kernel uses at head dimension d
/// (README section 14, "Shared memory"): 93 KiB at d = 128, 61 KiB at d = 64.
std::size_t flash_fp16_shared_bytes(int d);

/// launch_flash_attention with q, k, v in half precision and both products on the
/// tensor cores; the output stays float32. One block of kFlashTcWarps warps per
/// (tile of kFlashTcRows query rows, batch, query head). d is a multiple of 16, at
/// most kFlashMaxHeadDim.
void launch_flash_attention_fp16(const __half* q, const __half* k, const __half* v, float* out, int batch,
                                 int heads, int kv_heads, int tq, int tk, int d, float scale, bool causal,
                                 int q_offset);

/// Host entry points of the test kernels of flash_kernels.cu: each launches one small
/// kernel that runs one device function of the lesson alone, on inputs staged by plain
/// loops, and copies out what it computed, so that a test can check that function before
/// the kernels that call it exist. (nvcc compiles each .cu file alone, without relocatable
/// device code, so a device function can only be called from a kernel of its own file:
/// common/cuda/README.md, "Testing device functions".) Every pointer is device memory;
/// each function is named after the device function it runs.
namespace testing {

/// block_heads in every block of a grid (1, batch * heads): bhg[3 y + 0, 1, 2] = b, h, g of block y.
void block_heads(int batch, int heads, int kv_heads, int* bhg);
/// stage_query_row by the warps of blocks (32, kFlashRows) over query tiles 0 .. ceil(tq / kFlashRows) - 1
/// of q_head (tq, d): staged (ceil(tq / kFlashRows) * kFlashRows, d) is what their q_tile rows hold.
void stage_query_rows(const float* q_head, int tq, int d, float scale, float* staged);
/// causal_key_range for query tiles of `rows` rows (blocks of `rows` threads, one per row):
/// kv_end[tile] (ceil(tq / rows) values) and row_end[i] (tq values).
void causal_key_range(int rows, int tq, int tk, bool causal, int q_offset, int* kv_end, int* row_end);
/// load_kv_tile of keys [k0, k0 + kFlashKeys) by a block (32, kFlashRows), over shared tiles
/// filled with NaN first: k_tile and v_tile (kFlashKeys, d) are what the tiles hold after it.
void load_kv_tile(const float* k_head, const float* v_head, int k0, int kv_end, int d, float* k_tile,
                  float* v_tile);
/// tile_score by every warp w of a block (32, kFlashRows), for query row w of q_rows (kFlashRows, d)
/// and the keys k0 + j of k_rows (kFlashKeys, d), with row_end[w]: s (kFlashRows, kFlashKeys).
void tile_score(const float* q_rows, const float* k_rows, int k0, const int* row_end, int d, float* s);
/// online_softmax_update by one warp over `tiles` tiles of scores s (tiles, 32), lane j taking
/// s(t, j), from m = -infinity, l = 0: p, alpha, m and l (tiles, 32), each lane's after tile t.
void online_softmax_update(const float* s, int tiles, float* p, float* alpha, float* m, float* l);
/// accumulate_pv by one warp: o (d) becomes alpha o + sum_j p[j] v_rows(j, :) (p: kFlashKeys,
/// v_rows: (kFlashKeys, d)), lane by lane as the kernel's registers hold it.
void accumulate_pv(const float* p, float alpha, const float* v_rows, float* o, int d);
/// write_output by one warp: out_row (d) = o (d) / l.
void write_output(const float* o, float l, int d, float* out_row);

/// stage_queries by a block (32, kFlashTcWarps) for the query rows [i0, i0 + kFlashTcRows) of
/// q_head (tq, d); then NaN over k_s, and each warp's fragments read back through the tensor
/// cores (times the identity): q_out (kFlashTcRows, d).
void stage_queries(const __half* q_head, int i0, int tq, int d, float* q_out);
/// warp_scores by one warp: s (16, kFlashTcKeys) = q_rows (16, d) times k_rows (kFlashTcKeys, d) transposed.
void warp_scores(const __half* q_rows, const __half* k_rows, int d, float* s);
/// warp_online_softmax by one warp over `tiles` tiles of unscaled scores s (tiles, 16, kFlashTcKeys),
/// tile t holding keys t * kFlashTcKeys ..; row r sees keys below row_end[r] (16 values); before each
/// tile o_w is set to ones. After tile t: p (tiles, 16, kFlashTcKeys) as floats, o (tiles, 16, d)
/// the rescaled ones, m and l (tiles, 32) of each lane.
void warp_online_softmax(const float* s, int tiles, const int* row_end, float scale, int d, float* p, float* o,
                         float* m, float* l);
/// warp_accumulate_pv by one warp: o (16, d) += p (16, kFlashTcKeys) times v_rows (kFlashTcKeys, d).
void warp_accumulate_pv(const __half* p, const __half* v_rows, float* o, int d);
/// warp_write_output by one warp of o (16, d), l of row r in l_rows[r] (16 values): rows
/// row0 .. row0 + 15 of out_head (at least min(row0 + 16, tq) rows of d floats), those below tq.
void warp_write_output(const float* o, const float* l_rows, int row0, int tq, int d, float* out_head);

}  // namespace testing

}  // namespace attn::gpu
