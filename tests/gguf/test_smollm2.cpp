// The real model: SmolLM2-135M-Instruct.Q4_1.gguf, fetched by tools/fetch_model.py.
// Metadata facts, and rows dequantized by the gguf package from PyPI
// (tests/fixtures/gguf_smollm2.txt, made by tests/fixtures/make_gguf_fixtures.py).
// Without the model every case prints "SKIPPED: ..." (CTest reports it skipped);
// with ATTN_REQUIRE_MODEL=1 in the environment (CI) a missing model fails instead.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dequantize.hpp"
#include "gguf.hpp"

using namespace attn::gguf;

namespace {

/// The model, parsed once; nullopt (with the reason printed) when it is absent.
const File* model() {
  static std::optional<File> file;
  static bool tried = false;
  if (!tried) {
    tried = true;
    const auto path = smollm2_model_path();
    if (std::filesystem::exists(path)) file = File::open(path);
  }
  if (file) return &*file;
  const std::string why = "the model is not at " + smollm2_model_path().string() +
                          "; fetch it with `python3 tools/fetch_model.py` (or set ATTN_MODEL_DIR)";
  const char* required = std::getenv("ATTN_REQUIRE_MODEL");
  if (required != nullptr && std::string(required) == "1") FAIL("ATTN_REQUIRE_MODEL=1 but " << why);
  MESSAGE("SKIPPED: " << why);
  return nullptr;
}

/// The named entries of a fixture file (format of common/attn/fixture.hpp).
std::map<std::string, std::vector<double>> golden() {
  std::map<std::string, std::vector<double>> out;
  std::ifstream in(std::string(ATTN_FIXTURE_DIR) + "/gguf_smollm2.txt");
  REQUIRE_MESSAGE(in.good(), "cannot open tests/fixtures/gguf_smollm2.txt");
  std::string word;
  while (in >> word) {
    if (word[0] == '#') {
      std::getline(in, word);
      continue;
    }
    REQUIRE(word == "tensor");
    std::string name;
    std::size_t rank = 0;
    std::size_t count = 1;
    in >> name >> rank;
    for (std::size_t d = 0; d < rank; ++d) {
      std::size_t n = 0;
      in >> n;
      count *= n;
    }
    std::vector<double> values(count);
    for (double& v : values) in >> v;
    REQUIRE_MESSAGE(in.good(), "fixture entry " << name << " is cut short");
    out[name] = std::move(values);
  }
  return out;
}

}  // namespace

TEST_CASE("SmolLM2-135M: the hyperparameters are those of the model card") {
  const File* f = model();
  if (f == nullptr) return;
  CHECK(f->get_string("general.architecture") == "llama");
  CHECK(f->get_uint("llama.block_count") == 30);
  CHECK(f->get_uint("llama.embedding_length") == 576);
  CHECK(f->get_uint("llama.attention.head_count") == 9);
  CHECK(f->get_uint("llama.attention.head_count_kv") == 3);
  CHECK(f->get_uint("llama.embedding_length") / f->get_uint("llama.attention.head_count") == 64);
  CHECK(f->get_uint("llama.rope.dimension_count") == 64);
  CHECK(f->get_uint("llama.feed_forward_length") == 1536);
  CHECK(f->get_uint("llama.vocab_size") == 49152);
  CHECK(f->get_float("llama.attention.layer_norm_rms_epsilon") == static_cast<double>(1e-5f));
  CHECK(f->get_float("llama.rope.freq_base") == 100000.0);
  // Tied embeddings: no output.weight, so the output projection reuses token_embd.weight.
  CHECK(f->find_tensor("output.weight") == nullptr);
  const TensorInfo& embd = f->tensor("token_embd.weight");
  CHECK(embd.dims == std::vector<std::uint64_t>{576, 49152});
  CHECK(f->tensor("blk.0.attn_k.weight").dims == std::vector<std::uint64_t>{576, 192});
  CHECK(f->tensor("blk.29.ffn_down.weight").dims == std::vector<std::uint64_t>{1536, 576});
}

TEST_CASE("SmolLM2-135M: the vocabulary and merges are string arrays of the right size") {
  const File* f = model();
  if (f == nullptr) return;
  const auto& tokens = f->get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens.size() == 49152);
  CHECK(tokens[0] == "<|endoftext|>");
  CHECK(tokens[1] == "<|im_start|>");
  CHECK(tokens[2] == "<|im_end|>");
  const auto& merges = f->get_string_array("tokenizer.ggml.merges");
  REQUIRE(merges.size() == 48900);
  CHECK(merges[0] == "\xc4\xa0 t");  // "Ġ t": GPT-2's byte-level space, then t
  CHECK(f->get_string("tokenizer.ggml.model") == "gpt2");
  CHECK(f->get_string("tokenizer.ggml.pre") == "smollm");
  CHECK_FALSE(f->get_bool("tokenizer.ggml.add_bos_token"));
  CHECK(f->get_string("tokenizer.chat_template").find("<|im_start|>") != std::string::npos);
}

TEST_CASE("SmolLM2-135M: metadata, counts and offsets agree with the gguf package") {
  const File* f = model();
  if (f == nullptr) return;
  const auto g = golden();
  for (const auto& [name, values] : g) {
    if (name.find(".row.") != std::string::npos || name.rfind("tensor", 0) == 0 || name == "data_offset") continue;
    INFO(name);
    if (name == "llama.rope.freq_base" || name == "llama.attention.layer_norm_rms_epsilon")
      CHECK(f->get_float(name) == values.at(0));
    else
      CHECK(static_cast<double>(f->get_uint(name)) == values.at(0));
  }
  CHECK(static_cast<double>(f->tensors().size()) == g.at("tensor_count").at(0));
  CHECK(static_cast<double>(f->data_offset()) == g.at("data_offset").at(0));
  std::map<std::string, double> by_type;
  for (const TensorInfo& t : f->tensors()) by_type[std::string(to_string(t.type))] += 1;
  CHECK(by_type.size() == 3);  // F32, Q4_1, Q8_0: nothing else to dequantize
  for (const char* type : {"F32", "Q4_1", "Q8_0"}) {
    INFO(type);
    CHECK(by_type[type] == g.at(std::string("tensors_of_type.") + type).at(0));
  }
}

TEST_CASE("SmolLM2-135M: rows of every tensor type dequantize as the gguf package does") {
  const File* f = model();
  if (f == nullptr) return;
  const auto g = golden();
  int rows_checked = 0;
  for (const auto& [name, ref] : g) {
    const auto cut = name.find(".row.");
    if (cut == std::string::npos) continue;
    const TensorInfo& t = f->tensor(name.substr(0, cut));
    const auto row = std::stoull(name.substr(cut + 5));
    std::vector<float> got(t.row_length());
    dequantize_rows(t, row, 1, got);
    REQUIRE(got.size() == ref.size());
    // Both sides compute d * q (+ m) in float32 from the same bits; the fixture's 9
    // digits read back as the same float32, so the values must be identical.
    std::size_t mismatches = 0;
    for (std::size_t k = 0; k < got.size(); ++k)
      if (got[k] != static_cast<float>(ref[k])) ++mismatches;
    INFO(name, ": ", to_string(t.type));
    CHECK(mismatches == 0);
    ++rows_checked;
  }
  CHECK(rows_checked == 6);
}
