// Lesson 11, part 1: the backward of the matrix product, of the row softmax, of attention
// (causal, with a query offset), of GQA's group sums and of RoPE. Fill in each body between
// TODO(11.k) and END TODO(11.k), in the order of the README. Lessons 01 to 03 and 06 are
// yours to reuse: matmul, softmax_rows, causal_mask, masked_softmax_rows,
// check_gqa_arguments, rope_frequencies.
#include "backward.hpp"

#include <array>
#include <cmath>
#include <string>
#include <utility>

#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "attention.hpp"
#include "causal.hpp"
#include "gqa.hpp"

namespace attn {

MatmulGrads matmul_backward(const Tensor2& a, const Tensor2& b, const Tensor2& dc) {
  constexpr auto where = "matmul_backward";
  require_equal(where, "rows of b (the inner dimension, columns of a)", a.shape(1), b.shape(0));
  require_shape(where, "dc (rows of a, columns of b)", std::array{a.shape(0), b.shape(1)},
                dc.shape());
  // TODO(11.1): dA = dC B^T and dB = A^T dC, by lesson 01's matmul
  return {matmul(dc, xt::transpose(b)), matmul(xt::transpose(a), dc)};
  // END TODO(11.1)
}

Tensor2 softmax_rows_backward(const Tensor2& p, const Tensor2& dp) {
  require_shape("softmax_rows_backward", "dp (the shape of p)", p.shape(), dp.shape());
  // TODO(11.2): per row i, delta_i = sum_l dP(i, l) P(i, l); then dS(i, j) = P(i, j) (dP(i, j) - delta_i)
  Tensor2 ds(p.shape());  // (M, N)
  for (std::size_t i = 0; i < p.shape(0); ++i) {
    float delta = 0.0f;  // the row's share of every logit: the softmax's outputs sum to 1
    for (std::size_t l = 0; l < p.shape(1); ++l) delta += dp(i, l) * p(i, l);
    for (std::size_t j = 0; j < p.shape(1); ++j) ds(i, j) = p(i, j) * (dp(i, j) - delta);
  }
  return ds;
  // END TODO(11.2)
}

HeadGrads attention_head_backward(const Tensor2& q, const Tensor2& k, const Tensor2& v,
                                  const Tensor2& dout, Mask mask, std::size_t q_offset) {
  constexpr auto where = "attention_head_backward";
  require_equal(where, "head dimension of k (D of q)", q.shape(1), k.shape(1));
  require_equal(where, "length of v (Tk of k)", k.shape(0), v.shape(0));
  require_shape(where, "dout (Tq, Dv)", std::array{q.shape(0), v.shape(1)}, dout.shape());
  // TODO(11.3): recompute P; O = P V gives dP and dV; dS by the softmax backward; S = Q K^T / sqrt(D) gives dQ and dK
  // 1. S = Q K^T / sqrt(D) and P, its softmax (masked with Mask::causal)
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.shape(1)));
  const Tensor2 kt = xt::transpose(k);         // (D, Tk)
  const Tensor2 scores = matmul(q, kt) * scale;  // (Tq, Tk)
  const Tensor2 p = mask == Mask::causal
                        ? masked_softmax_rows(scores, causal_mask(q.shape(0), k.shape(0), q_offset))
                        : softmax_rows(scores);
  // 2. O = P V: dP = dO V^T, dV = P^T dO
  const MatmulGrads through_v = matmul_backward(p, v, dout);
  // 3. dS from the softmax backward, times the scale of the scores
  const Tensor2 ds = softmax_rows_backward(p, through_v.da) * scale;
  // 4. S = Q K^T: dQ = dS K and d(K^T) = Q^T dS
  const MatmulGrads through_k = matmul_backward(q, kt, ds);
  return {through_k.da, xt::transpose(through_k.db), through_v.db};
  // END TODO(11.3)
}

AttentionGrads attention_backward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                  const Tensor4& dout, Mask mask, std::size_t q_offset) {
  constexpr auto where = "attention_backward";
  check_gqa_arguments(q, k, v, mask, q_offset, where);
  require_equal(where, "KV heads of k (H of q: multi-head attention)", q.shape(1), k.shape(1));
  require_shape(where, "dout (B, H, Tq, Dv)",
                std::array{q.shape(0), q.shape(1), q.shape(2), v.shape(3)}, dout.shape());
  // TODO(11.4): per batch and head, attention_head_backward of that head's q, k, v and dO
  AttentionGrads grads{Tensor4(q.shape()), Tensor4(k.shape()), Tensor4(v.shape())};
  for (std::size_t b = 0; b < q.shape(0); ++b)
    for (std::size_t h = 0; h < q.shape(1); ++h) {
      const HeadGrads g = attention_head_backward(xt::view(q, b, h), xt::view(k, b, h),
                                                  xt::view(v, b, h), xt::view(dout, b, h), mask,
                                                  q_offset);
      xt::view(grads.dq, b, h) = g.dq;
      xt::view(grads.dk, b, h) = g.dk;
      xt::view(grads.dv, b, h) = g.dv;
    }
  return grads;
  // END TODO(11.4)
}

