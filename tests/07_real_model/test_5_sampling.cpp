// Lesson 07, part 6: choosing the next token, greedy or sampled with temperature and top-p:
// each step on its own (greedy_token, tempered_probabilities, top_p_nucleus, pick_token),
// then sample_next, which puts them together.
#include "llama_model.hpp"

#include <cmath>
#include <limits>

#include "attn/testing.hpp"

using namespace attn;

namespace {

// Logits whose softmax at temperature 1 is (0.5, 0.3, 0.2), in a shuffled order of ids:
// id 2 has 0.5, id 0 has 0.3, id 1 has 0.2.
const Tensor1 kLogits = {static_cast<float>(std::log(0.3)), static_cast<float>(std::log(0.2)),
                         static_cast<float>(std::log(0.5))};

// How often each id comes out for n evenly spaced values of u.
std::vector<double> frequencies(const Tensor1& logits, const Sampling& s, int n = 10000) {
  std::vector<double> count(logits.size(), 0.0);
  for (int i = 0; i < n; ++i) count[sample_next(logits, s, (i + 0.5) / n)] += 1.0 / n;
  return count;
}

}  // namespace

TEST_CASE("greedy_token is the argmax, the lowest id among equal maxima") {
  CHECK(greedy_token(kLogits) == 2);
  CHECK(greedy_token(Tensor1{1.0f, 4.0f, -2.0f, 4.0f}) == 1);
  CHECK(greedy_token(Tensor1{-3.0f}) == 0);
  CHECK(greedy_token(Tensor1{-5.0f, -5.0f, -7.0f}) == 0);
}

TEST_CASE("tempered_probabilities is softmax(logits / temperature) in float64") {
  // Temperature 1 gives the probabilities the logits are the logs of (the float32 logs are
  // off by a relative 2^-24, so are the probabilities).
  const auto p1 = tempered_probabilities(kLogits, 1.0f);
  REQUIRE(p1.size() == 3);
  CHECK(p1[0] == doctest::Approx(0.3).epsilon(1e-6));
  CHECK(p1[1] == doctest::Approx(0.2).epsilon(1e-6));
  CHECK(p1[2] == doctest::Approx(0.5).epsilon(1e-6));
  // Against a float64 loop over the same float32 logits, at temperatures 0.5 and 2.
  for (const float t : {0.5f, 2.0f}) {
    CAPTURE(t);
    const auto p = tempered_probabilities(kLogits, t);
    double z = 0.0;
    for (const float l : kLogits) z += std::exp(double(l) / t);
    for (std::size_t i = 0; i < 3; ++i) CHECK(p[i] == doctest::Approx(std::exp(double(kLogits(i)) / t) / z).epsilon(1e-12));
  }
}

TEST_CASE("tempered_probabilities subtracts the maximum: finite at logits of 1e4") {
  const auto p = tempered_probabilities(Tensor1{1e4f, 1e4f - 1.0f, -1e4f}, 1.0f);
  const double e = std::exp(-1.0);
  CHECK(p[0] == doctest::Approx(1.0 / (1.0 + e)).epsilon(1e-12));
  CHECK(p[1] == doctest::Approx(e / (1.0 + e)).epsilon(1e-12));
  CHECK(p[2] == 0.0);
}

TEST_CASE("top_p_nucleus keeps the fewest most likely ids whose probabilities reach p") {
  const std::vector<double> p = {0.3, 0.2, 0.5};
  CHECK(top_p_nucleus(p, 1.0) == std::vector<std::size_t>{2, 0, 1});
  CHECK(top_p_nucleus(p, 0.6) == std::vector<std::size_t>{2, 0});  // 0.5 < 0.6 <= 0.8
  CHECK(top_p_nucleus(p, 0.8) == std::vector<std::size_t>{2, 0});  // reached exactly
  CHECK(top_p_nucleus(p, 0.45) == std::vector<std::size_t>{2});
  CHECK(top_p_nucleus(p, 1e-6) == std::vector<std::size_t>{2});  // always one id
  // Equal probabilities keep the lower id first.
  CHECK(top_p_nucleus({0.25, 0.25, 0.25, 0.25}, 0.5) == std::vector<std::size_t>{0, 1});
  CHECK(top_p_nucleus({0.125, 0.375, 0.125, 0.375}, 1.0) == std::vector<std::size_t>{1, 3, 0, 2});
}

TEST_CASE("pick_token returns the first kept id whose running sum exceeds u times the kept sum") {
  const std::vector<double> p = {0.25, 0.125, 0.5, 0.125};  // sums exact in binary
  const std::vector<std::size_t> all = {2, 0, 1, 3}, kept = {2, 0};
  CHECK(pick_token(p, all, 0.0) == 2);
  CHECK(pick_token(p, all, 0.49) == 2);
  CHECK(pick_token(p, all, 0.5) == 0);  // the running sum 0.5 does not exceed 0.5
  CHECK(pick_token(p, all, 0.75) == 1);
  CHECK(pick_token(p, all, 0.999) == 3);
  // Renormalized: ids 2 and 0 hold 0.75, drawn as 2/3 and 1/3.
  CHECK(pick_token(p, kept, 0.66) == 2);
  CHECK(pick_token(p, kept, 0.67) == 0);
  CHECK(pick_token(p, kept, 0.999) == 0);
  // The order of the nucleus is the order walked.
  CHECK(pick_token(p, {3, 2}, 0.1) == 3);
}

