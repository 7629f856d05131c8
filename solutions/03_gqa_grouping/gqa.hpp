/// @file gqa.hpp
/// @brief Lesson 03: grouped-query attention (GQA). H query heads share G key/value
///        heads, G dividing H; query head h reads key/value head h / (H/G).
///        Multi-head attention (G = H) and multi-query attention (G = 1) are its extremes.
#pragma once

#include <cstddef>
#include <string_view>

#include "attention.hpp"
#include "attn/core.hpp"

namespace attn {

/// Repeats each key/value head n_rep times, in repeat_interleave order: head h of the
/// result is head h / n_rep of the input (kv heads 0,0,1,1,... for n_rep = 2; never the
/// tile order 0,1,0,1,...). For teaching and testing: gqa_attention never calls it.
/// @param kv    (B, G, T, D)
/// @param n_rep how many query heads share one key/value head, H / G, at least 1
/// @return      (B, G*n_rep, T, D)
/// @throws std::invalid_argument if n_rep is 0.
Tensor4 repeat_kv(const Tensor4& kv, std::size_t n_rep);

/// The argument checks of GQA attention, written once: the GPU attentions of lessons 08-10
/// call them too (lesson 04 checks the views of its cache by the same rules, in given code).
/// q (B, H, Tq, D), k (B, G, Tk, D), v (B, G, Tk, Dv). Throws std::invalid_argument for
/// mismatched B, D, G or Tk, H not a multiple of G, Tk = 0, or q_offset != 0 with Mask::none;
/// std::out_of_range for q_offset + Tq > Tk. `where` names the caller in every message.
void check_gqa_arguments(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                         std::size_t q_offset, std::string_view where);

/// Grouped-query attention: for every batch b and query head h,
/// softmax(q_bh k_bg^T / sqrt(D) + mask) v_bg with g = h / (H/G), reading the G key/value
/// heads in place (no repeated copy of K or V is ever made).
/// With Mask::causal, query row i sits at position q_offset + i and sees keys j <= q_offset + i.
/// @param q        (B, H, Tq, D)
/// @param k        (B, G, Tk, D), G dividing H
/// @param v        (B, G, Tk, Dv)
/// @param mask     Mask::none (every key) or Mask::causal
/// @param q_offset absolute position of query row 0; must be 0 with Mask::none
/// @return         (B, H, Tq, Dv)
/// @throws std::invalid_argument if B, D, G or Tk disagree between q, k and v, if G does not
///         divide H, if Tk is 0, or if q_offset is not 0 with Mask::none.
/// @throws std::out_of_range if q_offset + Tq > Tk with Mask::causal.
Tensor4 gqa_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                      std::size_t q_offset);

/// The four projections of a GQA layer, applied as x W (W is (in, out)). Head h of a
/// projection owns output columns h*D ... h*D + D - 1.
struct GQAWeights {
  Tensor2 wq;                  ///< (d_model, H*D)
  Tensor2 wk;                  ///< (d_model, G*D)
  Tensor2 wv;                  ///< (d_model, G*D)
  Tensor2 wo;                  ///< (H*D, d_model)
  std::size_t n_heads = 0;     ///< H, query heads
  std::size_t n_kv_heads = 0;  ///< G, key/value heads, dividing H
};

/// GQA self-attention of a batch of sequences:
/// merge_heads(gqa_attention(split(x Wq, H), split(x Wk, G), split(x Wv, G))) Wo.
/// Positions start at 0 (q_offset = 0).
/// @param x    (B, T, d_model)
/// @param w    projections and head counts, see GQAWeights
/// @param mask Mask::none or Mask::causal
/// @return     (B, T, d_model)
/// @throws std::invalid_argument if the head counts or the weight shapes are inconsistent.
Tensor3 gqa_self_attention(const Tensor3& x, const GQAWeights& w, Mask mask);

/// Number of parameters of the four projections (no biases):
/// 2 d_model H D + 2 d_model G D.
/// @param w projections, see GQAWeights
/// @return  the element count of wq, wk, wv and wo together
std::size_t parameter_count(const GQAWeights& w);

/// Mean-pools the H head blocks of a projection into G: column block g of the result
/// (columns g*D ... g*D + D - 1) is the mean of the blocks of heads g*(H/G) ...
/// g*(H/G) + H/G - 1 of w. mha_to_gqa checks the arguments and calls it for wk and wv.
/// @param w          (d_model, H*D), head h owning columns h*D ... h*D + D - 1
/// @param n_heads    H, dividing the width of w
/// @param n_kv_heads G, dividing H
/// @return           (d_model, G*D)
Tensor2 pool_kv_heads(const Tensor2& w, std::size_t n_heads, std::size_t n_kv_heads);

/// Converts a multi-head checkpoint to GQA (Ainslie et al. 2023): the key projection of KV
/// head g is the mean of the key projections of query heads g*(H/G) ... g*(H/G) + H/G - 1
/// (consecutive heads, the group that will share it), and likewise for values.
/// wq and wo are kept as they are.
/// @param mha        projections of an H-head layer, see MHAWeights
/// @param n_heads    H, which must divide the projection width
/// @param n_kv_heads G, which must divide H
/// @return           the GQA layer: wk and wv (d_model, G*D), n_heads = H, n_kv_heads = G
/// @throws std::invalid_argument if G does not divide H, H does not divide the width, or
///         the shapes of the MHA projections are inconsistent.
GQAWeights mha_to_gqa(const MHAWeights& mha, std::size_t n_heads, std::size_t n_kv_heads);

}  // namespace attn
