// Lesson 07, part 5: the whole forward pass, on a tiny Llama model (its weights built
// directly, or written as a GGUF file and loaded), against an independent float64 forward
// pass in plain loops (tiny_llama.hpp) that reads the same stored numbers.
#include "llama_model.hpp"

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"
#include "tiny_llama.hpp"

using namespace attn;

namespace {

Tokens as_tokens(const std::vector<std::size_t>& ids) {
  Tokens t = Tokens::from_shape({1, ids.size()});
  std::copy(ids.begin(), ids.end(), t.begin());
  return t;
}

xt::xtensor<double, 2> as_tensor(const std::vector<tiny::Vec>& rows) {
  xt::xtensor<double, 2> out = xt::zeros<double>({rows.size(), rows.front().size()});
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; j < rows[i].size(); ++j) out(i, j) = rows[i][j];
  return out;
}

const std::vector<std::size_t> kTokens = {3, 17, 0, 22, 9, 9, 14, 5, 1, 20, 11};

}  // namespace

TEST_CASE("load_llama keeps every projection as (in, out) and ties the output to the embedding") {
  const tiny::Weights ref = tiny::make_weights(tiny::Spec{});
  const LlamaWeights w = load_llama(tiny::file(ref));
  const auto& q = ref.m.at("blk.1.attn_q.weight");  // stored (out, in)
  REQUIRE(w.layers.size() == 2);
  REQUIRE(w.layers[1].wq.shape(0) == q.cols);
  REQUIRE(w.layers[1].wq.shape(1) == q.rows);
  CHECK(w.layers[1].wq(3, 10) == q.at(10, 3));
  CHECK(w.embedding(5, 7) == ref.m.at("token_embd.weight").at(5, 7));
  CHECK(w.tied);
  CHECK(w.output(7, 5) == ref.m.at("token_embd.weight").at(5, 7));
  // Every tensor as tiny_llama.hpp builds it from the stored numbers, without the file.
  const LlamaWeights hand = tiny::llama_weights(ref);
  CHECK(w.embedding == hand.embedding);
  CHECK(w.final_norm == hand.final_norm);
  for (std::size_t l = 0; l < 2; ++l) {
    CAPTURE(l);
    const LlamaLayer &a = w.layers[l], &b = hand.layers[l];
    CHECK(a.attn_norm == b.attn_norm);
    CHECK((a.wq == b.wq && a.wk == b.wk && a.wv == b.wv && a.wo == b.wo));
    CHECK(a.mlp_norm == b.mlp_norm);
    CHECK((a.w_gate == b.w_gate && a.w_up == b.w_up && a.w_down == b.w_down));
  }
  // V d + L (2 d + d (H + 2 G) D + H D d + 3 d d_ff) + d, the output counted once.
  const std::size_t d = 16, ff = 24, v = 23;
  CHECK(parameter_count(w) == v * d + 2 * (2 * d + d * (4 + 2 * 2) * 4 + 4 * 4 * d + 3 * d * ff) + d);
}

TEST_CASE("load_llama refuses a tensor the model would not use, naming it") {
  const tiny::Weights ref = tiny::make_weights(tiny::Spec{});
  CHECK(load_llama(tiny::file(ref)).layers.size() == 2);
  // Llama 3.1's RoPE frequency factors, a bias, a block past block_count, an MoE expert.
  for (const std::string name : {"rope_freqs.weight", "blk.0.attn_q.bias", "blk.2.attn_norm.weight",
                                 "blk.1.ffn_gate_exps.weight"}) {
    CAPTURE(name);
    auto writer = tiny::writer(ref);
    writer.tensor(name, {2}, 0, std::vector<std::byte>(8));
    const auto bytes = writer.build();
    const std::string message = "load_llama: tensor '" + name +
                                "': expected only the tensors of a Llama of 2 blocks (token_embd, "
                                "output_norm, output, blk.N.{attn_norm, attn_q, attn_k, attn_v, "
                                "attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down} weights), given "
                                "one this code does not use";
    CHECK_THROWS_WITH_AS(load_llama(gguf::File::parse(bytes, "tiny llama")), message.c_str(),
                         std::invalid_argument);
  }
}

