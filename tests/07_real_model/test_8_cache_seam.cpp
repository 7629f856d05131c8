// Lesson 07: the cache seam (model_cache.hpp). A second LayerCache, written here in plain
// terms, is plugged into the tiny model through make_cache: it keeps every appended key and
// value in tensors that grow, attends with lesson 03's gqa_attention at the offset, and logs
// each call the model makes. The model must give the logits it gives over lesson 04's cache.
#include "llama_model.hpp"

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"
#include "gqa.hpp"  // lesson 03: gqa_attention
#include "tiny_llama.hpp"

using namespace attn;

namespace {

/// One call of the model on a layer's cache: append of Tn positions or attend of Tq queries.
struct Call {
  std::size_t layer;
  char what;  // 'a' append, 't' attend
  std::size_t tokens;
  bool operator==(const Call&) const = default;
};

/// (B, G, T, D) followed by (B, G, Tn, D) along the positions: (B, G, T + Tn, D).
Tensor4 joined(const Tensor4& old, const Tensor4& add) {
  const std::size_t t = old.shape(2), tn = add.shape(2);
  Tensor4 out = Tensor4::from_shape({old.shape(0), old.shape(1), t + tn, old.shape(3)});
  for (std::size_t b = 0; b < out.shape(0); ++b)
    for (std::size_t g = 0; g < out.shape(1); ++g)
      for (std::size_t i = 0; i < t + tn; ++i)
        for (std::size_t c = 0; c < out.shape(3); ++c)
          out(b, g, i, c) = i < t ? old(b, g, i, c) : add(b, g, i - t, c);
  return out;
}

/// Everything stored, nothing preallocated: attention over all of it by lesson 03's
/// gqa_attention with the causal mask at offset length() - Tq.
class GrowingCache final : public LayerCache {
 public:
  GrowingCache(const CacheShape& s, std::size_t layer, std::vector<Call>* log)
      : layer_(layer), log_(log), k_(Tensor4::from_shape({s.batch, s.kv_heads, 0, s.head_dim})), v_(k_) {}
  void append(const Tensor4& k_new, const Tensor4& v_new) override {
    log_->push_back({layer_, 'a', k_new.shape(2)});
    k_ = joined(k_, k_new);
    v_ = joined(v_, v_new);
  }
  Tensor4 attend(const Tensor4& q) const override {
    log_->push_back({layer_, 't', q.shape(2)});
    return gqa_attention(q, k_, v_, Mask::causal, length() - q.shape(2));
  }
  std::size_t length() const override { return k_.shape(2); }
  std::size_t bytes_used() const override { return (k_.size() + v_.size()) * sizeof(float); }

 private:
  std::size_t layer_;
  std::vector<Call>* log_;
  Tensor4 k_, v_;  // (B, G, T, D)
};

/// A maker of GrowingCaches that log into `log`, numbered in the order ModelCache makes them.
LayerCacheMaker growing(std::vector<Call>& log) {
  auto made = std::make_shared<std::size_t>(0);
  return [&log, made](const CacheShape& s) { return std::make_unique<GrowingCache>(s, (*made)++, &log); };
}

Tokens as_tokens(const std::vector<std::size_t>& ids) {
  Tokens t = Tokens::from_shape({1, ids.size()});
  std::copy(ids.begin(), ids.end(), t.begin());
  return t;
}

const std::vector<std::size_t> kTokens = {3, 17, 0, 22, 9, 9, 14, 5, 1, 20, 11};

LlamaModel tiny_model() {
  tiny::Spec s;
  s.theta = 500.0;
  return LlamaModel(load_llama(tiny::file(tiny::make_weights(s))));
}

}  // namespace

