// Lesson 06, part 5: lesson 05's decoder gains RoPE through its position hook. Keys are
// rotated before they enter the cache, so cached decode must equal the uncached forward.
#include "rope.hpp"

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"
#include "decoder.hpp"

using namespace attn;

namespace {

// H = 4 query heads of D = 8 (four rotated pairs per head), G key/value heads.
DecoderConfig rope_config(std::size_t n_kv_heads, std::uint64_t seed) {
  DecoderConfig c;
  c.vocab = 48;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = n_kv_heads;
  c.n_layers = 2;
  c.d_ff = 48;
  c.max_seq_len = 20;
  c.seed = seed;
  return c;
}

Tokens random_tokens(std::size_t nb, std::size_t t, std::size_t vocab, std::uint64_t seed) {
  Tokens tokens({nb, t});
  Rng rng(seed);
  for (auto& id : tokens) id = static_cast<std::size_t>(rng.next() % vocab);
  return tokens;
}

Tokens with_column(const Tokens& seq, const TokenColumn& next) {
  Tokens out({seq.shape(0), seq.shape(1) + 1});
  xt::view(out, xt::all(), xt::range(0, seq.shape(1))) = seq;
  xt::view(out, xt::all(), seq.shape(1)) = next;
  return out;
}

/// Prefill of `prompt`, then decode steps (fed tokens drawn at random) up to `total`
/// tokens. Returns the largest |cached - uncached| of any step divided by max|uncached|
/// of that step: the lesson's requirement is <= 1e-5.
double worst_relative_gap(const Decoder& model, const Tokens& prompt, std::size_t total) {
  MultiLayerKVCache cache = model.make_cache(prompt.shape(0));
  const Tensor3 first = model.prefill(prompt, cache);
  const Tensor3 first_ref = model.forward(prompt);
  double worst = max_abs(first - first_ref) / max_abs(first_ref);
  Tokens seq = prompt;
  Rng rng(total * 131 + prompt.shape(1));
  while (seq.shape(1) < total) {
    TokenColumn next = TokenColumn::from_shape({prompt.shape(0)});
    for (auto& id : next) id = static_cast<std::size_t>(rng.next() % model.config().vocab);
    seq = with_column(seq, next);
    const Tensor2 step = model.decode_step(next, cache);  // (B, V), position seq.shape(1) - 1
    const Tensor3 full = model.forward(seq);              // (B, T, V)
    const Tensor2 ref = xt::view(full, xt::all(), seq.shape(1) - 1, xt::all());
    worst = std::max(worst, max_abs(step - ref) / max_abs(ref));
  }
  REQUIRE(cache.length() == total);
  return worst;
}

}  // namespace

TEST_CASE("with RoPE, cached decode logits equal the uncached forward at every step, both pairings, G = H, H/2 and 1") {
  for (RopePairing pairing : {RopePairing::adjacent, RopePairing::half_split})
    for (std::size_t ng : {std::size_t{4}, std::size_t{2}, std::size_t{1}})
      for (std::size_t p : {std::size_t{1}, std::size_t{3}, std::size_t{6}}) {
        CAPTURE(pairing == RopePairing::adjacent);
        CAPTURE(ng);
        CAPTURE(p);
        Decoder model(rope_config(ng, 660 + ng));
        model.set_position_hook(rope_position_hook(pairing));
        CHECK(worst_relative_gap(model, random_tokens(2, p, 48, 670 + p), p + 9) <= 1e-5);
      }
}

TEST_CASE("with RoPE, greedy generation gives the same tokens cached and uncached, and the cache holds prompt + generated") {
  for (RopePairing pairing : {RopePairing::adjacent, RopePairing::half_split})
    for (std::size_t ng : {std::size_t{4}, std::size_t{1}}) {
      CAPTURE(pairing == RopePairing::adjacent);
      CAPTURE(ng);
      Decoder model(rope_config(ng, 680 + ng));
      model.set_position_hook(rope_position_hook(pairing, 500.0));
      const Tokens prompt = random_tokens(3, 4, 48, 690 + ng);
      MultiLayerKVCache cache = model.make_cache(3);
      const Tokens cached = model.generate_cached(prompt, 12, cache);
      const Tokens uncached = model.generate_uncached(prompt, 12);
      CHECK(cached == uncached);
      CHECK(cache.length() == 4 + 12);
    }
}

TEST_CASE("RoPE changes the decoder's logits: positions now reach the scores") {
  // Without the hook the model knows order only through the causal mask; with RoPE the
  // logits at positions > 0 move (position 0 is the identity, so row 0 does not).
  const DecoderConfig config = rope_config(2, 700);
  const Decoder plain(config);
  Decoder rotary(config);
  rotary.set_position_hook(rope_position_hook(RopePairing::half_split));
  const Tokens tokens = random_tokens(2, 6, 48, 701);
  const Tensor3 a = plain.forward(tokens), b = rotary.forward(tokens);
  const Tensor2 a0 = xt::view(a, xt::all(), 0, xt::all()), b0 = xt::view(b, xt::all(), 0, xt::all());
  ATTN_CHECK_CLOSE(b0, a0, tol_relative_to_max(1e-5, a0));
  for (std::size_t t = 1; t < 6; ++t) {
    CAPTURE(t);
    const Tensor2 at = xt::view(a, xt::all(), t, xt::all()), bt = xt::view(b, xt::all(), t, xt::all());
    CHECK(max_abs(bt - at) > 1e-3 * max_abs(at));
  }
}

TEST_CASE("a RoPE hook that restarts positions at 0 on each call breaks cached decode (the pitfall, shown)") {
  // Prefill still matches (its rows do start at 0); the first decode step does not.
  Decoder model(rope_config(2, 710));
  const PositionHook rope = rope_position_hook(RopePairing::adjacent);
  model.set_position_hook([rope](Tensor4& q, Tensor4& k, std::size_t) { rope(q, k, 0); });
  CHECK(worst_relative_gap(model, random_tokens(2, 5, 48, 711), 5) <= 1e-5);  // prefill only
  CHECK(worst_relative_gap(model, random_tokens(2, 5, 48, 711), 6) > 1e-3);   // one decode step
}
