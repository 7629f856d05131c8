// Lesson 07: the generation loop (given code) on the learner's model, greedy and sampled.
#include "llama_model.hpp"

#include <algorithm>
#include <limits>

#include "attn/testing.hpp"
#include "tiny_llama.hpp"

using namespace attn;

TEST_CASE("greedy generation with the cache gives the tokens of the uncached loop") {
  tiny::Spec s;
  s.theta = 500.0;
  const LlamaModel model(load_llama(tiny::file(tiny::make_weights(s))));
  const std::vector<std::size_t> prompt = {4, 8, 15, 16, 23 % 23, 3};
  ModelCache cache = model.make_cache(1, 32);
  GenerationStats stats;
  const auto cached = generate(model, prompt, 20, cache, {}, 0, {}, {}, &stats);
  CHECK(cached == generate_uncached(model, prompt, 20));
  CHECK(stats.prompt_tokens == 6);
  CHECK(stats.new_tokens == 20);
  CHECK(cache.length() == 6 + 19);  // the last new token is returned, not fed back
}

TEST_CASE("generate stops at a stop token or when the callback says so, and checks room first") {
  const LlamaModel model(load_llama(tiny::file(tiny::make_weights(tiny::Spec{}))));
  const std::vector<std::size_t> prompt = {1, 2, 3};
  ModelCache first = model.make_cache(1, 32);
  const auto all = generate(model, prompt, 10, first);
  ModelCache second = model.make_cache(1, 32);
  const auto stopped = generate(model, prompt, 10, second, {}, 0, {all[3]});
  CHECK(stopped.size() <= 4);
  CHECK(stopped.back() == all[3]);
  ModelCache third = model.make_cache(1, 32);
  std::vector<std::size_t> seen;
  const auto two = generate(model, prompt, 10, third, {}, 0, {}, [&](std::size_t id) {
    seen.push_back(id);
    return seen.size() < 2;
  });
  CHECK(two == seen);
  CHECK(two.size() == 2);
  ModelCache fourth = model.make_cache(1, 32);
  CHECK_THROWS_WITH_AS(generate(model, prompt, 30, fourth), doctest::Contains("room for 32"),
                       std::out_of_range);
  CHECK(fourth.length() == 0);
}

TEST_CASE("sampled generation is reproducible from its seed") {
  const LlamaModel model(load_llama(tiny::file(tiny::make_weights(tiny::Spec{}))));
  ModelCache a = model.make_cache(1, 40), b = model.make_cache(1, 40), c = model.make_cache(1, 40);
  const Sampling hot{1.5f, 0.95f};
  const auto x = generate(model, {5, 6, 7}, 30, a, hot, 42);
  const auto y = generate(model, {5, 6, 7}, 30, b, hot, 42);
  CHECK(x == y);
  CHECK(generate(model, {5, 6, 7}, 30, c, hot, 43) != x);
}

TEST_CASE("non-finite logits stop generate and generate_uncached with the step and the position") {
  tiny::Spec s;
  s.tied = false;  // a NaN in the embedding then reaches the logits only through the tokens fed
  const LlamaWeights clean = tiny::llama_weights(tiny::make_weights(s));
  const std::vector<std::size_t> prompt = {4, 8, 15};
  ModelCache first = LlamaModel(clean).make_cache(1, 16);
  const auto tokens = generate(LlamaModel(clean), prompt, 4, first);
  REQUIRE(std::find(prompt.begin(), prompt.end(), tokens[0]) == prompt.end());
  // The embedding of the first new token holds a NaN: step 0 (position 2) still chooses it;
  // step 1 runs it at position 3 and every logit there is NaN. Greedy alone would then pick
  // id 0 and carry on (or stop at an end-of-text id 0) without a word.
  LlamaWeights damaged = clean;
  damaged.embedding(tokens[0], 5) = std::numeric_limits<float>::quiet_NaN();
  const LlamaModel model(std::move(damaged));
  ModelCache cache = model.make_cache(1, 16);
  CHECK_THROWS_WITH_AS(generate(model, prompt, 4, cache),
                       "generate: step 1 (the logits of position 3): 23 of 23 logits are not finite, the "
                       "first at id 0 (NaN); the weights hold a NaN or an infinity, or the activations "
                       "overflowed float32",
                       std::range_error);
  CHECK_THROWS_WITH_AS(generate_uncached(model, prompt, 4),
                       doctest::Contains("generate_uncached: step 1 (the logits of position 3): 23 of 23"),
                       std::range_error);
  // In the prompt, the first step already fails, sampled or not.
  ModelCache again = model.make_cache(1, 16);
  CHECK_THROWS_WITH_AS(generate(model, {4, tokens[0], 15}, 4, again, {0.8f, 0.9f}, 1),
                       doctest::Contains("generate: step 0 (the logits of position 2): 23 of 23"),
                       std::range_error);
}
