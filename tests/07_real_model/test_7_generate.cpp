// Lesson 07: the generation loop (given code) on the learner's model, greedy and sampled.
#include "llama_model.hpp"

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
