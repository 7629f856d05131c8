// Lesson 11, part 2: FlashAttention-2 on the CPU. A tiled forward that keeps each row's
// log-sum-exp, and the backward of Dao 2023, Algorithm 2, which recomputes P tile by tile from
// Q, K and L and never holds a (Tq, Tk) matrix. Fill in each body between TODO(11.k) and
// END TODO(11.k), in the order of the README.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "attention.hpp"
#include "backward.hpp"
#include "gqa.hpp"

namespace attn {

xt::xtensor<bool, 2> tile_visibility(std::size_t i0, std::size_t rows, std::size_t j0,
                                     std::size_t cols, Mask mask, std::size_t q_offset) {
  xt::xtensor<bool, 2> visible({rows, cols});
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c)
      visible(r, c) = mask == Mask::none || j0 + c <= q_offset + i0 + r;
  return visible;
}

OnlineSoftmax online_softmax_start(std::size_t rows, std::size_t dv) {
  return {std::vector<float>(rows, -std::numeric_limits<float>::infinity()),
          std::vector<float>(rows, 0.0f), xt::zeros<float>({rows, dv})};
}

void online_softmax_update(OnlineSoftmax& state, const Tensor2& scores,
                           const xt::xtensor<bool, 2>& allowed, const Tensor2& v) {
  constexpr auto where = "online_softmax_update";
  require_shape(where, "allowed (the shape of scores)", scores.shape(), allowed.shape());
  require_equal(where, "rows of v (columns of scores)", scores.shape(1), v.shape(0));
  require_shape(where, "the state's acc (rows of scores, columns of v)",
                std::array{scores.shape(0), v.shape(1)}, state.acc.shape());
  // TODO(11.8): per row: m' = max(m, the tile's allowed scores); rescale l and acc by e^{m - m'}; add the tile's e^{s - m'} and e^{s - m'} v
  throw NotImplemented("11.8", "6. A forward that keeps the log-sum-exp");
  // END TODO(11.8)
}

FlashForward flash_attention_forward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                     Mask mask, std::size_t q_offset, std::size_t tile) {
  constexpr auto where = "flash_attention_forward";
  check_gqa_arguments(q, k, v, mask, q_offset, where);
  require(tile > 0, where, "a tile needs at least 1 row, given tile = 0");
  // TODO(11.9): per batch, query head h (KV head h / (H/G)) and tile of query rows: the online softmax over the key tiles the mask does not hide; then O = acc / l and L = m + log l
  throw NotImplemented("11.9", "6. A forward that keeps the log-sum-exp");
  // END TODO(11.9)
}

Tensor3 flash_backward_row_terms(const Tensor4& dout, const Tensor4& out) {
  require_shape("flash_backward_row_terms", "out (the shape of dout)", dout.shape(), out.shape());
  // TODO(11.10): D(b, h, i) = sum_c dO(b, h, i, c) O(b, h, i, c)
  throw NotImplemented("11.10", "7. FlashAttention-2 backward");
  // END TODO(11.10)
}

void flash_backward_tile(const Tensor2& q_tile, const Tensor2& k_tile, const Tensor2& v_tile,
                         const Tensor2& dout_tile, const std::vector<float>& lse_tile,
                         const std::vector<float>& d_tile, const xt::xtensor<bool, 2>& visible,
                         Tensor2& dq_tile, Tensor2& dk_tile, Tensor2& dv_tile) {
  constexpr auto where = "flash_backward_tile";
  const std::size_t br = q_tile.shape(0), bc = k_tile.shape(0);
  require_shape(where, "visible (Br, Bc)", std::array{br, bc}, visible.shape());
  require_equal(where, "L of the tile (Br)", br, lse_tile.size());
  require_equal(where, "D of the tile (Br)", br, d_tile.size());
  require_shape(where, "dq_tile (the shape of q_tile)", q_tile.shape(), dq_tile.shape());
  require_shape(where, "dk_tile (the shape of k_tile)", k_tile.shape(), dk_tile.shape());
  require_shape(where, "dv_tile (the shape of v_tile)", v_tile.shape(), dv_tile.shape());
  // TODO(11.11): recompute P = exp(S - L) from the saved L (0 where hidden); dV += P^T dO; dP = dO V^T; dS = P o (dP - D); dQ += dS K / sqrt(D); dK += dS^T Q / sqrt(D)
  // 1. S = Q_i K_j^T / sqrt(D), P_ij = exp(S_ij - L_i): normalized already, by the forward's L
  // 2. dV_j += P^T dO_i
  // 3. dP = dO_i V_j^T, dS = P o (dP - D_i), times the scale
  // 4. dQ_i += dS K_j, dK_j += dS^T Q_i
  throw NotImplemented("11.11", "7. FlashAttention-2 backward");
  // END TODO(11.11)
}

AttentionGrads flash_attention_backward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                        const FlashForward& fwd, const Tensor4& dout, Mask mask,
                                        std::size_t q_offset, std::size_t tile) {
  constexpr auto where = "flash_attention_backward";
  check_gqa_arguments(q, k, v, mask, q_offset, where);
  require(tile > 0, where, "a tile needs at least 1 row, given tile = 0");
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2);
  const std::size_t dv = v.shape(3);
  require_shape(where, "dout (B, H, Tq, Dv)", std::array{nb, nh, tq, dv}, dout.shape());
  require_shape(where, "the forward's O (B, H, Tq, Dv)", std::array{nb, nh, tq, dv}, fwd.out.shape());
  require_shape(where, "the forward's L (B, H, Tq)", std::array{nb, nh, tq}, fwd.lse.shape());
  // TODO(11.12): D by flash_backward_row_terms; per batch, KV head g and key tile j: dK_j and dV_j summed over the query tiles of every head of g's group (flash_backward_tile); dQ accumulated in place
  throw NotImplemented("11.12", "7. FlashAttention-2 backward");
  // END TODO(11.12)
}

}  // namespace attn
