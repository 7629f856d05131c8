// Lesson 07, part 7: the negative log-likelihood of each next token, perplexity's parts, and
// sequence_nll (given code), which scores one chunk of a text with the model.
#include "llama_model.hpp"

#include <cmath>
#include <limits>

#include <xtensor/xview.hpp>

#include "attn/random.hpp"
#include "attn/testing.hpp"
#include "tiny_llama.hpp"

using namespace attn;

TEST_CASE("next_token_nll of a hand-computed case: -log 3/4 and -log 1/4") {
  // Row 0 gives probabilities (1/4, 3/4); row 1 gives (1/2, 1/2); the last row scores nothing.
  const Tensor2 logits = {{0.0f, static_cast<float>(std::log(3.0))}, {5.0f, 5.0f}, {9.0f, 0.0f}};
  const auto nll = next_token_nll(logits, {0, 1, 0}, 0);
  REQUIRE(nll.size() == 2);
  CHECK(nll[0] == doctest::Approx(-std::log(0.75)).epsilon(1e-6));
  CHECK(nll[1] == doctest::Approx(std::log(2.0)).epsilon(1e-6));
  const auto second_half = next_token_nll(logits, {0, 1, 0}, 1);  // scores position 1 only
  REQUIRE(second_half.size() == 1);
  CHECK(second_half[0] == doctest::Approx(std::log(2.0)).epsilon(1e-6));
}

TEST_CASE("next_token_nll equals a float64 log-softmax and stays finite at logits of 1e4") {
  Tensor2 logits = random_uniform<2>({9, 50}, 5, -1e4f, 1e4f);
  std::vector<std::size_t> tokens = {3, 49, 0, 7, 7, 20, 31, 2, 48};
  const auto nll = next_token_nll(logits, tokens, 3);
  REQUIRE(nll.size() == 5);
  for (std::size_t t = 3; t + 1 < 9; ++t) {
    double m = -INFINITY, s = 0.0;
    for (std::size_t v = 0; v < 50; ++v) m = std::max(m, double(logits(t, v)));
    for (std::size_t v = 0; v < 50; ++v) s += std::exp(double(logits(t, v)) - m);
    const double ref = m + std::log(s) - double(logits(t, tokens[t + 1]));
    CHECK(std::isfinite(nll[t - 3]));
    CHECK(nll[t - 3] == doctest::Approx(ref).epsilon(1e-12).scale(1e4));
  }
}

TEST_CASE("next_token_nll refuses mismatched tokens, a first position past the end, an id outside V") {
  const Tensor2 logits = xt::zeros<float>({4, 6});
  CHECK_THROWS_WITH_AS(next_token_nll(logits, {1, 2, 3}, 0), doctest::Contains("expected 4, given 3"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(next_token_nll(logits, {1, 2, 3, 4}, 3), doctest::Contains("given first = 3"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(next_token_nll(logits, {1, 2, 6, 4}, 0), doctest::Contains("given 6"),
                       std::out_of_range);
}

TEST_CASE("sequence_nll is next_token_nll of the forward logits, and names a position whose logits are not finite") {
  tiny::Spec s;
  s.tied = false;
  LlamaWeights w = tiny::llama_weights(tiny::make_weights(s));
  const std::vector<std::size_t> tokens = {1, 5, 9, 13, 17, 21};
  Tokens batch = Tokens::from_shape({1, tokens.size()});
  std::copy(tokens.begin(), tokens.end(), batch.begin());
  const LlamaModel clean(w);
  const Tensor2 logits = xt::view(clean.forward(batch), 0, xt::all(), xt::all());
  CHECK(sequence_nll(clean, tokens, 2) == next_token_nll(logits, tokens, 2));
  // Token 1 at position 0 carries a NaN: every later position attends to it, so every scored
  // position is NaN, and the message names the first one scored.
  w.embedding(1, 0) = std::numeric_limits<float>::quiet_NaN();
  const LlamaModel damaged(std::move(w));
  CHECK_THROWS_WITH_AS(sequence_nll(damaged, tokens, 4),
                       doctest::Contains("sequence_nll: position 4 (scoring the token at 5)"), std::range_error);
  CHECK_THROWS_WITH_AS(sequence_nll(damaged, tokens, 2),
                       "sequence_nll: position 2 (scoring the token at 3): 23 of 23 logits are not finite, "
                       "the first at id 0 (NaN); the weights hold a NaN or an infinity, or the activations "
                       "overflowed float32",
                       std::range_error);
  CHECK_THROWS_WITH_AS(sequence_nll(damaged, tokens, 5), doctest::Contains("given first = 5 with T = 6"),
                       std::invalid_argument);
}
