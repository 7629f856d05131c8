// Lesson 03: grouped-query attention. Fill in each body between TODO(03.k) and
// END TODO(03.k), in the order of the README.
#include "gqa.hpp"

#include <array>
#include <cmath>
#include <string>

#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "causal.hpp"

namespace attn {

Tensor4 repeat_kv(const Tensor4& kv, std::size_t n_rep) {
  // TODO(03.1): check n_rep; head h of the result is head h / n_rep of kv
  require(n_rep > 0, "repeat_kv", "n_rep (query heads per KV head) must be at least 1, given 0");
  const std::size_t nb = kv.shape(0), ng = kv.shape(1), t = kv.shape(2), d = kv.shape(3);
  Tensor4 out({nb, ng * n_rep, t, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < ng * n_rep; ++h) xt::view(out, b, h) = xt::view(kv, b, h / n_rep);
  return out;
  // END TODO(03.1)
}

void check_gqa_arguments(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                         std::size_t q_offset, std::string_view where) {
  // TODO(03.2): check B and D of k and v against q, G and Tk of v against k, H % G, Tk > 0, q_offset
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t ng = k.shape(1), tk = k.shape(2);
  require_equal(where, "batch of k (B of q)", nb, k.shape(0));
  require_equal(where, "head dimension of k (D of q)", d, k.shape(3));
  require_equal(where, "batch of v (B of q)", nb, v.shape(0));
  require_equal(where, "KV heads of v (G of k)", ng, v.shape(1));
  require_equal(where, "length of v (Tk of k)", tk, v.shape(2));
  require(ng > 0 && nh % ng == 0, where,
          "the query heads must be a multiple of the KV heads: given H = " + std::to_string(nh) +
              " query heads and G = " + std::to_string(ng) + " KV heads");
  require(tk > 0, where, "attention needs at least one key, given Tk = 0");
  if (mask == Mask::none) {
    require_equal(where, "q_offset with Mask::none (only a causal mask uses positions)", 0,
                  q_offset);
  } else {
    // Written so that a huge q_offset cannot wrap the sum around.
    require_in_range(q_offset <= tk && tq <= tk - q_offset, where,
                     "query positions past the last key: expected q_offset + Tq <= Tk = " +
                         std::to_string(tk) + ", given q_offset = " + std::to_string(q_offset) +
                         " and Tq = " + std::to_string(tq));
  }
  // END TODO(03.2)
}

Tensor4 gqa_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                      std::size_t q_offset) {
  // TODO(03.3): check_gqa_arguments, then query head h attends over KV head h / (H/G)
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t ng = k.shape(1), tk = k.shape(2), dv = v.shape(3);
  check_gqa_arguments(q, k, v, mask, q_offset, "gqa_attention");
  const std::size_t group = nh / ng;  // query heads per KV head: llama2.c's kv_mul
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  xt::xtensor<bool, 2> visible;  // (Tq, Tk), true = may attend
  if (mask == Mask::causal) visible = causal_mask(tq, tk, q_offset);
  Tensor4 out({nb, nh, tq, dv});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g) {
      // KV head g is read once and serves its whole group of query heads.
      const Tensor2 kt = xt::transpose(xt::view(k, b, g));  // (D, Tk)
      const Tensor2 vg = xt::view(v, b, g);                 // (Tk, Dv)
      for (std::size_t r = 0; r < group; ++r) {
        const std::size_t h = g * group + r;  // so g == h / group: repeat_interleave order
        const Tensor2 qh = xt::view(q, b, h);           // (Tq, D)
        const Tensor2 scores = matmul(qh, kt) * scale;  // (Tq, Tk)
        const Tensor2 p =
            mask == Mask::causal ? masked_softmax_rows(scores, visible) : softmax_rows(scores);
        xt::view(out, b, h) = matmul(p, vg);  // (Tq, Dv)
      }
    }
  return out;
  // END TODO(03.3)
}