Tensor4 repeat_kv_backward(const Tensor4& d_repeated, std::size_t n_rep) {
  const std::size_t nh = d_repeated.shape(1);
  require(n_rep > 0 && nh % n_rep == 0, "repeat_kv_backward",
          "n_rep must be at least 1 and divide the heads: given " + std::to_string(nh) +
              " heads and n_rep = " + std::to_string(n_rep));
  // TODO(11.5): head g of the result = the sum of heads g*n_rep ... g*n_rep + n_rep - 1
  const std::size_t nb = d_repeated.shape(0), t = d_repeated.shape(2), d = d_repeated.shape(3);
  Tensor4 out = xt::zeros<float>({nb, nh / n_rep, t, d});  // (B, G, T, D)
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h) xt::view(out, b, h / n_rep) += xt::view(d_repeated, b, h);
  return out;
  // END TODO(11.5)
}

AttentionGrads gqa_attention_backward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                      const Tensor4& dout, Mask mask, std::size_t q_offset) {
  constexpr auto where = "gqa_attention_backward";
  check_gqa_arguments(q, k, v, mask, q_offset, where);
  require_shape(where, "dout (B, H, Tq, Dv)",
                std::array{q.shape(0), q.shape(1), q.shape(2), v.shape(3)}, dout.shape());
  // TODO(11.6): per batch and KV head g: attention_head_backward for each query head of g's group; dK and dV of g are the sums over the group
  const std::size_t nb = q.shape(0), nh = q.shape(1), ng = k.shape(1), group = nh / ng;
  AttentionGrads grads{Tensor4(q.shape()), xt::zeros<float>(k.shape()),
                       xt::zeros<float>(v.shape())};
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g) {
      const Tensor2 kg = xt::view(k, b, g), vg = xt::view(v, b, g);  // read in place, never repeated
      for (std::size_t r = 0; r < group; ++r) {
        const std::size_t h = g * group + r;  // so g == h / group, as in lesson 03
        const HeadGrads hg =
            attention_head_backward(xt::view(q, b, h), kg, vg, xt::view(dout, b, h), mask, q_offset);
        xt::view(grads.dq, b, h) = hg.dq;
        xt::view(grads.dk, b, g) += hg.dk;
        xt::view(grads.dv, b, g) += hg.dv;
      }
    }
  return grads;
  // END TODO(11.6)
}

Tensor4 rope_backward(const Tensor4& dy, std::size_t first_position, RopePairing pairing,
                      double theta) {
  // TODO(11.7): for each row t at position p = first_position + t, turn pair i back by -p * omega_i (the transposed rotation)
  const std::size_t nb = dy.shape(0), nh = dy.shape(1), nt = dy.shape(2), d = dy.shape(3);
  const std::vector<double> omega = rope_frequencies(d, theta);  // checks D and theta
  const std::size_t half = d / 2;
  Tensor4 dx(dy.shape());
  std::vector<float> cos_t(half), sin_t(half);  // (D/2) for the current position
  for (std::size_t t = 0; t < nt; ++t) {
    const double p = static_cast<double>(first_position + t);
    for (std::size_t i = 0; i < half; ++i) {
      cos_t[i] = static_cast<float>(std::cos(p * omega[i]));
      sin_t[i] = static_cast<float>(std::sin(p * omega[i]));
    }
    for (std::size_t b = 0; b < nb; ++b)
      for (std::size_t h = 0; h < nh; ++h)
        for (std::size_t i = 0; i < half; ++i) {
          const auto [ia, ib] = pairing == RopePairing::adjacent ? std::pair{2 * i, 2 * i + 1}
                                                                 : std::pair{i, i + half};
          const float ya = dy(b, h, t, ia), yb = dy(b, h, t, ib);
          dx(b, h, t, ia) = ya * cos_t[i] + yb * sin_t[i];   // row a of R^T
          dx(b, h, t, ib) = -ya * sin_t[i] + yb * cos_t[i];  // row b of R^T
        }
  }
  return dx;
  // END TODO(11.7)
}

}  // namespace attn