TEST_CASE("another LayerCache plugged in through make_cache gives the logits of lesson 04's cache") {
  const LlamaModel model = tiny_model();
  std::vector<Call> log;
  ModelCache kv = model.make_cache(1, 16);
  ModelCache other = model.make_cache(1, 16, growing(log));
  const std::vector<std::size_t> prompt(kTokens.begin(), kTokens.begin() + 4);
  const Tensor3 a = model.prefill(as_tokens(prompt), kv);
  const Tensor3 b = model.prefill(as_tokens(prompt), other);
  ATTN_CHECK_CLOSE(b, a, tol_relative_to_max(1e-5, a));
  for (std::size_t t = 4; t < kTokens.size(); ++t) {
    CAPTURE(t);
    const Tensor2 step_kv = model.decode_step(TokenColumn({kTokens[t]}), kv);
    const Tensor2 step_other = model.decode_step(TokenColumn({kTokens[t]}), other);
    ATTN_CHECK_CLOSE(step_other, step_kv, tol_relative_to_max(1e-5, step_kv));
  }
  CHECK(other.length() == kTokens.size());
  // Both hold 2 L B G T D float32 numbers; ModelCache sums its layers.
  const std::size_t bytes = 2 * 2 * 1 * 2 * kTokens.size() * 4 * sizeof(float);
  CHECK(other.layer(1).bytes_used() == bytes / 2);
  CHECK(other.bytes_used() == bytes);
  CHECK(kv.bytes_used() == bytes);
}

TEST_CASE("every step appends its keys to a layer's cache, then attends over it, layer by layer") {
  const LlamaModel model = tiny_model();
  std::vector<Call> log;
  ModelCache cache = model.make_cache(1, 16, growing(log));
  model.prefill(as_tokens({3, 17, 0}), cache);
  CHECK(log == std::vector<Call>{{0, 'a', 3}, {0, 't', 3}, {1, 'a', 3}, {1, 't', 3}});
  log.clear();
  model.decode_step(TokenColumn({22}), cache);
  CHECK(log == std::vector<Call>{{0, 'a', 1}, {0, 't', 1}, {1, 'a', 1}, {1, 't', 1}});
  log.clear();
  model.forward(as_tokens({3, 17}));  // no cache: no call
  CHECK(log.empty());
}

TEST_CASE("generate runs on any LayerCache: greedy tokens equal those over lesson 04's cache") {
  const LlamaModel model = tiny_model();
  std::vector<Call> log;
  ModelCache kv = model.make_cache(1, 32);
  ModelCache other = model.make_cache(1, 32, growing(log));
  const std::vector<std::size_t> prompt = {4, 8, 15, 16, 0, 3};
  const auto expected = generate(model, prompt, 20, kv);
  CHECK(generate(model, prompt, 20, other) == expected);
  CHECK(other.length() == prompt.size() + 19);
}

TEST_CASE("the model checks the cache's room and shape before any layer's cache is called") {
  const LlamaModel model = tiny_model();
  std::vector<Call> log;
  ModelCache cache = model.make_cache(1, 5, growing(log));
  model.prefill(as_tokens({1, 2, 3}), cache);
  log.clear();
  CHECK_THROWS_WITH_AS(model.prefill(as_tokens({4, 5, 6}), cache),
                       doctest::Contains("holds 3 of 5, given 3 more"), std::out_of_range);
  CHECK_THROWS_WITH_AS(model.decode_step(TokenColumn({23}), cache),
                       doctest::Contains("expected an id < 23, given 23"), std::out_of_range);
  ModelCache two = model.make_cache(2, 5, growing(log));  // a batch of 2 for one sequence
  CHECK_THROWS_WITH_AS(model.prefill(as_tokens({1}), two), doctest::Contains("batch of the cache"),
                       std::invalid_argument);
  CHECK(log.empty());
  CHECK(cache.length() == 3);
  // ModelCache itself refuses a size of 0, a maker that makes nothing and a layer past L.
  CHECK_THROWS_WITH_AS(ModelCache(CacheShape{2, 1, 2, 0, 4}), doctest::Contains("capacity 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(ModelCache(CacheShape{2, 1, 2, 8, 4}, [](const CacheShape&) { return nullptr; }),
                       doctest::Contains("no cache for layer 0"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cache.layer(2), doctest::Contains("expected a layer < 2, given 2"),
                       std::out_of_range);
}
