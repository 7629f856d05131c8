// Lesson 05, parts 4 and 5: greedy generation without and with the cache.
#include "decoder.hpp"

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"

using namespace attn;

namespace {

DecoderConfig small_config(std::size_t n_kv_heads, std::uint64_t seed) {
  DecoderConfig c;
  c.vocab = 40;
  c.d_model = 32;
  c.n_heads = 8;
  c.n_kv_heads = n_kv_heads;
  c.n_layers = 2;
  c.d_ff = 48;
  c.max_seq_len = 24;
  c.seed = seed;
  return c;
}

Tokens random_tokens(std::size_t nb, std::size_t t, std::size_t vocab, std::uint64_t seed) {
  Tokens tokens({nb, t});
  Rng rng(seed);
  for (auto& id : tokens) id = static_cast<std::size_t>(rng.next() % vocab);
  return tokens;
}

}  // namespace

TEST_CASE("greedy generation with the cache gives the same tokens as without it") {
  for (std::size_t ng : {std::size_t{8}, std::size_t{2}, std::size_t{1}})
    for (std::size_t p : {std::size_t{1}, std::size_t{3}, std::size_t{8}}) {
      CAPTURE(ng);
      CAPTURE(p);
      const Decoder model(small_config(ng, 800 + ng));
      const Tokens prompt = random_tokens(2, p, 40, 810 + p);
      const Tokens uncached = model.generate_uncached(prompt, 10);
      MultiLayerKVCache cache = model.make_cache(2);
      const Tokens cached = model.generate_cached(prompt, 10, cache);
      REQUIRE(uncached.shape() == std::array<std::size_t, 2>{2, 10});
      CHECK(cached == uncached);
      // The cache holds the prompt and every generated token, in every layer.
      for (std::size_t l = 0; l < cache.layers(); ++l) CHECK(cache.layer(l).length() == p + 10);
    }
}

TEST_CASE("generate_uncached feeds back the argmax of the last position, step by step") {
  const Decoder model(small_config(2, 820));
  const Tokens prompt = random_tokens(2, 3, 40, 821);
  const Tokens got = model.generate_uncached(prompt, 4);
  Tokens seq = prompt;
  for (std::size_t i = 0; i < 4; ++i) {
    const TokenColumn next = greedy_next(model.forward(seq));
    for (std::size_t b = 0; b < 2; ++b) CHECK(got(b, i) == next(b));
    Tokens longer({2, seq.shape(1) + 1});
    xt::view(longer, xt::all(), xt::range(0, seq.shape(1))) = seq;
    xt::view(longer, xt::all(), seq.shape(1)) = next;
    seq = longer;
  }
  // Not a constant sequence: the test would not see a loop that never feeds back.
  bool varies = false;
  for (std::size_t i = 1; i < 4; ++i) varies = varies || got(0, i) != got(0, 0);
  CHECK(varies);
}

TEST_CASE("generate_cached: the cache after generation holds the keys of the whole text") {
  // Prefilling prompt + generated tokens into a fresh cache gives the same keys and values.
  const Decoder model(small_config(2, 830));
  const Tokens prompt = random_tokens(1, 4, 40, 831);
  MultiLayerKVCache cache = model.make_cache(1);
  const Tokens generated = model.generate_cached(prompt, 6, cache);
  Tokens text({1, 10});
  xt::view(text, xt::all(), xt::range(0, 4)) = prompt;
  xt::view(text, xt::all(), xt::range(4, 10)) = generated;
  MultiLayerKVCache fresh = model.make_cache(1);
  model.prefill(text, fresh);
  for (std::size_t l = 0; l < cache.layers(); ++l) {
    CAPTURE(l);
    const Tensor4 k = cache.layer(l).keys(), k_ref = fresh.layer(l).keys();
    const Tensor4 v = cache.layer(l).values(), v_ref = fresh.layer(l).values();
    ATTN_CHECK_CLOSE(k, k_ref, tol_relative_to_max(1e-5, k_ref));
    ATTN_CHECK_CLOSE(v, v_ref, tol_relative_to_max(1e-5, v_ref));
  }
}

TEST_CASE("zero new tokens: an empty result, and the cache holds the prompt") {
  const Decoder model(small_config(1, 840));
  const Tokens prompt = random_tokens(2, 5, 40, 841);
  REQUIRE(model.generate_uncached(prompt, 0).shape() == std::array<std::size_t, 2>{2, 0});
  MultiLayerKVCache cache = model.make_cache(2);
  REQUIRE(model.generate_cached(prompt, 0, cache).shape() == std::array<std::size_t, 2>{2, 0});
  CHECK(cache.length() == 5);
}

TEST_CASE("generating past max_seq_len is std::out_of_range before any work") {
  const Decoder model(small_config(2, 850));  // max_seq_len 24
  const Tokens prompt = random_tokens(2, 20, 40, 851);
  REQUIRE_THROWS_WITH_AS(model.generate_uncached(prompt, 5),
                       "Decoder::generate_uncached: prompt and generated tokens exceed "
                       "max_seq_len = 24: given P = 20 and n_new = 5",
                       std::out_of_range);
  MultiLayerKVCache cache = model.make_cache(2);
  REQUIRE_THROWS_WITH_AS(model.generate_cached(prompt, 5, cache),
                       "Decoder::generate_cached: no room for the new tokens: the cache holds 0 "
                       "and can hold 24 (min of max_seq_len = 24 and the cache capacity = 24), "
                       "given 25 more",
                       std::out_of_range);
  CHECK(cache.length() == 0);  // nothing was prefilled
  CHECK_THROWS_AS(model.generate_cached(prompt, SIZE_MAX, cache), std::out_of_range);
  CHECK(model.generate_uncached(prompt, 4).shape(1) == 4);  // exactly full is fine
  CHECK(model.generate_cached(prompt, 4, cache).shape(1) == 4);
  CHECK(cache.length() == 24);
  CHECK_THROWS_AS(model.generate_uncached(Tokens({2, 0}), 3), std::invalid_argument);
}
