// Lesson 07, part 6: choosing the next token, greedy or sampled with temperature and top-p.
#include "llama_model.hpp"

#include <cmath>

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

TEST_CASE("top_p_nucleus sorts the ids by probability and keeps the fewest reaching top_p") {
  // p = (0.3, 0.2, 0.5) at T = 1: sorted ids 2, 0, 1 with cumulative mass 0.5, 0.8, 1.
  const auto ratio = [](const std::vector<std::pair<std::size_t, double>>& kept, std::size_t i) {
    double sum = 0.0;
    for (const auto& [id, w] : kept) sum += w;
    return kept[i].second / sum;
  };
  const auto all = top_p_nucleus(kLogits, 1.0f, 1.0f);
  REQUIRE(all.size() == 3);
  CHECK(all[0].first == 2);
  CHECK(all[1].first == 0);
  CHECK(all[2].first == 1);
  CHECK(ratio(all, 0) == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(ratio(all, 1) == doctest::Approx(0.3).epsilon(1e-6));
  CHECK(top_p_nucleus(kLogits, 1.0f, 0.5f).size() == 1);  // 0.5 already reaches 0.5
  CHECK(top_p_nucleus(kLogits, 1.0f, 0.6f).size() == 2);
  CHECK(top_p_nucleus(kLogits, 1.0f, 0.01f).size() == 1);  // never empty
  // T = 2 takes the square roots: p proportional to sqrt(0.3), sqrt(0.2), sqrt(0.5).
  const auto warm = top_p_nucleus(kLogits, 2.0f, 1.0f);
  const double z = std::sqrt(0.3) + std::sqrt(0.2) + std::sqrt(0.5);
  CHECK(ratio(warm, 0) == doctest::Approx(std::sqrt(0.5) / z).epsilon(1e-6));
  // Equal probabilities keep the lower id first.
  const auto tied = top_p_nucleus(Tensor1{1.0f, 3.0f, 3.0f, 1.0f}, 1.0f, 1.0f);
  CHECK(tied[0].first == 1);
  CHECK(tied[1].first == 2);
  CHECK(tied[2].first == 0);
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

TEST_CASE("sample_next refuses a bad temperature, top_p or u, naming the value") {
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
}
