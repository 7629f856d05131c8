// Lesson 01: matrix products, a stable softmax, scaled dot-product attention and
// multi-head attention. Fill in each body between TODO(01.k) and END TODO(01.k),
// in the order of the README.
#include "attention.hpp"

#include <cmath>

#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

namespace attn {

Tensor2 matmul(const Tensor2& a, const Tensor2& b) {
  // TODO(01.1): check the inner dimensions, then C(i,j) = sum_k A(i,k) B(k,j)
  throw NotImplemented("01.1", "2. The matrix product");
  // END TODO(01.1)
}

Tensor2 softmax_rows(const Tensor2& x) {
  // TODO(01.2): subtract each row's maximum, exponentiate, divide by the row sum
  throw NotImplemented("01.2", "3. A softmax that never overflows");
  // END TODO(01.2)
}

Tensor4 scaled_dot_product_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v) {
  // TODO(01.3): check shapes; per (b, h): softmax(q k^T / sqrt(D)) v
  throw NotImplemented("01.3", "4. Scaled dot-product attention");
  // END TODO(01.3)
}

Tensor4 split_heads(const Tensor3& x, std::size_t n_heads) {
  // TODO(01.4): check that H divides the channels; y(b, h, t, d) = x(b, t, h*D + d)
  throw NotImplemented("01.4", "5. Many heads: split and merge");
  // END TODO(01.4)
}

Tensor3 merge_heads(const Tensor4& y) {
  // TODO(01.5): x(b, t, h*D + d) = y(b, h, t, d)
  throw NotImplemented("01.5", "5. Many heads: split and merge");
  // END TODO(01.5)
}

Tensor3 multi_head_attention(const Tensor3& x, const MHAWeights& w, std::size_t n_heads) {
  // TODO(01.6): project, split into heads, attend, merge, project back
  throw NotImplemented("01.6", "6. Multi-head attention with projections");
  // END TODO(01.6)
}

}  // namespace attn
