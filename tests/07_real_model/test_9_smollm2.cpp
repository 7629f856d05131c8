// Lesson 07 on the real model: SmolLM2-135M-Instruct.Q4_1.gguf (tools/fetch_model.py).
// The references are outputs of Hugging Face transformers + torch, which dequantize the
// same GGUF file with the gguf package: tests/fixtures/model_smollm2.txt, made by
// tests/fixtures/make_model_fixtures.py (run by hand; CI needs neither torch nor Python).
// Without the model every case prints "SKIPPED: ..." (CTest reports it skipped); with
// ATTN_REQUIRE_MODEL=1 in the environment (CI) a missing model fails instead.
#include "llama_model.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <xtensor/xview.hpp>

#include "attn/fixture.hpp"
#include "attn/testing.hpp"
#include <fstream>
#include <sstream>

using namespace attn;

namespace {

/// The parsed file, or nullptr (with the reason printed) when it is absent.
const gguf::File* model_file() {
  static std::optional<gguf::File> file;
  if (!file && std::filesystem::exists(gguf::smollm2_model_path()))
    file = gguf::File::open(gguf::smollm2_model_path());
  if (file) return &*file;
  const std::string why = "the model is not at " + gguf::smollm2_model_path().string() +
                          "; fetch it with `python3 tools/fetch_model.py` (or set ATTN_MODEL_DIR)";
  const char* required = std::getenv("ATTN_REQUIRE_MODEL");
  if (required != nullptr && std::string(required) == "1") FAIL("ATTN_REQUIRE_MODEL=1 but " << why);
  MESSAGE("SKIPPED: " << why);
  return nullptr;
}

/// SmolLM2 on the lesson's code, loaded once (a scaffold throws NotImplemented each time).
const LlamaModel* smollm2() {
  static std::unique_ptr<LlamaModel> model;
  if (model) return model.get();
  const gguf::File* file = model_file();
  if (file == nullptr) return nullptr;
  model = std::make_unique<LlamaModel>(load_llama(*file));
  return model.get();
}

const Fixture& golden() {
  static const Fixture f(fixture_path("model_smollm2.txt"));
  return f;
}

std::vector<std::size_t> ids(const std::string& name) {
  const auto t = golden().get<double, 1>(name);
  return std::vector<std::size_t>(t.begin(), t.end());
}

/// The first 512 token ids of GPL-3 by Hugging Face's tokenizers: the `prefix 512 ...' line of
/// tests/fixtures/tokenizer_smollm2.txt (made by tests/fixtures/make_tokenizer_fixtures.py).
std::vector<std::size_t> gpl3_first_512() {
  std::ifstream in(fixture_path("tokenizer_smollm2.txt"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("prefix 512 ", 0) == 0) {
      std::istringstream words(line.substr(11));
      std::vector<std::size_t> out;
      std::size_t id = 0;
      while (words >> id) out.push_back(id);
      REQUIRE(out.size() == 512);
      return out;
    }
  FAIL("tests/fixtures/tokenizer_smollm2.txt has no line 'prefix 512 ...'");
  return {};
}

Tokens as_tokens(const std::vector<std::size_t>& v) {
  Tokens t = Tokens::from_shape({1, v.size()});
  std::copy(v.begin(), v.end(), t.begin());
  return t;
}

/// The lesson's requirement against the reference: |got - ref| <= 1e-3 * max|ref| for every
/// logit the fixture holds (the 10 largest of each position), and the same 5 largest ids in
/// the same order except where the reference's own logits are closer than that tolerance.
void check_prompt(const LlamaModel& model, const std::string& p) {
  CAPTURE(p);
  const auto prompt = ids(p + ".ids");
  const auto top_ids = golden().get<double, 2>(p + ".top_ids");
  const auto top_logits = golden().get<double, 2>(p + ".top_logits");
  const auto max_abs_ref = golden().get<double, 1>(p + ".max_abs");
  const auto lse_ref = golden().get<double, 1>(p + ".logsumexp");
  const Tensor3 logits = model.forward(as_tokens(prompt));
  REQUIRE(logits.shape(1) == prompt.size());
  double worst = 0.0;  // largest |diff| / max|ref| seen
  for (std::size_t t = 0; t < prompt.size(); ++t) {
    CAPTURE(t);
    const double tol = 1e-3 * max_abs_ref(t);
    for (std::size_t r = 0; r < top_ids.shape(1); ++r) {
      const auto id = static_cast<std::size_t>(top_ids(t, r));
      const double diff = std::abs(double(logits(0, t, id)) - top_logits(t, r));
      worst = std::max(worst, diff / max_abs_ref(t));
      CHECK_MESSAGE(diff <= tol, "logit of id " << id << " at position " << t << ": got "
                                                << logits(0, t, id) << ", expected "
                                                << top_logits(t, r) << " (tol " << tol << ")");
    }
    // log-sum-exp over all 49152 logits: every logit counts, not only the top ten.
    double m = -INFINITY, s = 0.0;
    for (std::size_t v = 0; v < logits.shape(2); ++v) m = std::max(m, double(logits(0, t, v)));
    for (std::size_t v = 0; v < logits.shape(2); ++v) s += std::exp(double(logits(0, t, v)) - m);
    CHECK(std::abs(m + std::log(s) - lse_ref(t)) <= tol);
    // The five largest ids of ours, in order.
    std::vector<std::size_t> order(logits.shape(2));
    for (std::size_t v = 0; v < order.size(); ++v) order[v] = v;
    std::partial_sort(order.begin(), order.begin() + 5, order.end(), [&](std::size_t a, std::size_t b) {
      return logits(0, t, a) > logits(0, t, b);
    });
    for (std::size_t r = 0; r < 5; ++r) {
      if (order[r] == static_cast<std::size_t>(top_ids(t, r))) continue;
      // A swap is allowed only between reference logits closer than the tolerance.
      const bool near_tie = (r > 0 && top_logits(t, r - 1) - top_logits(t, r) <= 2 * tol) ||
                            (top_logits(t, r) - top_logits(t, r + 1) <= 2 * tol);
      CHECK_MESSAGE(near_tie, "position " << t << ": rank " << r << " is id " << order[r]
                                          << ", the reference has id " << top_ids(t, r));
    }
  }
  MESSAGE(p << ": " << prompt.size() << " positions, largest |diff| / max|ref| = " << worst);
}

}  // namespace

TEST_CASE("SmolLM2: llama_config reads 30 layers of 9 query heads over 3 KV heads, and 134.5 M parameters") {
  const gguf::File* file = model_file();
  if (file == nullptr) return;
  const LlamaConfig c = llama_config(*file);
  CHECK(c.n_layers == 30);
  CHECK(c.d_model == 576);
  CHECK(c.n_heads == 9);
  CHECK(c.n_kv_heads == 3);
  CHECK(c.head_dim == 64);
  CHECK(c.d_ff == 1536);
  CHECK(c.vocab == 49152);
  CHECK(c.rms_eps == doctest::Approx(1e-5).epsilon(1e-6));
  CHECK(c.rope_theta == 100000.0);  // transformers reads the same base (the fixture's header)
  const LlamaModel* model = smollm2();
  REQUIRE(model != nullptr);
  CHECK(model->weights().tied);
  // V d + L (2 d + d H D + 2 d G D + H D d + 3 d d_ff) + d, the tied output counted once.
  CHECK(parameter_count(model->weights()) == 134'515'008);
}

TEST_CASE("SmolLM2: logits of a chat prompt, legal text and tricky text match transformers on the same file") {
  const LlamaModel* model = smollm2();
  if (model == nullptr) return;
  for (const std::string p : {"chat", "gpl3", "tricky"}) check_prompt(*model, p);
}

TEST_CASE("SmolLM2: greedy generation with the cache continues the chat prompt as the reference does") {
  const LlamaModel* model = smollm2();
  if (model == nullptr) return;
  const auto prompt = ids("chat.ids");
  const auto expected = ids("chat.greedy");
  ModelCache cache = model->make_cache(1, prompt.size() + expected.size());
  CHECK(generate(*model, prompt, expected.size(), cache) == expected);
}

TEST_CASE("SmolLM2: greedy generation with the cache equals the uncached loop, token for token") {
  const LlamaModel* model = smollm2();
  if (model == nullptr) return;
  const auto prompt = ids("tricky.ids");
  ModelCache cache = model->make_cache(1, prompt.size() + 24);
  CHECK(generate(*model, prompt, 24, cache) == generate_uncached(*model, prompt, 24));
}

TEST_CASE("SmolLM2: prefill and decode steps give the logits of the uncached forward") {
  const LlamaModel* model = smollm2();
  if (model == nullptr) return;
  const auto seq = ids("gpl3.ids");  // 128 tokens: prefill 100, then 8 decode steps
  const Tensor3 full = model->forward(as_tokens(std::vector<std::size_t>(seq.begin(), seq.begin() + 108)));
  ModelCache cache = model->make_cache(1, 108);
  const Tensor3 first = model->prefill(as_tokens(std::vector<std::size_t>(seq.begin(), seq.begin() + 100)), cache);
  const Tensor3 full_first = xt::view(full, xt::all(), xt::range(0, 100), xt::all());
  ATTN_CHECK_CLOSE(first, full_first, tol_relative_to_max(1e-5, full_first));
  for (std::size_t t = 100; t < 108; ++t) {
    CAPTURE(t);
    const Tensor2 step = model->decode_step(TokenColumn({seq[t]}), cache);
    const Tensor2 row = xt::view(full, xt::all(), t, xt::all());
    ATTN_CHECK_CLOSE(step, row, tol_relative_to_max(1e-5, row));
  }
}

TEST_CASE("SmolLM2: the model expanded to MHA reproduces the native logits, with a 3x larger cache") {
  const LlamaModel* model = smollm2();
  if (model == nullptr) return;
  const LlamaModel mha(expand_kv_heads(model->weights()));
  const auto prompt = ids("chat.ids");
  ModelCache native_cache = model->make_cache(1, prompt.size());
  ModelCache mha_cache = mha.make_cache(1, prompt.size());
  const Tensor3 native = model->prefill(as_tokens(prompt), native_cache);
  const Tensor3 expanded = mha.prefill(as_tokens(prompt), mha_cache);
  ATTN_CHECK_CLOSE(expanded, native, tol_relative_to_max(1e-5, native));
  // 2 L G D float32 numbers per token: 46 080 bytes for G = 3, 138 240 for G = 9.
  CHECK(native_cache.bytes_used() == prompt.size() * 46080);
  CHECK(mha_cache.bytes_used() == 3 * native_cache.bytes_used());
}

TEST_CASE("SmolLM2: the next-token NLLs of GPL-3's first 512-token chunk match the reference") {
  const LlamaModel* model = smollm2();
  if (model == nullptr) return;
  const auto chunk = gpl3_first_512();
  const auto expected = golden().get<double, 1>("gpl3_chunk0.nll");  // positions 256 ... 510
  const Tensor3 logits = model->forward(as_tokens(chunk));
  const Tensor2 rows = xt::view(logits, 0, xt::all(), xt::all());
  const auto nll = next_token_nll(rows, chunk, chunk.size() / 2);
  REQUIRE(nll.size() == expected.size());
  double sum = 0.0, sum_ref = 0.0;
  for (std::size_t i = 0; i < nll.size(); ++i) {
    // NLL = logsumexp - logit: each term within the logits' 1e-3 * max|logit|.
    double m = 0.0;
    for (std::size_t v = 0; v < rows.shape(1); ++v) m = std::max(m, std::abs(double(rows(256 + i, v))));
    CHECK(std::abs(nll[i] - expected(i)) <= 2e-3 * m);
    sum += nll[i];
    sum_ref += expected(i);
  }
  MESSAGE("chunk 0: mean NLL " << sum / double(nll.size()) << ", reference " << sum_ref / double(nll.size()));
}