TEST_CASE("forward equals a float64 Llama forward pass for MHA, GQA and MQA heads") {
  for (const std::size_t g : {4u, 2u, 1u}) {
    CAPTURE(g);
    tiny::Spec s;
    s.n_kv_heads = g;
    s.theta = 500.0;  // faster rotations: a wrong pairing or position shows at once
    const tiny::Weights ref = tiny::make_weights(s);
    const LlamaModel model(tiny::llama_weights(ref));  // without the file: the config is not read
    const Tensor3 got = model.forward(as_tokens(kTokens));
    const auto expected = as_tensor(tiny::forward(ref, kTokens));
    REQUIRE(got.shape(1) == kTokens.size());
    const Tensor2 got2 = xt::view(got, 0, xt::all(), xt::all());
    ATTN_CHECK_CLOSE(got2, expected, tol_relative_to_max(1e-5, expected));
  }
}

TEST_CASE("forward uses output.weight when the embedding is not tied") {
  tiny::Spec s;
  s.tied = false;
  const tiny::Weights ref = tiny::make_weights(s);
  const LlamaModel model(load_llama(tiny::file(ref)));
  CHECK_FALSE(model.weights().tied);
  const Tensor2 got = xt::view(model.forward(as_tokens(kTokens)), 0, xt::all(), xt::all());
  const auto expected = as_tensor(tiny::forward(ref, kTokens));
  ATTN_CHECK_CLOSE(got, expected, tol_relative_to_max(1e-5, expected));
}

TEST_CASE("prefill and decode steps equal the uncached forward, and the cache holds keys after RoPE") {
  tiny::Spec s;
  s.theta = 500.0;
  const tiny::Weights ref = tiny::make_weights(s);
  const LlamaModel model(load_llama(tiny::file(ref)));
  std::vector<std::vector<tiny::Vec>> keys;
  const auto expected = as_tensor(tiny::forward(ref, kTokens, &keys));
  ModelCache cache = model.make_cache(1, 16);  // lesson 04's KVCache in every layer
  const std::vector<std::size_t> prompt(kTokens.begin(), kTokens.begin() + 4);
  const Tensor3 first = model.prefill(as_tokens(prompt), cache);
  const Tensor2 first2 = xt::view(first, 0, xt::all(), xt::all());
  const xt::xtensor<double, 2> first_ref = xt::view(expected, xt::range(0, 4), xt::all());
  ATTN_CHECK_CLOSE(first2, first_ref, tol_relative_to_max(1e-5, expected));
  for (std::size_t t = 4; t < kTokens.size(); ++t) {
    CAPTURE(t);
    const Tensor2 step = model.decode_step(TokenColumn({kTokens[t]}), cache);  // (1, V)
    const xt::xtensor<double, 2> row = xt::view(expected, xt::range(t, t + 1), xt::all());
    ATTN_CHECK_CLOSE(step, row, tol_relative_to_max(1e-5, expected));
  }
  REQUIRE(cache.length() == kTokens.size());
  const std::size_t d = s.head_dim();
  for (std::size_t l = 0; l < s.n_layers; ++l) {
    const Tensor4 k = dynamic_cast<const KVCacheLayer&>(cache.layer(l)).kv().keys();  // (1, G, T, D)
    xt::xtensor<double, 4> k_ref = xt::zeros<double>({std::size_t{1}, s.n_kv_heads, kTokens.size(), d});
    for (std::size_t g = 0; g < s.n_kv_heads; ++g)
      for (std::size_t t = 0; t < kTokens.size(); ++t)
        for (std::size_t c = 0; c < d; ++c) k_ref(0, g, t, c) = keys[l][t][g * d + c];
    ATTN_CHECK_CLOSE(k, k_ref, tol_relative_to_max(1e-5, k_ref));
  }
}

