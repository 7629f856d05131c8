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
  require_equal("matmul", "rows of b (the inner dimension, columns of a)", a.shape(1),
                b.shape(0));
  const std::size_t m = a.shape(0), n = b.shape(1), inner = a.shape(1);
  Tensor2 c = xt::zeros<float>({m, n});
  // i-k-j order: the inner loop walks a row of b and a row of c, both contiguous. Raw
  // pointers into the row-major buffers let the compiler vectorize that loop (through
  // operator() it does not, and lesson 07's real model spends most of its time here).
  const float* pa = a.data();
  const float* pb = b.data();
  float* pc = c.data();
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t k = 0; k < inner; ++k) {
      const float aik = pa[i * inner + k];
      const float* b_row = pb + k * n;
      float* c_row = pc + i * n;
      for (std::size_t j = 0; j < n; ++j) c_row[j] += aik * b_row[j];
    }
  return c;
  // END TODO(01.1)
}

Tensor2 softmax_rows(const Tensor2& x) {
  // TODO(01.2): subtract each row's maximum, exponentiate, divide by the row sum
  require(x.shape(1) > 0, "softmax_rows", "each row needs at least one logit, given 0 columns");
  // Evaluate each reduction before broadcasting it (README: the keep_dims pitfall).
  const Tensor2 row_max = xt::amax(x, {1}, xt::keep_dims);
  const Tensor2 e = xt::exp(x - row_max);
  const Tensor2 row_sum = xt::sum(e, {1}, xt::keep_dims);
  return e / row_sum;
  // END TODO(01.2)
}

Tensor4 scaled_dot_product_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v) {
  // TODO(01.3): check shapes; per (b, h): softmax(q k^T / sqrt(D)) v
  constexpr auto where = "scaled_dot_product_attention";
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t tk = k.shape(2), dv = v.shape(3);
  require_equal(where, "batch of k (B of q)", nb, k.shape(0));
  require_equal(where, "heads of k (H of q)", nh, k.shape(1));
  require_equal(where, "head dimension of k (D of q)", d, k.shape(3));
  require_equal(where, "batch of v (B of q)", nb, v.shape(0));
  require_equal(where, "heads of v (H of q)", nh, v.shape(1));
  require_equal(where, "length of v (Tk of k)", tk, v.shape(2));
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  Tensor4 out({nb, nh, tq, dv});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h) {
      const Tensor2 qh = xt::view(q, b, h);                  // (Tq, D)
      const Tensor2 kt = xt::transpose(xt::view(k, b, h));   // (D, Tk)
      const Tensor2 vh = xt::view(v, b, h);                  // (Tk, Dv)
      const Tensor2 scores = matmul(qh, kt) * scale;         // (Tq, Tk)
      xt::view(out, b, h) = matmul(softmax_rows(scores), vh);  // (Tq, Dv)
    }
  return out;
  // END TODO(01.3)
}

Tensor4 split_heads(const Tensor3& x, std::size_t n_heads) {
  // TODO(01.4): check that H divides the channels; y(b, h, t, d) = x(b, t, h*D + d)
  const std::size_t nb = x.shape(0), t = x.shape(1), c = x.shape(2);
  require(n_heads > 0 && c % n_heads == 0, "split_heads",
          "the channel count must be a multiple of the head count: given " + std::to_string(c) +
              " channels and " + std::to_string(n_heads) + " heads");
  const std::size_t d = c / n_heads;
  // (B, T, H*D) -> (B, T, H, D) -> (B, H, T, D); the copy makes it contiguous again.
  const auto heads = xt::reshape_view(x, {nb, t, n_heads, d});
  return xt::transpose(heads, {0, 2, 1, 3});
  // END TODO(01.4)
}

Tensor3 merge_heads(const Tensor4& y) {
  // TODO(01.5): x(b, t, h*D + d) = y(b, h, t, d)
  const std::size_t nb = y.shape(0), nh = y.shape(1), t = y.shape(2), d = y.shape(3);
  const Tensor4 time_major = xt::transpose(y, {0, 2, 1, 3});  // (B, T, H, D), contiguous
  return xt::reshape_view(time_major, {nb, t, nh * d});
  // END TODO(01.5)
}

Tensor3 multi_head_attention(const Tensor3& x, const MHAWeights& w, std::size_t n_heads) {
  // TODO(01.6): project, split into heads, attend, merge, project back
  constexpr auto where = "multi_head_attention";
  const std::size_t nb = x.shape(0), t = x.shape(1), d_model = x.shape(2);
  require_equal(where, "rows of wq (d_model of x)", d_model, w.wq.shape(0));
  require_shape(where, "wk (the shape of wq)", w.wq.shape(), w.wk.shape());
  require_shape(where, "wv (the shape of wq)", w.wq.shape(), w.wv.shape());
  require_shape(where, "wo (the transpose of wq's shape)",
                std::array{w.wq.shape(1), d_model}, w.wo.shape());
  // All B*T tokens as rows of one matrix: (B*T, d_model).
  const Tensor2 rows = xt::reshape_view(x, {nb * t, d_model});
  const std::size_t width = w.wq.shape(1);  // H*D
  auto project = [&](const Tensor2& weight) {
    const Tensor3 p = xt::reshape_view(matmul(rows, weight), {nb, t, width});
    return split_heads(p, n_heads);  // (B, H, T, D)
  };
  const Tensor4 y = scaled_dot_product_attention(project(w.wq), project(w.wk), project(w.wv));
  const Tensor2 merged = xt::reshape_view(merge_heads(y), {nb * t, width});
  return xt::reshape_view(matmul(merged, w.wo), {nb, t, d_model});
  // END TODO(01.6)
}

}  // namespace attn
