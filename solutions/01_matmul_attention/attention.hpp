/// @file attention.hpp
/// @brief Lesson 01: matrix products, a stable softmax, scaled dot-product
///        attention and multi-head attention with projections.
#pragma once

#include <cstddef>

#include "attn/core.hpp"

namespace attn {

/// Matrix product C = A B.
/// @param a (M, K)
/// @param b (K, N)
/// @return  (M, N)
/// @throws std::invalid_argument if the inner dimensions differ.
Tensor2 matmul(const Tensor2& a, const Tensor2& b);

/// Softmax of each row: y_ij = exp(x_ij - m_i) / sum_l exp(x_il - m_i), m_i = max_l x_il.
/// Finite for any finite input, logits of +-1e4 included.
/// @param x (M, N), N >= 1
/// @return  (M, N), every row non-negative and summing to 1
Tensor2 softmax_rows(const Tensor2& x);

/// Scaled dot-product attention, softmax(q k^T / sqrt(D)) v, per batch and head, no mask.
/// @param q (B, H, Tq, D)
/// @param k (B, H, Tk, D)
/// @param v (B, H, Tk, Dv)
/// @return  (B, H, Tq, Dv)
/// @throws std::invalid_argument if B, H, D or Tk disagree.
Tensor4 scaled_dot_product_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v);

/// Splits the channels of x into heads: x(b, t, h*D + d) -> y(b, h, t, d).
/// @param x       (B, T, H*D)
/// @param n_heads H, which must divide the channel count
/// @return        (B, H, T, D)
Tensor4 split_heads(const Tensor3& x, std::size_t n_heads);

/// Inverse of split_heads: y(b, h, t, d) -> x(b, t, h*D + d).
/// @param y (B, H, T, D)
/// @return  (B, T, H*D)
Tensor3 merge_heads(const Tensor4& y);

/// The four projections of multi-head attention, applied as x W (W is (in, out)).
/// Head h of a projection owns output columns h*D ... h*D + D - 1.
struct MHAWeights {
  Tensor2 wq;  ///< (d_model, H*D)
  Tensor2 wk;  ///< (d_model, H*D)
  Tensor2 wv;  ///< (d_model, H*D)
  Tensor2 wo;  ///< (H*D, d_model)
};

/// Multi-head self-attention without a mask:
/// merge_heads(attention(split(x Wq), split(x Wk), split(x Wv))) Wo.
/// @param x       (B, T, d_model)
/// @param w       projections, see MHAWeights
/// @param n_heads H, which must divide the projection width
/// @return        (B, T, d_model)
Tensor3 multi_head_attention(const Tensor3& x, const MHAWeights& w, std::size_t n_heads);

}  // namespace attn