Tensor3 gqa_self_attention(const Tensor3& x, const GQAWeights& w, Mask mask) {
  // TODO(03.4): check head counts and shapes; project, split into H and G heads, attend, merge, project back
  constexpr auto where = "gqa_self_attention";
  const std::size_t nb = x.shape(0), t = x.shape(1), d_model = x.shape(2);
  const std::size_t nh = w.n_heads, ng = w.n_kv_heads;
  require(ng > 0 && nh > 0 && nh % ng == 0, where,
          "n_heads must be a positive multiple of n_kv_heads: given H = " + std::to_string(nh) +
              " and G = " + std::to_string(ng));
  require(w.wq.shape(1) % nh == 0, where,
          "the columns of wq must be a multiple of n_heads: given " +
              std::to_string(w.wq.shape(1)) + " columns and " + std::to_string(nh) + " heads");
  const std::size_t d = w.wq.shape(1) / nh;
  require_equal(where, "rows of wq (d_model of x)", d_model, w.wq.shape(0));
  require_shape(where, "wk (d_model, G*D)", std::array{d_model, ng * d}, w.wk.shape());
  require_shape(where, "wv (d_model, G*D)", std::array{d_model, ng * d}, w.wv.shape());
  require_shape(where, "wo (H*D, d_model)", std::array{nh * d, d_model}, w.wo.shape());
  const Tensor2 rows = xt::reshape_view(x, {nb * t, d_model});  // (B*T, d_model)
  auto project = [&](const Tensor2& weight, std::size_t heads) {
    const Tensor3 p = xt::reshape_view(matmul(rows, weight), {nb, t, heads * d});
    return split_heads(p, heads);  // (B, heads, T, D)
  };
  const Tensor4 y =
      gqa_attention(project(w.wq, nh), project(w.wk, ng), project(w.wv, ng), mask, 0);
  const Tensor2 merged = xt::reshape_view(merge_heads(y), {nb * t, nh * d});
  return xt::reshape_view(matmul(merged, w.wo), {nb, t, d_model});
  // END TODO(03.4)
}

std::size_t parameter_count(const GQAWeights& w) {
  // TODO(03.5): count the elements of the four projections
  return w.wq.size() + w.wk.size() + w.wv.size() + w.wo.size();
  // END TODO(03.5)
}

Tensor2 pool_kv_heads(const Tensor2& w, std::size_t n_heads, std::size_t n_kv_heads) {
  // TODO(03.6): KV head g = mean of the column blocks of heads g*(H/G) ... g*(H/G) + H/G - 1
  const std::size_t d_model = w.shape(0), d = w.shape(1) / n_heads, group = n_heads / n_kv_heads;
  Tensor2 pooled = xt::zeros<float>({d_model, n_kv_heads * d});  // (d_model, G*D)
  for (std::size_t g = 0; g < n_kv_heads; ++g) {
    auto kv_head = xt::view(pooled, xt::all(), xt::range(g * d, (g + 1) * d));
    for (std::size_t r = 0; r < group; ++r) {
      const std::size_t h = g * group + r;  // consecutive heads: the group that shares g
      kv_head += xt::view(w, xt::all(), xt::range(h * d, (h + 1) * d));
    }
    kv_head /= static_cast<float>(group);
  }
  return pooled;
  // END TODO(03.6)
}

GQAWeights mha_to_gqa(const MHAWeights& mha, std::size_t n_heads, std::size_t n_kv_heads) {
  // TODO(03.7): check the head counts and shapes; pool wk and wv; keep wq and wo
  constexpr auto where = "mha_to_gqa";
  const std::size_t d_model = mha.wq.shape(0), width = mha.wq.shape(1);
  require(n_kv_heads > 0 && n_heads > 0 && n_heads % n_kv_heads == 0, where,
          "n_heads must be a positive multiple of n_kv_heads: given H = " +
              std::to_string(n_heads) + " and G = " + std::to_string(n_kv_heads));
  require(width % n_heads == 0, where,
          "the columns of wq must be a multiple of n_heads: given " + std::to_string(width) +
              " columns and " + std::to_string(n_heads) + " heads");
  require_shape(where, "wk (the shape of wq)", mha.wq.shape(), mha.wk.shape());
  require_shape(where, "wv (the shape of wq)", mha.wq.shape(), mha.wv.shape());
  require_shape(where, "wo (the transpose of wq's shape)", std::array{width, d_model},
                mha.wo.shape());
  return GQAWeights{mha.wq, pool_kv_heads(mha.wk, n_heads, n_kv_heads),
                    pool_kv_heads(mha.wv, n_heads, n_kv_heads), mha.wo, n_heads, n_kv_heads};
  // END TODO(03.7)
}

}  // namespace attn
