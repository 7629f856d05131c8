// Lesson 07, part 4: the attention sublayer of one block, alone, on the tiny Llama model's
// weights (built without the file, so before the config is read) against the float64
// attention of tiny_llama.hpp: projections, RoPE at the given positions, GQA, Wo.
#include "llama_model.hpp"

#include <xtensor/xview.hpp>

#include "attn/random.hpp"
#include "attn/testing.hpp"
#include "tiny_llama.hpp"

using namespace attn;

namespace {

std::vector<tiny::Vec> rows_of(const Tensor3& h) {  // (1, T, C) -> T rows
  std::vector<tiny::Vec> out(h.shape(1), tiny::Vec(h.shape(2)));
  for (std::size_t t = 0; t < h.shape(1); ++t)
    for (std::size_t c = 0; c < h.shape(2); ++c) out[t][c] = h(0, t, c);
  return out;
}

xt::xtensor<double, 3> as_tensor(const std::vector<tiny::Vec>& rows, std::size_t from, std::size_t to) {
  xt::xtensor<double, 3> out = xt::zeros<double>({std::size_t{1}, to - from, rows.front().size()});
  for (std::size_t t = from; t < to; ++t)
    for (std::size_t c = 0; c < rows[t].size(); ++c) out(0, t - from, c) = rows[t][c];
  return out;
}

}  // namespace

TEST_CASE("attention of a block equals float64 projections, RoPE at its positions, GQA and Wo") {
  for (const std::size_t g : {4u, 2u, 1u}) {
    CAPTURE(g);
    tiny::Spec s;
    s.n_kv_heads = g;
    s.theta = 500.0;  // fast rotations: a wrong pairing or position shows at once
    const tiny::Weights ref = tiny::make_weights(s);
    const LlamaModel model(tiny::llama_weights(ref));
    const Tensor3 h = random_uniform<3>({1, 7, 16}, 11 + g);  // a normalized input, 7 positions
    for (const std::size_t first : {0u, 5u}) {
      CAPTURE(first);
      const Tensor3 got = model.attention(h, model.weights().layers[1], first, nullptr);
      const auto expected = as_tensor(tiny::attention(ref, 1, rows_of(h), first), 0, 7);
      ATTN_CHECK_CLOSE(got, expected, tol_relative_to_max(1e-5, expected));
    }
  }
}

TEST_CASE("attention over a layer cache appends keys after RoPE and sees every earlier position") {
  tiny::Spec s;
  s.theta = 500.0;
  const tiny::Weights ref = tiny::make_weights(s);  // H = 4, G = 2, D = 4
  const LlamaModel model(tiny::llama_weights(ref));
  const LlamaLayer& w = model.weights().layers[0];
  const Tensor3 h = random_uniform<3>({1, 7, 16}, 5);
  std::vector<tiny::Vec> keys;
  const auto whole = tiny::attention(ref, 0, rows_of(h), 0, &keys);  // the 7 positions at once
  KVCacheLayer cache(CacheShape{2, 1, 2, 16, 4});
  const Tensor3 h_first = xt::view(h, xt::all(), xt::range(0, 4), xt::all());  // a prefill
  const Tensor3 h_rest = xt::view(h, xt::all(), xt::range(4, 7), xt::all());   // then 3 more
  const Tensor3 first = model.attention(h_first, w, 0, &cache);
  const Tensor3 rest = model.attention(h_rest, w, 4, &cache);
  const auto first_ref = as_tensor(whole, 0, 4), rest_ref = as_tensor(whole, 4, 7);
  ATTN_CHECK_CLOSE(first, first_ref, tol_relative_to_max(1e-5, first_ref));
  ATTN_CHECK_CLOSE(rest, rest_ref, tol_relative_to_max(1e-5, rest_ref));
  REQUIRE(cache.length() == 7);
  xt::xtensor<double, 4> k_ref = xt::zeros<double>({std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{4}});
  for (std::size_t g = 0; g < 2; ++g)
    for (std::size_t t = 0; t < 7; ++t)
      for (std::size_t c = 0; c < 4; ++c) k_ref(0, g, t, c) = keys[t][g * 4 + c];
  const Tensor4 k = cache.kv().keys();
  ATTN_CHECK_CLOSE(k, k_ref, tol_relative_to_max(1e-5, k_ref));
}
