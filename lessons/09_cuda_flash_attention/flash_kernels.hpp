/// @file flash_kernels.hpp
/// @brief Lesson 09: the host functions that launch the fused attention kernels of flash_kernels.cu.
///
/// Every pointer is device memory, every tensor row-major. The launcher checks the
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
/// (README section 8): 93 KiB at d = 128, 61 KiB at d = 64.
std::size_t flash_fp16_shared_bytes(int d);

/// launch_flash_attention with q, k, v in half precision and both products on the
/// tensor cores; the output stays float32. One block of kFlashTcWarps warps per
/// (tile of kFlashTcRows query rows, batch, query head). d is a multiple of 16, at
/// most kFlashMaxHeadDim.
void launch_flash_attention_fp16(const __half* q, const __half* k, const __half* v, float* out, int batch,
                                 int heads, int kv_heads, int tq, int tk, int d, float scale, bool causal,
                                 int q_offset);

}  // namespace attn::gpu
