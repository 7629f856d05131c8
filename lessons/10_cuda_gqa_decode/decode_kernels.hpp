/// @file decode_kernels.hpp
/// @brief Lesson 10: the host functions that launch the decode kernels of decode_kernels.cu.
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

/// Writes new (B, G, Tn, D) into positions start .. start + Tn - 1 of cache
/// (B, G, capacity, D); k and v alike.
void launch_kv_append(const float* k_new, const float* v_new, float* k_cache, float* v_cache, int batch,
                      int kv_heads, int tn, int capacity, int d, int start);

/// Decode attention of q (B, H, 1, D) over the first `length` positions of the caches
/// (B, G, capacity, D), the sequence cut into `splits` chunks: one block per (chunk,
/// batch, KV head) serving the H / G query heads of its group, then one combine
/// block per (batch, query head). `partial_o` (B, H, splits, D) and `partial_ml`
/// (B, H, splits, 2) are scratch; out is (B, H, 1, D). H / G <= kDecodeMaxGroup,
/// D <= kDecodeMaxHeadDim, 1 <= splits.
void launch_gqa_decode(const float* q, const float* k_cache, const float* v_cache, float* partial_o,
                       float* partial_ml, float* out, int batch, int heads, int kv_heads, int length,
                       int capacity, int d, float scale, int splits);

}  // namespace attn::gpu
