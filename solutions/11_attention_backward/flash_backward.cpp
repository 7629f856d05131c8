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
  const std::size_t rows = scores.shape(0), cols = scores.shape(1), dv = v.shape(1);
  std::vector<float> p(cols);  // (Bc) one row's e^{s - m'}
  for (std::size_t i = 0; i < rows; ++i) {
    float m_new = state.max[i];
    for (std::size_t j = 0; j < cols; ++j)
      if (allowed(i, j)) m_new = std::max(m_new, scores(i, j));
    if (m_new == -std::numeric_limits<float>::infinity()) continue;  // nothing allowed yet
    const float alpha = std::exp(state.max[i] - m_new);  // e^{-inf} = 0 on the row's first keys
    float tile_sum = 0.0f;
    for (std::size_t j = 0; j < cols; ++j) {
      p[j] = allowed(i, j) ? std::exp(scores(i, j) - m_new) : 0.0f;
      tile_sum += p[j];
    }
    state.sum[i] = state.sum[i] * alpha + tile_sum;
    for (std::size_t c = 0; c < dv; ++c) {
      float a = 0.0f;
      for (std::size_t j = 0; j < cols; ++j) a += p[j] * v(j, c);
      state.acc(i, c) = state.acc(i, c) * alpha + a;
    }
    state.max[i] = m_new;
  }
  // END TODO(11.8)
}

FlashForward flash_attention_forward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                     Mask mask, std::size_t q_offset, std::size_t tile) {
  constexpr auto where = "flash_attention_forward";
  check_gqa_arguments(q, k, v, mask, q_offset, where);
  require(tile > 0, where, "a tile needs at least 1 row, given tile = 0");
  // TODO(11.9): per batch, query head h (KV head h / (H/G)) and tile of query rows: the online softmax over the key tiles the mask does not hide; then O = acc / l and L = m + log l
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t tk = k.shape(2), dv = v.shape(3), group = nh / k.shape(1);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  FlashForward f{Tensor4({nb, nh, tq, dv}), Tensor3({nb, nh, tq})};
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t i0 = 0; i0 < tq; i0 += tile) {
        const std::size_t i1 = std::min(i0 + tile, tq);
        const Tensor2 qi = xt::view(q, b, h, xt::range(i0, i1));  // (Br, D)
        OnlineSoftmax state = online_softmax_start(i1 - i0, dv);
        // Keys past the tile's last row are hidden from every row of it.
        const std::size_t keys = mask == Mask::causal ? q_offset + i1 : tk;
        for (std::size_t j0 = 0; j0 < keys; j0 += tile) {
          const std::size_t j1 = std::min(j0 + tile, keys);
          const Tensor2 kt = xt::transpose(xt::view(k, b, h / group, xt::range(j0, j1)));  // (D, Bc)
          online_softmax_update(state, matmul(qi, kt) * scale,
                                tile_visibility(i0, i1 - i0, j0, j1 - j0, mask, q_offset),
                                xt::view(v, b, h / group, xt::range(j0, j1)));
        }
        for (std::size_t r = 0; r < i1 - i0; ++r) {
          for (std::size_t c = 0; c < dv; ++c) f.out(b, h, i0 + r, c) = state.acc(r, c) / state.sum[r];
          f.lse(b, h, i0 + r) = state.max[r] + std::log(state.sum[r]);
        }
      }
  return f;
  // END TODO(11.9)
}

Tensor3 flash_backward_row_terms(const Tensor4& dout, const Tensor4& out) {
  require_shape("flash_backward_row_terms", "out (the shape of dout)", dout.shape(), out.shape());
  // TODO(11.10): D(b, h, i) = sum_c dO(b, h, i, c) O(b, h, i, c)
  const std::size_t nb = dout.shape(0), nh = dout.shape(1), tq = dout.shape(2), dv = dout.shape(3);
  Tensor3 row_terms({nb, nh, tq});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t i = 0; i < tq; ++i) {
        float s = 0.0f;
        for (std::size_t c = 0; c < dv; ++c) s += dout(b, h, i, c) * out(b, h, i, c);
        row_terms(b, h, i) = s;
      }
  return row_terms;
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
  const float scale = 1.0f / std::sqrt(static_cast<float>(q_tile.shape(1)));
  const Tensor2 scores = matmul(q_tile, xt::transpose(k_tile)) * scale;  // (Br, Bc)
  Tensor2 p(scores.shape());
  for (std::size_t r = 0; r < br; ++r)
    for (std::size_t c = 0; c < bc; ++c)
      p(r, c) = visible(r, c) ? std::exp(scores(r, c) - lse_tile[r]) : 0.0f;
  // 2. dV_j += P^T dO_i
  dv_tile += matmul(xt::transpose(p), dout_tile);
  // 3. dP = dO_i V_j^T, dS = P o (dP - D_i), times the scale
  const Tensor2 dp = matmul(dout_tile, xt::transpose(v_tile));  // (Br, Bc)
  Tensor2 ds(p.shape());
  for (std::size_t r = 0; r < br; ++r)
    for (std::size_t c = 0; c < bc; ++c) ds(r, c) = p(r, c) * (dp(r, c) - d_tile[r]) * scale;
  // 4. dQ_i += dS K_j, dK_j += dS^T Q_i
  dq_tile += matmul(ds, k_tile);
  dk_tile += matmul(xt::transpose(ds), q_tile);
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
  const Tensor3 row_terms = flash_backward_row_terms(dout, fwd.out);  // (B, H, Tq)
  AttentionGrads grads{xt::zeros<float>(q.shape()), Tensor4(k.shape()), Tensor4(v.shape())};
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < k.shape(1); ++g)
      for (std::size_t j0 = 0; j0 < k.shape(2); j0 += tile) {
        const std::size_t j1 = std::min(j0 + tile, k.shape(2));
        const Tensor2 kj = xt::view(k, b, g, xt::range(j0, j1)), vj = xt::view(v, b, g, xt::range(j0, j1));
        Tensor2 dkj = xt::zeros<float>(kj.shape()), dvj = xt::zeros<float>(vj.shape());
        for (std::size_t h = g * (nh / k.shape(1)); h < (g + 1) * (nh / k.shape(1)); ++h)
          for (std::size_t i0 = 0; i0 < tq; i0 += tile) {
            const std::size_t i1 = std::min(i0 + tile, tq);
            if (mask == Mask::causal && q_offset + i1 - 1 < j0) continue;  // all of it hidden
            Tensor2 dqi = xt::view(grads.dq, b, h, xt::range(i0, i1));  // (Br, D)
            flash_backward_tile(xt::view(q, b, h, xt::range(i0, i1)), kj, vj,
                                xt::view(dout, b, h, xt::range(i0, i1)),
                                {&fwd.lse(b, h, i0), &fwd.lse(b, h, i0) + (i1 - i0)},
                                {&row_terms(b, h, i0), &row_terms(b, h, i0) + (i1 - i0)},
                                tile_visibility(i0, i1 - i0, j0, j1 - j0, mask, q_offset), dqi, dkj,
                                dvj);
            xt::view(grads.dq, b, h, xt::range(i0, i1)) = dqi;
          }
        xt::view(grads.dk, b, g, xt::range(j0, j1)) = dkj;
        xt::view(grads.dv, b, g, xt::range(j0, j1)) = dvj;
      }
  return grads;
  // END TODO(11.12)
}

}  // namespace attn
