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
  throw NotImplemented("02.1", "2. The causal mask with a query offset");
  // END TODO(02.1)
}

Tensor2 masked_softmax_rows(const Tensor2& x, const xt::xtensor<bool, 2>& mask) {
  // TODO(02.2): check shapes and that every row allows a key; softmax over the allowed entries, 0 elsewhere
  throw NotImplemented("02.2", "5. Masked softmax without NaN");
  // END TODO(02.2)
}

Tensor4 causal_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                         std::size_t q_offset) {
  // TODO(02.3): check shapes and the offset; per (b, h): masked softmax of q k^T / sqrt(D), times v
  throw NotImplemented("02.3", "6. Causal attention");
  // END TODO(02.3)
}

}  // namespace attn
