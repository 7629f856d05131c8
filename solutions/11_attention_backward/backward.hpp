/// @file backward.hpp
/// @brief Lesson 11: the backward pass of attention on the CPU. Gradients of the matrix
///        product and of the row softmax, of scaled dot-product attention with the causal
///        mask, of grouped-query attention (dK and dV summed over each group), of RoPE, and
///        FlashAttention-2's backward (Dao 2023, Algorithm 2), which recomputes the
///        probabilities tile by tile from the saved log-sum-exp and never holds a
///        (Tq, Tk) matrix.
///
/// Every function here takes the upstream gradient of a scalar loss with respect to an
/// output (dC, dP, dO, dY) and returns the gradients with respect to the inputs.
#pragma once

#include <cstddef>
#include <vector>

#include "attn/core.hpp"
#include "rope.hpp"  // RopePairing, kRopeTheta (lesson 06)

namespace attn {

/// The gradients of C = A B.
struct MatmulGrads {
  Tensor2 da;  ///< (M, K) = dC B^T
  Tensor2 db;  ///< (K, N) = A^T dC
};

/// Backward of the matrix product C = A B: dA = dC B^T, dB = A^T dC.
/// @param a  (M, K)
/// @param b  (K, N)
/// @param dc (M, N), the gradient of the loss with respect to C
/// @return   dA (M, K) and dB (K, N)
/// @throws std::invalid_argument if the inner dimensions differ or dc is not (M, N).
MatmulGrads matmul_backward(const Tensor2& a, const Tensor2& b, const Tensor2& dc);

/// Backward of the row softmax P = softmax_rows(S), from its output:
/// dS(i, j) = P(i, j) (dP(i, j) - sum_l dP(i, l) P(i, l)).
/// A masked entry (P = 0) gets dS = 0, so the same formula serves masked_softmax_rows.
/// @param p  (M, N), the softmax's output
/// @param dp (M, N), the gradient of the loss with respect to P
/// @return   (M, N), the gradient with respect to the logits S
/// @throws std::invalid_argument if the shapes differ.
Tensor2 softmax_rows_backward(const Tensor2& p, const Tensor2& dp);

/// The gradients of an attention with respect to its three inputs.
struct AttentionGrads {
  Tensor4 dq;  ///< the shape of q
  Tensor4 dk;  ///< the shape of k
  Tensor4 dv;  ///< the shape of v
};

/// The gradients of one head's attention (one batch, one head).
struct HeadGrads {
  Tensor2 dq;  ///< (Tq, D)
  Tensor2 dk;  ///< (Tk, D)
  Tensor2 dv;  ///< (Tk, Dv)
};

/// Backward of one head's attention O = softmax(q k^T / sqrt(D) + mask) v: recomputes
/// S = q k^T / sqrt(D) and P (lesson 01's softmax, lesson 02's masked softmax with the causal
/// mask at q_offset), then, by matmul_backward and softmax_rows_backward, dV = P^T dO,
/// dP = dO V^T, dS = P o (dP - rowsum(dP o P)), dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D).
/// Holds the (Tq, Tk) matrices S, P, dP and dS.
/// @param q        (Tq, D)
/// @param k        (Tk, D)
/// @param v        (Tk, Dv)
/// @param dout     (Tq, Dv), the gradient of the loss with respect to O
/// @param mask     Mask::none or Mask::causal
/// @param q_offset absolute position of query row 0 (used with Mask::causal)
/// @return         dq (Tq, D), dk (Tk, D), dv (Tk, Dv)
/// @throws std::invalid_argument if D, Tk or the shape of dout disagree.
/// @throws std::out_of_range if q_offset + Tq > Tk with Mask::causal (lesson 02's causal_mask).
HeadGrads attention_head_backward(const Tensor2& q, const Tensor2& k, const Tensor2& v,
                                  const Tensor2& dout, Mask mask, std::size_t q_offset);

/// Backward of multi-head attention O = softmax(q k^T / sqrt(D) + mask) v per batch and head
/// (lesson 01 without a mask, lesson 02 with the causal mask at q_offset): per batch and
/// head, attention_head_backward. Holds the (Tq, Tk) matrices of one head at a time.
/// @param q        (B, H, Tq, D)
/// @param k        (B, H, Tk, D)
/// @param v        (B, H, Tk, Dv)
/// @param dout     (B, H, Tq, Dv), the gradient of the loss with respect to O
/// @param mask     Mask::none or Mask::causal
/// @param q_offset absolute position of query row 0; must be 0 with Mask::none
/// @return         dq (B, H, Tq, D), dk (B, H, Tk, D), dv (B, H, Tk, Dv)
/// @throws std::invalid_argument as lesson 03's check_gqa_arguments, if k has fewer heads
///         than q, or if dout is not (B, H, Tq, Dv).
/// @throws std::out_of_range if q_offset + Tq > Tk with Mask::causal.
AttentionGrads attention_backward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                  const Tensor4& dout, Mask mask, std::size_t q_offset);

