// Lesson 07, part 1: the model's sizes come from the GGUF metadata (read_llama_config), and
// llama_config refuses what the model could not run. A tiny Llama model is written as a
// GGUF file in memory, so these tests need no download.
#include "llama_model.hpp"

#include <functional>

#include "attn/testing.hpp"
#include "tiny_llama.hpp"

using namespace attn;

namespace {

LlamaConfig config_of(const attn::gguf::testing::Writer& w) {
  const auto bytes = attn::gguf::testing::Writer(w).build();
  return llama_config(attn::gguf::File::parse(bytes, "tiny llama"));
}

}  // namespace

TEST_CASE("llama_config reads every size, RoPE's base and the epsilon from the metadata") {
  tiny::Spec s;
  s.theta = 100000.0;
  s.eps = 3e-6f;
  const LlamaConfig c = config_of(tiny::writer(tiny::make_weights(s)));
  CHECK(c.vocab == s.vocab);  // rows of token_embd.weight: no key holds it
  CHECK(c.d_model == s.d_model);
  CHECK(c.n_layers == s.n_layers);
  CHECK(c.n_heads == s.n_heads);
  CHECK(c.n_kv_heads == s.n_kv_heads);
  CHECK(c.head_dim == s.d_model / s.n_heads);
  CHECK(c.d_ff == s.d_ff);
  CHECK(c.context_length == s.context);
  CHECK(c.rope_theta == doctest::Approx(100000.0));
  CHECK(c.rms_eps == doctest::Approx(3e-6).epsilon(1e-6));
}

TEST_CASE("llama_config takes RoPE's base as 10000 when the file does not say") {
  const tiny::Weights w = tiny::make_weights(tiny::Spec{});
  const LlamaConfig c = config_of(tiny::writer(w, "llama.rope.freq_base"));
  CHECK(c.rope_theta == 10000.0);
}

TEST_CASE("llama_config refers a missing key to the reader's FormatError, naming the key") {
  const tiny::Weights w = tiny::make_weights(tiny::Spec{});
  for (const std::string key : {"llama.block_count", "llama.attention.head_count_kv",
                                "llama.attention.layer_norm_rms_epsilon"}) {
    CAPTURE(key);
    try {
      config_of(tiny::writer(w, key));
      FAIL("no exception for a file without " << key);
    } catch (const attn::gguf::FormatError& e) {
      CHECK(std::string(e.what()).find(key) != std::string::npos);
    }
  }
}

