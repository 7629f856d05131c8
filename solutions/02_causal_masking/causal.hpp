/// @file causal.hpp
/// @brief Lesson 02: the causal mask with a query offset, a masked softmax and
///        causal attention.
///
/// Query row i sits at absolute position `q_offset + i`, key j at position j, and
/// the query may attend to the key iff `j <= q_offset + i` (the bottom-right
/// alignment of FlashAttention, made explicit by the offset).
#pragma once

#include <cstddef>

#include <xtensor/xtensor.hpp>

#include "attn/core.hpp"

namespace attn {

/// The causal mask: m(i, j) is true iff query row i may attend to key j, that is
/// iff `j <= q_offset + i`.
/// @param tq       Tq, the number of query rows
/// @param tk       Tk, the number of keys
/// @param q_offset absolute position of query row 0; Tk - Tq places the queries at
///                 the end of the keys (prefill of the last Tq tokens, or decode with Tq = 1)
/// @return         (Tq, Tk)
/// @throws std::out_of_range if q_offset + Tq > Tk (a query would sit past the last key).
xt::xtensor<bool, 2> causal_mask(std::size_t tq, std::size_t tk, std::size_t q_offset);

/// Softmax of each row over the allowed entries only: y(i, j) = 0 where mask(i, j)
/// is false, otherwise exp(x(i, j) - m_i) / sum over allowed l of exp(x(i, l) - m_i),
/// with m_i the largest allowed logit of row i. Masked logits never matter, even
/// when they are infinite or NaN.
/// @param x    (M, N) logits
/// @param mask (M, N), true = allowed
/// @return     (M, N), each row non-negative, summing to 1, exactly 0 where masked
/// @throws std::invalid_argument if the shapes differ, or if a row has no allowed
///         entry (its softmax is undefined; the message names the row).
Tensor2 masked_softmax_rows(const Tensor2& x, const xt::xtensor<bool, 2>& mask);

/// Causal scaled dot-product attention per batch and head:
/// softmax(q k^T / sqrt(D) restricted to causal_mask(Tq, Tk, q_offset)) v.
/// @param q        (B, H, Tq, D)
/// @param k        (B, H, Tk, D)
/// @param v        (B, H, Tk, Dv)
/// @param q_offset absolute position of query row 0 (no default: the caller says
///                 where the queries sit; Tk - Tq for the last Tq tokens)
/// @return         (B, H, Tq, Dv)
/// @throws std::invalid_argument if B, H, D or Tk disagree.
/// @throws std::out_of_range if q_offset + Tq > Tk.
Tensor4 causal_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                         std::size_t q_offset);

}  // namespace attn