/// Backward of lesson 03's repeat_kv: head g of the result is the sum of heads
/// g*n_rep ... g*n_rep + n_rep - 1 of d_repeated, the n_rep copies of KV head g.
/// @param d_repeated (B, G*n_rep, T, D), the gradient with respect to repeat_kv's output
/// @param n_rep      H / G, at least 1
/// @return           (B, G, T, D)
/// @throws std::invalid_argument if n_rep is 0 or does not divide the heads of d_repeated.
Tensor4 repeat_kv_backward(const Tensor4& d_repeated, std::size_t n_rep);

/// Backward of lesson 03's gqa_attention, direct form: query head h reads KV head
/// g = h / (H/G), so dK and dV of KV head g are the sums over the H/G query heads of its
/// group of what each head's backward gives. K and V are never repeated.
/// @param q        (B, H, Tq, D)
/// @param k        (B, G, Tk, D), G dividing H
/// @param v        (B, G, Tk, Dv)
/// @param dout     (B, H, Tq, Dv)
/// @param mask     Mask::none or Mask::causal
/// @param q_offset absolute position of query row 0; must be 0 with Mask::none
/// @return         dq (B, H, Tq, D), dk (B, G, Tk, D), dv (B, G, Tk, Dv)
/// @throws std::invalid_argument and std::out_of_range as lesson 03's check_gqa_arguments,
///         and std::invalid_argument if dout is not (B, H, Tq, Dv).
AttentionGrads gqa_attention_backward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                      const Tensor4& dout, Mask mask, std::size_t q_offset);

/// Backward of lesson 06's apply_rope: each pair of dy is turned by the transposed
/// rotation, R(p omega_i)^T = R(-p omega_i), with p = first_position + t for row t:
///   dx_a =  dy_a cos(p omega_i) + dy_b sin(p omega_i),
///   dx_b = -dy_a sin(p omega_i) + dy_b cos(p omega_i).
/// @param dy             (B, H, T, D), D even: the gradient with respect to apply_rope's output
/// @param first_position absolute position of row 0
/// @param pairing        the pairing of the forward
/// @param theta          the base of the forward's frequencies
/// @return               (B, H, T, D), the gradient with respect to apply_rope's input
/// @throws std::invalid_argument if D is odd or 0, or theta is not finite and positive.
Tensor4 rope_backward(const Tensor4& dy, std::size_t first_position, RopePairing pairing,
                      double theta = kRopeTheta);

// ---------------------------------------------------------------------------------------
// FlashAttention-2: a tiled forward that saves each row's log-sum-exp, and the backward
// that recomputes the probabilities tile by tile from it (flash_backward.cpp).
// ---------------------------------------------------------------------------------------

/// Which entries of a tile of scores may be attended: visible(r, c) is true iff query row
/// i0 + r may attend key j0 + c, that is always with Mask::none and iff
/// j0 + c <= q_offset + i0 + r with Mask::causal (lesson 02's rule, on one tile).
/// @return (rows, cols)
xt::xtensor<bool, 2> tile_visibility(std::size_t i0, std::size_t rows, std::size_t j0,
                                     std::size_t cols, Mask mask, std::size_t q_offset);

/// The running state of the online softmax of a tile of query rows (lesson 09's, on the CPU).
struct OnlineSoftmax {
  std::vector<float> max;  ///< (rows) m_i, the largest score seen so far (-inf before any)
  std::vector<float> sum;  ///< (rows) l_i, sum of exp(s_ij - m_i) over the keys seen so far
  Tensor2 acc;             ///< (rows, Dv) sum of exp(s_ij - m_i) v_j over the keys seen so far
};

/// A fresh state for `rows` query rows and values of width `dv`: max = -inf, sum = 0, acc = 0.
OnlineSoftmax online_softmax_start(std::size_t rows, std::size_t dv);

/// One step of the online softmax: takes in a tile of scores and its values. For each row i:
/// m' = max(m_i, max_j s_ij) over the allowed entries, then l_i <- l_i e^{m_i - m'} +
/// sum_j e^{s_ij - m'} and acc_i <- acc_i e^{m_i - m'} + sum_j e^{s_ij - m'} v_j, m_i <- m'.
/// Entries with allowed(i, j) false count as e^{-inf} = 0; a row with no allowed entry yet
/// (max still -inf after the tile) is left as it is.
/// @param state   the state of these rows, updated in place
/// @param scores  (rows, Bc), q_i . k_j / sqrt(D)
/// @param allowed (rows, Bc), true = may attend
/// @param v       (Bc, Dv), the values of the tile's keys
/// @throws std::invalid_argument if the shapes disagree with each other or with the state.
void online_softmax_update(OnlineSoftmax& state, const Tensor2& scores,
                           const xt::xtensor<bool, 2>& allowed, const Tensor2& v);

