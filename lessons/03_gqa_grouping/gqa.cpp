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
  throw NotImplemented("03.1", "3. repeat_kv and the tile-order mistake");
  // END TODO(03.1)
}

void check_gqa_arguments(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                         std::size_t q_offset, std::string_view where) {
  // TODO(03.2): check B and D of k and v against q, G and Tk of v against k, H % G, Tk > 0, q_offset
  throw NotImplemented("03.2", "4. Attention over groups, without copies");
  // END TODO(03.2)
}

Tensor4 gqa_attention(const Tensor4& q, const Tensor4& k, const Tensor4& v, Mask mask,
                      std::size_t q_offset) {
  // TODO(03.3): check_gqa_arguments, then query head h attends over KV head h / (H/G)
  throw NotImplemented("03.3", "4. Attention over groups, without copies");
  // END TODO(03.3)
}

Tensor3 gqa_self_attention(const Tensor3& x, const GQAWeights& w, Mask mask) {
  // TODO(03.4): check head counts and shapes; project, split into H and G heads, attend, merge, project back
  throw NotImplemented("03.4", "5. The GQA layer and its parameters");
  // END TODO(03.4)
}

std::size_t parameter_count(const GQAWeights& w) {
  // TODO(03.5): count the elements of the four projections
  throw NotImplemented("03.5", "5. The GQA layer and its parameters");
  // END TODO(03.5)
}

Tensor2 pool_kv_heads(const Tensor2& w, std::size_t n_heads, std::size_t n_kv_heads) {
  // TODO(03.6): KV head g = mean of the column blocks of heads g*(H/G) ... g*(H/G) + H/G - 1
  throw NotImplemented("03.6", "6. From an MHA checkpoint: mean-pooling");
  // END TODO(03.6)
}

GQAWeights mha_to_gqa(const MHAWeights& mha, std::size_t n_heads, std::size_t n_kv_heads) {
  // TODO(03.7): check the head counts and shapes; pool wk and wv; keep wq and wo
  throw NotImplemented("03.7", "6. From an MHA checkpoint: mean-pooling");
  // END TODO(03.7)
}

}  // namespace attn
