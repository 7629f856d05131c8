#include "tokenizer/gguf_tokenizer.hpp"

#include <stdexcept>
#include <string>

namespace attn::tokenizer {

TokenizerSpec spec_from_gguf(const gguf::File& file) {
  const std::string_view model = file.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw std::invalid_argument(file.source() + ": tokenizer.ggml.model: expected \"gpt2\" (byte-level BPE), given \"" +
                                std::string(model) + "\"");
  TokenizerSpec spec;
  for (auto t : file.get_string_array("tokenizer.ggml.tokens")) spec.tokens.emplace_back(t);
  for (auto m : file.get_string_array("tokenizer.ggml.merges")) spec.merges.emplace_back(m);
  if (const gguf::Value* types = file.find("tokenizer.ggml.token_type")) {
    if (types->type != gguf::ValueType::ARRAY || types->element_type != gguf::ValueType::INT32)
      throw std::invalid_argument(file.source() + ": tokenizer.ggml.token_type: expected an INT32 array");
    for (std::uint64_t k = 0; k < types->count; ++k)
      spec.types.push_back(static_cast<TokenType>(types->element(k).i));
  }
  if (file.find("tokenizer.ggml.pre")) spec.pre = std::string(file.get_string("tokenizer.ggml.pre"));
  auto id = [&](const char* key) -> TokenId {
    if (!file.find(key)) return -1;
    const std::uint64_t v = file.get_uint(key);
    if (v >= spec.tokens.size())
      throw std::invalid_argument(file.source() + ": " + key + ": expected an id below " +
                                  std::to_string(spec.tokens.size()) + ", given " + std::to_string(v));
    return static_cast<TokenId>(v);
  };
  spec.bos = id("tokenizer.ggml.bos_token_id");
  spec.eos = id("tokenizer.ggml.eos_token_id");
  if (file.find("tokenizer.ggml.add_bos_token")) spec.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  return spec;
}

Tokenizer tokenizer_from_gguf(const gguf::File& file) { return Tokenizer(spec_from_gguf(file)); }

Tokenizer tokenizer_from_gguf(const std::filesystem::path& path) {
  return tokenizer_from_gguf(gguf::File::open(path));
}

}  // namespace attn::tokenizer