/// What the flash forward keeps for the backward.
struct FlashForward {
  Tensor4 out;  ///< (B, H, Tq, Dv), the attention's output O
  Tensor3 lse;  ///< (B, H, Tq), L_i = m_i + log l_i, the log-sum-exp of row i's scores
};

/// Tiled attention (FlashAttention-2's forward) with the GQA head mapping of lesson 03: per
/// batch, query head h and tile of `tile` query rows, it runs the online softmax over tiles
/// of `tile` keys (skipping key tiles that the causal mask hides entirely), then writes
/// O_i = acc_i / l_i and L_i = m_i + log l_i. Holds no (Tq, Tk) matrix.
/// @param q        (B, H, Tq, D)
/// @param k        (B, G, Tk, D), G dividing H
/// @param v        (B, G, Tk, Dv)
/// @param mask     Mask::none or Mask::causal
/// @param q_offset absolute position of query row 0; must be 0 with Mask::none
/// @param tile     rows of a query tile and keys of a key tile, at least 1
/// @return         O (B, H, Tq, Dv) and L (B, H, Tq)
/// @throws std::invalid_argument and std::out_of_range as check_gqa_arguments, and
///         std::invalid_argument if tile is 0.
FlashForward flash_attention_forward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                     Mask mask, std::size_t q_offset, std::size_t tile);

/// D_i = sum_c dO(i, c) O(i, c) for every batch, head and query row: the row sum
/// sum_j P_ij dP_ij of the softmax backward, computed from O without any P.
/// @param dout (B, H, Tq, Dv)
/// @param out  (B, H, Tq, Dv), the forward's output O
/// @return     (B, H, Tq)
/// @throws std::invalid_argument if the shapes differ.
Tensor3 flash_backward_row_terms(const Tensor4& dout, const Tensor4& out);

/// One tile of FlashAttention-2's backward (Algorithm 2, lines 11 to 20), for query rows
/// i0 ... and keys j0 ...: recomputes P_ij = exp(q_i . k_j / sqrt(D) - L_i) (0 where the
/// causal mask hides the key), then dV_j += P^T dO_i, dP = dO_i V_j^T,
/// dS = P o (dP - D_i), dQ_i += dS K_j / sqrt(D), dK_j += dS^T Q_i / sqrt(D).
/// @param q_tile    (Br, D) query rows i0 ... i0 + Br - 1 of one head
/// @param k_tile    (Bc, D) keys j0 ... j0 + Bc - 1 of its KV head
/// @param v_tile    (Bc, Dv)
/// @param dout_tile (Br, Dv)
/// @param lse_tile  (Br) L_i of the rows
/// @param d_tile    (Br) D_i of the rows
/// @param visible   (Br, Bc) true = query row i may attend key j
/// @param dq_tile   (Br, D) accumulated in place
/// @param dk_tile   (Bc, D) accumulated in place
/// @param dv_tile   (Bc, Dv) accumulated in place
void flash_backward_tile(const Tensor2& q_tile, const Tensor2& k_tile, const Tensor2& v_tile,
                         const Tensor2& dout_tile, const std::vector<float>& lse_tile,
                         const std::vector<float>& d_tile, const xt::xtensor<bool, 2>& visible,
                         Tensor2& dq_tile, Tensor2& dk_tile, Tensor2& dv_tile);

/// FlashAttention-2's backward (Dao 2023, Algorithm 2) with the GQA head mapping: computes D
/// by flash_backward_row_terms, then per batch, KV head g and tile of `tile` keys, keeps
/// dK_j and dV_j of that tile while it visits every query tile of every query head of g's
/// group (skipping tiles the causal mask hides entirely), each by flash_backward_tile.
/// Holds no (Tq, Tk) matrix: beyond its results it allocates O(B H Tq) floats and tiles.
/// @param q        (B, H, Tq, D)
/// @param k        (B, G, Tk, D), G dividing H
/// @param v        (B, G, Tk, Dv)
/// @param fwd      flash_attention_forward's O (B, H, Tq, Dv) and L (B, H, Tq) for q, k, v
/// @param dout     (B, H, Tq, Dv)
/// @param mask     Mask::none or Mask::causal, as in the forward
/// @param q_offset as in the forward
/// @param tile     rows of a query tile and keys of a key tile, at least 1
/// @return         dq (B, H, Tq, D), dk (B, G, Tk, D), dv (B, G, Tk, Dv)
/// @throws std::invalid_argument and std::out_of_range as check_gqa_arguments, and
///         std::invalid_argument if tile is 0 or dout, O or L has the wrong shape.
AttentionGrads flash_attention_backward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                        const FlashForward& fwd, const Tensor4& dout, Mask mask,
                                        std::size_t q_offset, std::size_t tile);

}  // namespace attn