TEST_CASE("sample_next at temperature 0 is the argmax, the lowest id among equal maxima") {
  CHECK(sample_next(kLogits, {0.0f, 1.0f}, 0.99) == 2);
  const Tensor1 ties = {1.0f, 4.0f, -2.0f, 4.0f};
  CHECK(sample_next(ties, {0.0f, 0.3f}, 0.0) == 1);
}

TEST_CASE("sample_next at temperature 1 draws each id with its softmax probability") {
  // Sorted by probability: id 2 (0.5), id 0 (0.3), id 1 (0.2); u walks the running sums.
  const Sampling s{1.0f, 1.0f};
  CHECK(sample_next(kLogits, s, 0.0) == 2);
  CHECK(sample_next(kLogits, s, 0.49) == 2);
  CHECK(sample_next(kLogits, s, 0.51) == 0);
  CHECK(sample_next(kLogits, s, 0.79) == 0);
  CHECK(sample_next(kLogits, s, 0.81) == 1);
  const auto f = frequencies(kLogits, s);
  CHECK(f[2] == doctest::Approx(0.5).epsilon(1e-3));
  CHECK(f[0] == doctest::Approx(0.3).epsilon(1e-3));
  CHECK(f[1] == doctest::Approx(0.2).epsilon(1e-3));
}

TEST_CASE("sample_next divides the logits by the temperature") {
  // At temperature 2 the probabilities are proportional to sqrt(0.5), sqrt(0.3), sqrt(0.2).
  const double a = std::sqrt(0.5), b = std::sqrt(0.3), c = std::sqrt(0.2), z = a + b + c;
  const auto f = frequencies(kLogits, {2.0f, 1.0f});
  CHECK(f[2] == doctest::Approx(a / z).epsilon(1e-3));
  CHECK(f[0] == doctest::Approx(b / z).epsilon(1e-3));
  CHECK(f[1] == doctest::Approx(c / z).epsilon(1e-3));
}

TEST_CASE("sample_next with top-p keeps the fewest most likely ids reaching p, renormalized") {
  // p = 0.6: 0.5 < 0.6, so ids 2 and 0 are kept (0.8) and drawn as 5/8 and 3/8.
  const auto f = frequencies(kLogits, {1.0f, 0.6f});
  CHECK(f[2] == doctest::Approx(0.625).epsilon(1e-3));
  CHECK(f[0] == doctest::Approx(0.375).epsilon(1e-3));
  CHECK(f[1] == 0.0);
  // p = 0.45 is reached by id 2 alone.
  CHECK(frequencies(kLogits, {1.0f, 0.45f})[2] == doctest::Approx(1.0));
  // A tiny p still keeps one id.
  CHECK(sample_next(kLogits, {1.0f, 1e-6f}, 0.999) == 2);
}

TEST_CASE("sample_next is stable at logits of 1e4") {
  const Tensor1 big = {1e4f, 1e4f - 1.0f, -1e4f};
  const auto f = frequencies(big, {1.0f, 1.0f});
  const double e = std::exp(-1.0);
  CHECK(f[0] == doctest::Approx(1.0 / (1.0 + e)).epsilon(1e-3));
  CHECK(f[1] == doctest::Approx(e / (1.0 + e)).epsilon(1e-3));
}

TEST_CASE("sample_next accepts the edges of its ranges and refuses a bad temperature, top_p, u or logit") {
  CHECK(sample_next(kLogits, {0.0f, 1.0f}, 0.0) == 2);
  CHECK(sample_next(kLogits, {1.0f, 1.0f}, 0.999999) == 1);
  CHECK_THROWS_WITH_AS(sample_next(kLogits, {-1.0f, 1.0f}, 0.5), doctest::Contains("temperature"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sample_next(kLogits, {1.0f, 0.0f}, 0.5), doctest::Contains("top_p"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sample_next(kLogits, {1.0f, 1.5f}, 0.5), doctest::Contains("top_p"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sample_next(kLogits, {1.0f, 1.0f}, 1.0), doctest::Contains("u must be in [0, 1)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sample_next(Tensor1::from_shape({0}), {}, 0.5), doctest::Contains("V = 0"),
                       std::invalid_argument);
  // Greedy over a NaN would return a valid-looking id; sampling would divide by a NaN sum.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH_AS(sample_next(Tensor1{0.0f, nan, 1.0f}, {}, 0.5),
                       "sample_next: expected finite logits, given 1 of 3 logits are not finite, the first "
                       "at id 1 (NaN)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sample_next(Tensor1{-inf, 0.0f, inf}, {1.0f, 1.0f}, 0.5),
                       doctest::Contains("given 2 of 3 logits are not finite, the first at id 0 (-inf)"),
                       std::invalid_argument);
}
