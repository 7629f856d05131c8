/// @file cuda_basics.hpp
/// @brief Lesson 08: matrix product, row softmax and GQA attention computed by CUDA
///        kernels (kernels.cu), on a GPU or on the CPU emulator.
///
/// These functions are the host side: they check the shapes, copy the operands to
/// device memory, launch the kernels and copy the result back. The kernels see raw
/// pointers only; the tensors stay here.
#pragma once

#include <cstddef>

#include "attn/core.hpp"

namespace attn {

/// Which matrix-product kernel to run.
enum class MatmulKernel {
  naive,  ///< one thread per output element, operands read from global memory
  tiled   ///< 16 x 16 tiles staged in shared memory
};

/// a (M, K) times b (K, N) -> (M, N), by the chosen kernel.
/// Throws std::invalid_argument if the inner dimensions differ.
Tensor2 matmul_gpu(const Tensor2& a, const Tensor2& b, MatmulKernel kernel);

/// The softmax of each row of x (rows, cols); each row of the result sums to 1.
/// Throws std::invalid_argument if x has no columns.
Tensor2 softmax_rows_gpu(const Tensor2& x);

/// Attention of q (B, H, Tq, D) over k, v (B, G, Tk, D) in three kernels (scores,
/// softmax, weighted sum); query head h reads key/value head h / (H / G). Same
/// contract as lesson 03's gqa_attention: `Mask::causal` places query row i at
/// position q_offset + i; `Mask::none` needs q_offset == 0.
/// Throws std::invalid_argument on mismatched shapes or H not divisible by G,
/// std::out_of_range if q_offset + Tq > Tk.
Tensor4 gqa_attention_gpu(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                          std::size_t q_offset);

}  // namespace attn
