/// @file flash_attention.hpp
/// @brief Lesson 09: fused attention with online softmax (FlashAttention-style
///        forward), in float32 and on tensor cores in half precision, on a GPU or on
///        the CPU emulator.
///
/// The host side: check the shapes, copy the operands to the device, launch the
/// kernel of flash_kernels.cu, copy the result back. Unlike lesson 08's three
/// kernels, no (B, H, Tq, Tk) array of scores is ever allocated.
#pragma once

#include <cstddef>

#include "attn/core.hpp"

namespace attn {

/// Attention of q (B, H, Tq, D) over k, v (B, G, Tk, D) in one fused kernel; query
/// head h reads key/value head h / (H / G). Same contract as lesson 03's
/// gqa_attention: `Mask::causal` places query row i at position q_offset + i (keys
/// j <= q_offset + i are visible); `Mask::none` needs q_offset == 0.
/// @return (B, H, Tq, D)
/// @throws std::invalid_argument on what lesson 03's check_gqa_arguments refuses (mismatched
///         shapes, H not divisible by G, Tk == 0, q_offset with Mask::none), on v's D differing
///         from q's, D outside 1..128 (the kernel's tiles hold at most 128 columns), or
///         B * H > 65535 (the grid's y dimension).
/// @throws std::out_of_range if q_offset + Tq > Tk.
Tensor4 flash_attention_gpu(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                            std::size_t q_offset);

/// The same attention with q, k and v rounded to half precision (`__half`) and both
/// products, q k^T and p v, on the tensor cores (`nvcuda::wmma`, 16 x 16 x 16 tiles);
/// the softmax and the output stay float32. Tiles of 64 query rows (a warp per 16)
/// and 64 keys.
/// @return (B, H, Tq, D), in float32
/// @throws std::invalid_argument as flash_attention_gpu, and if D is not a multiple of 16.
/// @throws std::out_of_range as flash_attention_gpu.
Tensor4 flash_attention_gpu_fp16(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                                 std::size_t q_offset);

}  // namespace attn