TEST_CASE("llama_config refuses inconsistent heads with a message naming H and G") {
  const tiny::Weights w = tiny::make_weights(tiny::Spec{});  // H = 4, G = 2, d_model 16
  // 4 query heads cannot share 3 KV heads evenly.
  CHECK_THROWS_WITH_AS(config_of(tiny::writer(w, "", "llama.attention.head_count_kv", 3)),
                       doctest::Contains("H = 4 and G = 3"), std::invalid_argument);
  // 16 channels do not split into 3 heads.
  CHECK_THROWS_WITH_AS(config_of(tiny::writer(w, "", "llama.attention.head_count", 3)),
                       doctest::Contains("given 16 and 3"), std::invalid_argument);
  // A size of 0 is refused as it is read, naming its key.
  CHECK_THROWS_WITH_AS(config_of(tiny::writer(w, "", "llama.attention.head_count_kv", 0)),
                       doctest::Contains("llama.attention.head_count_kv must be at least 1, given 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(config_of(tiny::writer(w, "", "llama.attention.head_count", 0)),
                       doctest::Contains("llama.attention.head_count must be at least 1, given 0"),
                       std::invalid_argument);
  // d_model 16 in 8 heads of D = 2 is fine; in 16 heads of D = 1 RoPE has no pairs.
  CHECK_THROWS_WITH_AS(config_of(tiny::writer(w, "", "llama.attention.head_count", 16)),
                       doctest::Contains("D = 1"), std::invalid_argument);
}

TEST_CASE("llama_config reads general.architecture \"llama\" and refuses another") {
  const tiny::Weights w = tiny::make_weights(tiny::Spec{});
  CHECK(config_of(tiny::writer(w)).n_layers == 2);
  auto writer = tiny::writer(w, "general.architecture");
  writer.str("general.architecture", "gpt2");
  CHECK_THROWS_WITH_AS(config_of(writer), doctest::Contains("\"gpt2\""), std::invalid_argument);
}

TEST_CASE("llama_config refuses an epsilon or a RoPE base that is not a number > 0") {
  tiny::Spec s;
  s.eps = 0.0f;
  CHECK_THROWS_WITH_AS(config_of(tiny::writer(tiny::make_weights(s))),
                       doctest::Contains("layer_norm_rms_epsilon must be a finite number > 0, given 0"),
                       std::invalid_argument);
  s.eps = 1e-5f;
  s.theta = -1.0;
  CHECK_THROWS_WITH_AS(config_of(tiny::writer(tiny::make_weights(s))),
                       doctest::Contains("rope.freq_base must be a finite number > 0, given -1"),
                       std::invalid_argument);
}

TEST_CASE("llama_config refuses a rotary dimension count other than the head dimension") {
  const tiny::Weights w = tiny::make_weights(tiny::Spec{});  // D = 16 / 4 = 4
  auto rotating = [&](std::uint32_t n) {
    auto out = tiny::writer(w);
    out.u32("llama.rope.dimension_count", n);
    return config_of(out);
  };
  CHECK(rotating(4).head_dim == 4);  // SmolLM2's file says 64 = D
  // Partial rotary (RoPE on 2 of each head's 4 dimensions) would need another attention.
  CHECK_THROWS_WITH_AS(rotating(2),
                       doctest::Contains("llama_config: llama.rope.dimension_count: RoPE rotates every "
                                         "dimension of a head here (no partial rotary), D = "
                                         "embedding_length / head_count = 4: expected 4, given 2"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(rotating(8), doctest::Contains("expected 4, given 8"), std::invalid_argument);
}

TEST_CASE("llama_config refuses keys asking for what the model does not do, and accepts those that agree") {
  const tiny::Weights w = tiny::make_weights(tiny::Spec{});  // V = 23, D = 4
  auto with = [&](const std::function<void(attn::gguf::testing::Writer&)>& add) {
    auto out = tiny::writer(w);
    add(out);
    return config_of(out);
  };
  using attn::gguf::testing::Writer;
  CHECK(with([](Writer& o) {
          o.u32("llama.attention.key_length", 4).u32("llama.attention.value_length", 4);
          o.u32("llama.vocab_size", 23).u32("llama.expert_count", 0);
          o.str("llama.rope.scaling.type", "none").f32("llama.rope.scaling.factor", 1.0f);
          o.f32("llama.rope.scale_linear", 0.0f);  // 0: unset
        }).vocab == 23);
  CHECK_THROWS_WITH_AS(with([](Writer& o) { o.u32("llama.attention.key_length", 8); }),
                       doctest::Contains("llama.attention.key_length: keys have D = embedding_length / "
                                         "head_count = 4 numbers per head: expected 4, given 8"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(with([](Writer& o) { o.u32("llama.attention.value_length", 2); }),
                       doctest::Contains("llama.attention.value_length: values have D"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(with([](Writer& o) { o.u32("llama.vocab_size", 24); }),
                       doctest::Contains("llama.vocab_size: one token per row of token_embd.weight: "
                                         "expected 23, given 24"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(with([](Writer& o) { o.u32("llama.expert_count", 8); }),
                       doctest::Contains("llama.expert_count: one MLP per block (no mixture of experts): "
                                         "expected 0, given 8"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(with([](Writer& o) { o.str("llama.rope.scaling.type", "linear"); }),
                       doctest::Contains("llama.rope.scaling.type: RoPE is not scaled here: expected "
                                         "\"none\", given \"linear\""),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(with([](Writer& o) { o.f32("llama.rope.scaling.factor", 4.0f); }),
                       doctest::Contains("llama.rope.scaling.factor: RoPE is not scaled here: expected 1 "
                                         "(or 0, unset), given 4"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(with([](Writer& o) { o.f32("llama.rope.scale_linear", 2.0f); }),
                       doctest::Contains("llama.rope.scale_linear: RoPE is not scaled here"),
                       std::invalid_argument);
  // A per-layer array where the code reads one size is the reader's FormatError, naming the key.
  CHECK_THROWS_WITH_AS(config_of([&] {
                         auto out = tiny::writer(w, "llama.feed_forward_length");
                         out.i32s("llama.feed_forward_length", {24, 24});
                         return out;
                       }()),
                       doctest::Contains("metadata 'llama.feed_forward_length': expected an integer, found ARRAY"),
                       attn::gguf::FormatError);
}
