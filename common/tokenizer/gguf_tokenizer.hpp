/// @file gguf_tokenizer.hpp
/// @brief Builds a Tokenizer from the tokenizer.ggml.* metadata of a GGUF file.
#pragma once

#include <filesystem>

#include "gguf.hpp"
#include "tokenizer/tokenizer.hpp"

namespace attn::tokenizer {

/// The TokenizerSpec a GGUF file describes: tokenizer.ggml.tokens, .merges,
/// .token_type, .pre, .bos_token_id, .eos_token_id, .add_bos_token (the last
/// four optional). Throws attn::gguf::FormatError if a required key is missing
/// or of another type, std::invalid_argument if tokenizer.ggml.model is not
/// "gpt2" (byte-level BPE).
TokenizerSpec spec_from_gguf(const gguf::File& file);

/// Tokenizer(spec_from_gguf(file)).
Tokenizer tokenizer_from_gguf(const gguf::File& file);

/// Opens the GGUF file at `path` and reads its tokenizer (throws as
/// attn::gguf::File::open and tokenizer_from_gguf do).
Tokenizer tokenizer_from_gguf(const std::filesystem::path& path);

}  // namespace attn::tokenizer
