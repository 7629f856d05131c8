// Lesson 02: the causal mask with a query offset, a masked softmax and causal
// attention. Fill in each body between TODO(02.k) and END TODO(02.k), in the
// order of the README. Lesson 01's matmul and softmax_rows are yours to reuse.
#include "causal.hpp"

#include <cmath>
#include <limits>
#include <string>

#include <xtensor/xoperation.hpp>
#include <xtensor/xview.hpp>

#include "attention.hpp"

namespace attn {

xt::xtensor<bool, 2> causal_mask(std::size_t tq, std::size_t tk, std::size_t q_offset) {
  // TODO(02.1): check q_offset + Tq <= Tk (out_of_range), then m(i, j) = (j <= q_offset + i)
  // Written so that a huge q_offset cannot wrap the sum around.
  require_in_range(q_offset <= tk && tq <= tk - q_offset, "causal_mask",
                   "query positions past the last key: expected q_offset + Tq <= Tk = " +
                       std::to_string(tk) + ", given q_offset = " + std::to_string(q_offset) +
                       " and Tq = " + std::to_string(tq));
  xt::xtensor<bool, 2> mask({tq, tk});  // (Tq, Tk)
  for (std::size_t i = 0; i < tq; ++i)
    for (std::size_t j = 0; j < tk; ++j) mask(i, j) = j <= q_offset + i;
  return mask;
  // END TODO(02.1)
}

Tensor2 masked_softmax_rows(const Tensor2& x, const xt::xtensor<bool, 2>& mask) {
  // TODO(02.2): check shapes and that every row allows a key; softmax over the allowed entries, 0 elsewhere
  constexpr auto where = "masked_softmax_rows";
  require_shape(where, "mask (the shape of x)", x.shape(), mask.shape());
  for (std::size_t i = 0; i < x.shape(0); ++i) {
    bool any = false;
    for (std::size_t j = 0; j < x.shape(1) && !any; ++j) any = mask(i, j);
    require(any, where,
            "row " + std::to_string(i) + " has no allowed key: expected at least 1 of " +
                std::to_string(x.shape(1)) + " allowed, given 0");
  }
  // Every row keeps a finite logit, so its maximum m is finite and the masked
  // entries give exp(-inf - m) = exp(-inf) = 0 exactly: never -inf - (-inf).
  const float minus_inf = -std::numeric_limits<float>::infinity();
  const Tensor2 filled = xt::where(mask, x, minus_inf);  // (M, N)
  return softmax_rows(filled);
  // END TODO(02.2)
}

Tensor4 causal_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                         std::size_t q_offset) {
  // TODO(02.3): check shapes and the offset; per (b, h): masked softmax of q k^T / sqrt(D), times v
  constexpr auto where = "causal_attention";
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t tk = k.shape(2), dv = v.shape(3);
  require_equal(where, "batch of k (B of q)", nb, k.shape(0));
  require_equal(where, "heads of k (H of q)", nh, k.shape(1));
  require_equal(where, "head dimension of k (D of q)", d, k.shape(3));
  require_equal(where, "batch of v (B of q)", nb, v.shape(0));
  require_equal(where, "heads of v (H of q)", nh, v.shape(1));
  require_equal(where, "length of v (Tk of k)", tk, v.shape(2));
  require_in_range(q_offset <= tk && tq <= tk - q_offset, where,
                   "query positions past the last key: expected q_offset + Tq <= Tk = " +
                       std::to_string(tk) + ", given q_offset = " + std::to_string(q_offset) +
                       " and Tq = " + std::to_string(tq));
  const auto mask = causal_mask(tq, tk, q_offset);  // (Tq, Tk), the same for every (b, h)
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  Tensor4 out({nb, nh, tq, dv});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h) {
      const Tensor2 qh = xt::view(q, b, h);                 // (Tq, D)
      const Tensor2 kt = xt::transpose(xt::view(k, b, h));  // (D, Tk)
      const Tensor2 vh = xt::view(v, b, h);                 // (Tk, Dv)
      const Tensor2 scores = matmul(qh, kt) * scale;        // (Tq, Tk)
      xt::view(out, b, h) = matmul(masked_softmax_rows(scores, mask), vh);  // (Tq, Dv)
    }
  return out;
  // END TODO(02.3)
}

}  // namespace attn
