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
  throw NotImplemented("11.1", "2. The matrix product and the softmax");
  // END TODO(11.1)
}

Tensor2 softmax_rows_backward(const Tensor2& p, const Tensor2& dp) {
  require_shape("softmax_rows_backward", "dp (the shape of p)", p.shape(), dp.shape());
  // TODO(11.2): per row i, delta_i = sum_l dP(i, l) P(i, l); then dS(i, j) = P(i, j) (dP(i, j) - delta_i)
  throw NotImplemented("11.2", "2. The matrix product and the softmax");
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
  // 2. O = P V: dP = dO V^T, dV = P^T dO
  // 3. dS from the softmax backward, times the scale of the scores
  // 4. S = Q K^T: dQ = dS K and d(K^T) = Q^T dS
  throw NotImplemented("11.3", "3. Attention, causal, with an offset");
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
  throw NotImplemented("11.4", "3. Attention, causal, with an offset");
  // END TODO(11.4)
}

Tensor4 repeat_kv_backward(const Tensor4& d_repeated, std::size_t n_rep) {
  const std::size_t nh = d_repeated.shape(1);
  require(n_rep > 0 && nh % n_rep == 0, "repeat_kv_backward",
          "n_rep must be at least 1 and divide the heads: given " + std::to_string(nh) +
              " heads and n_rep = " + std::to_string(n_rep));
  // TODO(11.5): head g of the result = the sum of heads g*n_rep ... g*n_rep + n_rep - 1
  throw NotImplemented("11.5", "4. GQA: a shared KV head sums its group");
  // END TODO(11.5)
}

AttentionGrads gqa_attention_backward(const Tensor4& q, const Tensor4& k, const Tensor4& v,
                                      const Tensor4& dout, Mask mask, std::size_t q_offset) {
  constexpr auto where = "gqa_attention_backward";
  check_gqa_arguments(q, k, v, mask, q_offset, where);
  require_shape(where, "dout (B, H, Tq, Dv)",
                std::array{q.shape(0), q.shape(1), q.shape(2), v.shape(3)}, dout.shape());
  // TODO(11.6): per batch and KV head g: attention_head_backward for each query head of g's group; dK and dV of g are the sums over the group
  throw NotImplemented("11.6", "4. GQA: a shared KV head sums its group");
  // END TODO(11.6)
}

Tensor4 rope_backward(const Tensor4& dy, std::size_t first_position, RopePairing pairing,
                      double theta) {
  // TODO(11.7): for each row t at position p = first_position + t, turn pair i back by -p * omega_i (the transposed rotation)
  throw NotImplemented("11.7", "5. RoPE: the transposed rotation");
  // END TODO(11.7)
}

}  // namespace attn
