/// @file tokenizer.hpp
/// @brief Byte-level BPE, the tokenizer of SmolLM2 (and of GPT-2): text to token
///        ids and back, built from the vocabulary and merges a GGUF file stores.
///
/// How it works, with sources: common/tokenizer/README.md. In short, encode()
///   1. cuts out the special tokens (`<|im_start|>` ...), then on each stretch of
///      ordinary text
///   2. pre-tokenizes with the model's regular expressions (PCRE2, Unicode classes),
///   3. writes each piece's UTF-8 bytes as one symbol per byte and applies the
///      merges, lowest rank first, until none applies; each symbol is a token.
/// decode() concatenates the bytes of the tokens.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attn::tokenizer {

/// A token id: an index into the vocabulary.
using TokenId = std::int32_t;

/// GGUF's token types (tokenizer.ggml.token_type), llama.cpp's numbering.
enum class TokenType : std::int32_t {
  undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6,
};

/// The code point GPT-2's byte-to-unicode map gives byte `b`: printable Latin-1
/// bytes stand for themselves, the 68 others for U+0100 + k in byte order
/// (space 0x20 is U+0120 'Ġ', newline 0x0A is U+010A 'Ċ').
char32_t byte_to_unicode(std::uint8_t b);

/// The byte that `cp` stands for, or nothing if `cp` is not one of the 256 code
/// points byte_to_unicode() produces.
std::optional<std::uint8_t> unicode_to_byte(char32_t cp);

/// `bytes` spelled as a vocabulary entry is: each byte as its byte_to_unicode()
/// code point, UTF-8 encoded ("a b" -> "aĠb").
std::string spell(std::string_view bytes);

/// Byte offset of the first byte of `text` that is not part of well-formed UTF-8
/// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or
/// nothing if `text` is valid.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

/// Whether encode() treats special-token text as the special token or as text.
enum class Specials { recognized, as_text };

/// What a tokenizer is built from: plain data, as a GGUF file stores it
/// (tokenizer_from_gguf() in gguf_tokenizer.hpp reads it from a file).
struct TokenizerSpec {
  std::vector<std::string> tokens;  ///< tokenizer.ggml.tokens, spelled as spell() writes bytes
  std::vector<std::string> merges;  ///< tokenizer.ggml.merges, "left right", best first
  std::vector<TokenType> types;     ///< tokenizer.ggml.token_type; empty: all normal
  std::string pre = "smollm";       ///< tokenizer.ggml.pre: "smollm" or "gpt2"
  TokenId bos = -1;                 ///< tokenizer.ggml.bos_token_id, -1 if none
  TokenId eos = -1;                 ///< tokenizer.ggml.eos_token_id, -1 if none
  bool add_bos = false;             ///< tokenizer.ggml.add_bos_token
};

/// A byte-level BPE tokenizer. Immutable after construction; encode() and
/// decode() may run concurrently from several threads.
class Tokenizer {
 public:
  /// Builds the tokenizer. Throws std::invalid_argument, naming the entry, if a
  /// token is empty or repeated, a normal token is not spelled with the 256
  /// byte code points, a merge is not two tokens joined by one space or its
  /// result is not in the vocabulary, `types` has another length than `tokens`,
  /// `pre` is not a known pre-tokenizer, or bos/eos are outside the vocabulary.
  explicit Tokenizer(TokenizerSpec spec);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  /// The token ids of `text` (UTF-8). No BOS is added (see add_bos()).
  /// With Specials::recognized, the text of a control token (e.g. `<|im_start|>`)
  /// becomes that token; with Specials::as_text it is encoded like any text.
  /// Throws std::invalid_argument if `text` is not valid UTF-8 (naming the byte
  /// offset), or if it holds a byte the vocabulary has no token for (naming the
  /// byte and offset; SmolLM2 lacks 21 of the 256, e.g. 0x04, and the reference
  /// tokenizers drop such bytes silently, which would break decode(encode(x)) == x).
  std::vector<TokenId> encode(std::string_view text,
                              Specials specials = Specials::recognized) const;

  /// The bytes of the tokens, concatenated. A token may hold part of a UTF-8
  /// character, so a prefix of the ids can decode to an incomplete character.
  /// Throws std::out_of_range for an id outside [0, size()).
  std::string decode(std::span<const TokenId> ids) const;

  /// The pieces that pre-tokenization cuts `text` into (ordinary text, no special
  /// tokens), in order; their concatenation is `text`. Throws as encode() does
  /// for invalid UTF-8.
  std::vector<std::string> pre_tokenize(std::string_view text) const;

  /// The bytes token `id` stands for; throws std::out_of_range outside [0, size()).
  const std::string& token_bytes(TokenId id) const;
  /// The id of the vocabulary entry spelled `spelled`, if there is one.
  std::optional<TokenId> find(std::string_view spelled) const;
  /// True for control tokens (`<|endoftext|>`, `<|im_start|>` ...).
  bool is_special(TokenId id) const;

  TokenId size() const;                     ///< number of tokens in the vocabulary
  TokenId bos() const { return bos_; }      ///< beginning-of-sequence id, -1 if none
  TokenId eos() const { return eos_; }      ///< end-of-sequence id, -1 if none
  bool add_bos() const { return add_bos_; } ///< whether the model expects BOS first
  const std::string& pre() const { return pre_; }  ///< the pre-tokenizer's name

 private:
  struct Regexes;
  void bpe(std::string_view piece, std::vector<TokenId>& out) const;
  void encode_ordinary(std::string_view text, std::size_t offset, std::vector<TokenId>& out) const;

  std::vector<std::string> bytes_;                       // (V): what each token stands for
  std::vector<std::string> spelled_;                     // (V): the vocabulary's spelling
  std::vector<bool> special_;                            // (V): control token?
  std::unordered_map<std::string, TokenId> by_spelling_;
  std::array<TokenId, 256> byte_token_{};                // token of each single byte, -1 if none
  std::unordered_map<std::uint64_t, std::uint64_t> merges_;  // (left, right) -> (rank, result)
  std::vector<std::pair<std::string, TokenId>> specials_;     // longest text first
  std::unique_ptr<Regexes> regexes_;
  std::string pre_;
  TokenId bos_ = -1, eos_ = -1;
  bool add_bos_ = false;
};

/// Turns generated tokens into text as they arrive. A token may end inside a
/// character (😀 is three SmolLM2 tokens), so the bytes of an unfinished UTF-8
/// sequence at the end are held back until the token that completes it.
class TextStream {
 public:
  /// Reads token bytes from `tok`, which must outlive the stream.
  explicit TextStream(const Tokenizer& tok) : tok_(&tok) {}
  /// The text that token `id` completes (possibly empty). Throws
  /// std::out_of_range as Tokenizer::token_bytes() does.
  std::string push(TokenId id);
  /// The bytes still held back (an unfinished sequence when generation stops), as they are.
  std::string flush();

 private:
  const Tokenizer* tok_;
  std::string pending_;
};

}  // namespace attn::tokenizer