TEST_CASE("a full cache or a token outside the vocabulary is out_of_range and leaves the cache unchanged") {
  const tiny::Weights ref = tiny::make_weights(tiny::Spec{});
  const LlamaModel model(load_llama(tiny::file(ref)));
  ModelCache cache = model.make_cache(1, 5);
  model.prefill(as_tokens({1, 2, 3}), cache);
  const KVCache& layer1 = dynamic_cast<const KVCacheLayer&>(cache.layer(1)).kv();
  const Tensor4 before = layer1.keys();
  CHECK_THROWS_WITH_AS(model.prefill(as_tokens({4, 5, 6}), cache),
                       doctest::Contains("holds 3 of 5, given 3 more"), std::out_of_range);
  CHECK_THROWS_WITH_AS(model.decode_step(TokenColumn({23}), cache),
                       doctest::Contains("expected an id < 23, given 23"), std::out_of_range);
  CHECK(cache.length() == 3);
  CHECK(Tensor4(layer1.keys()) == before);
  ModelCache other(CacheShape{2, 1, 1, 8, 4});  // G = 1: not this model's cache
  CHECK_THROWS_WITH_AS(model.prefill(as_tokens({1}), other),
                       doctest::Contains("KV heads of the cache"), std::invalid_argument);
}

TEST_CASE("expand_kv_heads makes an MHA model with the same logits and an H/G times larger cache") {
  const tiny::Weights ref = tiny::make_weights(tiny::Spec{});  // H = 4, G = 2
  const LlamaWeights gqa = load_llama(tiny::file(ref));
  const LlamaModel native(gqa);
  const LlamaModel mha(expand_kv_heads(gqa));
  CHECK(mha.config().n_kv_heads == 4);
  ModelCache native_cache = native.make_cache(1, 16), mha_cache = mha.make_cache(1, 16);
  const Tensor3 a = native.prefill(as_tokens(kTokens), native_cache);
  const Tensor3 b = mha.prefill(as_tokens(kTokens), mha_cache);
  ATTN_CHECK_CLOSE(b, a, tol_relative_to_max(1e-5, a));
  // 2 L B G T D float32 numbers: G = 2 here, 4 expanded.
  CHECK(native_cache.bytes_used() == 2 * 2 * 1 * 2 * kTokens.size() * 4 * sizeof(float));
  CHECK(mha_cache.bytes_used() == 2 * native_cache.bytes_used());
}

TEST_CASE("pool_kv_heads averages the K and V projections of the heads each new head replaces") {
  const tiny::Weights ref = tiny::make_weights(tiny::Spec{});  // G = 2, D = 4
  const LlamaWeights gqa = load_llama(tiny::file(ref));
  const LlamaWeights mqa = pool_kv_heads(gqa, 1);
  CHECK(mqa.config.n_kv_heads == 1);
  REQUIRE(mqa.layers[0].wk.shape(1) == 4);
  for (std::size_t i = 0; i < 16; ++i)
    for (std::size_t c = 0; c < 4; ++c) {
      CHECK(mqa.layers[0].wk(i, c) == doctest::Approx((gqa.layers[0].wk(i, c) + gqa.layers[0].wk(i, 4 + c)) / 2));
      CHECK(mqa.layers[1].wv(i, c) == doctest::Approx((gqa.layers[1].wv(i, c) + gqa.layers[1].wv(i, 4 + c)) / 2));
    }
  CHECK(LlamaModel(mqa).forward(as_tokens(kTokens)).shape(2) == 23);
  CHECK_THROWS_WITH_AS(pool_kv_heads(gqa, 3), doctest::Contains("G = 2, given 3"), std::invalid_argument);
}
