#include "tokenizer/tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <queue>
#include <stdexcept>
#include <utility>

namespace attn::tokenizer {

namespace {

// GPT-2's byte-to-unicode table. Bytes that print as one visible Latin-1
// character ('!'..'~', '¡'..'¬', '®'..'ÿ': 188 of them) stand for themselves;
// the other 68 (controls, space, DEL, the C1 block, no-break space, soft hyphen)
// get U+0100, U+0101, ... in byte order.
struct ByteMap {
  std::array<char32_t, 256> to_cp{};
  std::unordered_map<char32_t, std::uint8_t> to_byte;
  ByteMap() {
    auto prints = [](unsigned b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 0x100;
    for (unsigned b = 0; b < 256; ++b) {
      to_cp[b] = prints(b) ? static_cast<char32_t>(b) : next++;
      to_byte.emplace(to_cp[b], static_cast<std::uint8_t>(b));
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the well-formed UTF-8 sequence at text[i], or 0 if there is none
// (Table 3-7 of the Unicode Standard, "Well-Formed UTF-8 Byte Sequences").
std::size_t utf8_length(std::string_view text, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = at(i);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) n = 2;
  else if (b0 == 0xE0) n = 3, lo = 0xA0;
  else if (b0 >= 0xE1 && b0 <= 0xEC) n = 3;
  else if (b0 == 0xED) n = 3, hi = 0x9F;  // no surrogates
  else if (b0 >= 0xEE && b0 <= 0xEF) n = 3;
  else if (b0 == 0xF0) n = 4, lo = 0x90;
  else if (b0 >= 0xF1 && b0 <= 0xF3) n = 4;
  else if (b0 == 0xF4) n = 4, hi = 0x8F;  // nothing above U+10FFFF
  else return 0;
  if (i + n > text.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return n;
}

// Decodes the code point of the well-formed sequence of length n at text[i].
char32_t decode_utf8(std::string_view text, std::size_t i, std::size_t n) {
  auto at = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(text[k])); };
  if (n == 1) return at(i);
  char32_t cp = at(i) & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (at(i + k) & 0x3F);
  return cp;
}

std::string hex_byte(unsigned char b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", b);
  return buf;
}

std::string quoted(std::string_view s) {
  constexpr std::size_t max = 40;
  std::string out = "'";
  out += s.substr(0, max);
  if (s.size() > max) out += "...";
  return out + "'";
}

[[noreturn]] void invalid(const std::string& what) {
  throw std::invalid_argument("Tokenizer: " + what);
}

// The pre-tokenizers, as regular expressions run one after the other: each
// splits every piece the previous one left, keeping the matches and the text
// between them as pieces ("isolated" in Hugging Face tokenizers' terms).
//  - GPT-2's: contractions, letters with an optional leading space, numbers
//    likewise, other symbols likewise, then whitespace; a run of spaces before
//    a word leaves its last space to the word ("\s+(?!\S)").
//    Source: openai/gpt-2 src/encoder.py (the `pat` regex); Hugging Face
//    tokenizers' ByteLevel pre-tokenizer uses the same one.
//  - SmolLM's ("smollm" in GGUF): every numeric code point alone first
//    (tokenizer.json's Digits(individual_digits=true); llama.cpp runs `\p{N}`),
//    then GPT-2's on what lies between.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kDigitPattern = R"(\p{N})";

std::vector<std::string> patterns_of(const std::string& pre) {
  if (pre == "smollm") return {kDigitPattern, kGpt2Pattern};
  if (pre == "gpt2") return {kGpt2Pattern};
  invalid("pre-tokenizer: expected \"smollm\" or \"gpt2\", given \"" + pre + "\"");
}

}  // namespace

char32_t byte_to_unicode(std::uint8_t b) { return byte_map().to_cp[b]; }

std::optional<std::uint8_t> unicode_to_byte(char32_t cp) {
  const auto& m = byte_map().to_byte;
  auto it = m.find(cp);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

std::string spell(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_unicode(static_cast<std::uint8_t>(c)));
  return out;
}

std::optional<std::size_t> find_invalid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

// Compiled PCRE2 patterns, UTF-8 with Unicode properties (PCRE2_UTF | PCRE2_UCP:
// \p{L}, \p{N} and \s follow the Unicode tables), JIT-compiled where possible.
struct Tokenizer::Regexes {
  struct Code {
    std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> code{nullptr, &pcre2_code_free};
  };
  std::vector<Code> stages;

  explicit Regexes(const std::vector<std::string>& patterns) {
    for (const auto& p : patterns) {
      int error = 0;
      PCRE2_SIZE where = 0;
      pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.c_str()), PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP, &error, &where, nullptr);
      if (code == nullptr) throw std::runtime_error("Tokenizer: PCRE2 rejects " + p + ": " + message(error));
      pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
      stages.push_back(Code{});
      stages.back().code.reset(code);
    }
  }

  static std::string message(int error) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(error, buf, sizeof buf);
    return reinterpret_cast<const char*>(buf);
  }

  // Calls emit(piece) for each piece of `text` (valid UTF-8), in order.
  void split(std::string_view text, const std::function<void(std::string_view)>& emit) const {
    std::vector<std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>> data;
    for (const auto& s : stages)
      data.emplace_back(pcre2_match_data_create_from_pattern(s.code.get(), nullptr), &pcre2_match_data_free);
    split_stage(0, text, data, emit);
  }

  template <class Data>
  void split_stage(std::size_t stage, std::string_view text, const Data& data,
                   const std::function<void(std::string_view)>& emit) const {
    if (text.empty()) return;
    if (stage == stages.size()) {
      emit(text);
      return;
    }
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t done = 0, from = 0;
    while (from < text.size()) {
      const int rc = pcre2_match(stages[stage].code.get(), subject, text.size(), from,
                                 PCRE2_NO_UTF_CHECK, data[stage].get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) throw std::runtime_error("Tokenizer: PCRE2 match failed: " + message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data[stage].get());
      if (ov[1] == ov[0]) {  // an empty match (none of these patterns has one): step one character
        from = ov[0] + utf8_length(text, ov[0]);
        continue;
      }
      split_stage(stage + 1, text.substr(done, ov[0] - done), data, emit);
      split_stage(stage + 1, text.substr(ov[0], ov[1] - ov[0]), data, emit);
      done = from = ov[1];
    }
    split_stage(stage + 1, text.substr(done), data, emit);
  }
};

namespace {
std::uint64_t pair_key(TokenId a, TokenId b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
         static_cast<std::uint32_t>(b);
}
}  // namespace

Tokenizer::Tokenizer(TokenizerSpec spec)
    : pre_(std::move(spec.pre)), bos_(spec.bos), eos_(spec.eos), add_bos_(spec.add_bos) {
  regexes_ = std::make_unique<Regexes>(patterns_of(pre_));
  const std::size_t n = spec.tokens.size();
  if (n == 0 || n > 0x7FFFFFFF)
    invalid("vocabulary size: expected 1 to 2^31-1 tokens, given " + std::to_string(n));
  if (!spec.types.empty() && spec.types.size() != n)
    invalid("token types: expected " + std::to_string(n) + " (one per token), given " +
            std::to_string(spec.types.size()));

  bytes_.resize(n);
  special_.assign(n, false);
  spelled_ = std::move(spec.tokens);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& s = spelled_[i];
    const std::string where = "token " + std::to_string(i) + " " + quoted(s);
    if (s.empty()) invalid("token " + std::to_string(i) + " is empty");
    if (find_invalid_utf8(s)) invalid(where + " is not valid UTF-8");
    auto [it, fresh] = by_spelling_.emplace(s, static_cast<TokenId>(i));
    if (!fresh) invalid(where + " repeats token " + std::to_string(it->second));
    if (!spec.types.empty() && spec.types[i] == TokenType::control) {
      special_[i] = true;
      bytes_[i] = s;  // control tokens are stored as their plain text
      specials_.emplace_back(s, static_cast<TokenId>(i));
      continue;
    }
    for (std::size_t k = 0; k < s.size();) {
      const std::size_t len = utf8_length(s, k);
      auto b = unicode_to_byte(decode_utf8(s, k, len));
      if (!b) invalid(where + " holds a character that stands for no byte (at byte " + std::to_string(k) + ")");
      bytes_[i] += static_cast<char>(*b);
      k += len;
    }
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });

  byte_token_.fill(-1);
  for (unsigned b = 0; b < 256; ++b) {
    auto it = by_spelling_.find(spell(std::string(1, static_cast<char>(b))));
    if (it != by_spelling_.end() && !special_[static_cast<std::size_t>(it->second)])
      byte_token_[b] = it->second;
  }

  merges_.reserve(spec.merges.size());
  for (std::size_t r = 0; r < spec.merges.size(); ++r) {
    const std::string& m = spec.merges[r];
    const std::string where = "merge " + std::to_string(r) + " " + quoted(m);
    const auto space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
        m.find(' ', space + 1) != std::string::npos)
      invalid(where + ": expected two tokens joined by one space");
    const auto left = by_spelling_.find(m.substr(0, space));
    const auto right = by_spelling_.find(m.substr(space + 1));
    const auto result = by_spelling_.find(m.substr(0, space) + m.substr(space + 1));
    if (left == by_spelling_.end() || right == by_spelling_.end())
      invalid(where + ": a side is not in the vocabulary");
    if (result == by_spelling_.end()) invalid(where + ": the merged token is not in the vocabulary");
    const std::uint64_t value = (static_cast<std::uint64_t>(r) << 32) | static_cast<std::uint32_t>(result->second);
    if (!merges_.emplace(pair_key(left->second, right->second), value).second)
      invalid(where + " repeats an earlier merge");
  }

  auto check_id = [&](TokenId id, const char* what) {
    if (id < -1 || id >= static_cast<TokenId>(n))
      invalid(std::string(what) + " id: expected -1 or 0 to " + std::to_string(n - 1) + ", given " +
              std::to_string(id));
  };
  check_id(bos_, "BOS");
  check_id(eos_, "EOS");
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

TokenId Tokenizer::size() const { return static_cast<TokenId>(bytes_.size()); }

const std::string& Tokenizer::token_bytes(TokenId id) const {
  if (id < 0 || id >= size())
    throw std::out_of_range("Tokenizer::token_bytes: token id: expected 0 to " + std::to_string(size() - 1) +
                            ", given " + std::to_string(id));
  return bytes_[static_cast<std::size_t>(id)];
}

std::optional<TokenId> Tokenizer::find(std::string_view spelled) const {
  auto it = by_spelling_.find(std::string(spelled));
  if (it == by_spelling_.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(TokenId id) const {
  return id >= 0 && id < size() && special_[static_cast<std::size_t>(id)];
}

std::string Tokenizer::decode(std::span<const TokenId> ids) const {
  std::string out;
  for (TokenId id : ids) {
    if (id < 0 || id >= size())
      throw std::out_of_range("Tokenizer::decode: token id: expected 0 to " + std::to_string(size() - 1) +
                              ", given " + std::to_string(id));
    out += bytes_[static_cast<std::size_t>(id)];
  }
  return out;
}

namespace {
void require_utf8(std::string_view text, const char* where) {
  if (auto bad = find_invalid_utf8(text))
    throw std::invalid_argument(std::string(where) + ": text is not valid UTF-8: byte " +
                                hex_byte(static_cast<unsigned char>(text[*bad])) + " at offset " +
                                std::to_string(*bad) + " starts no well-formed character");
}
}  // namespace

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  require_utf8(text, "Tokenizer::pre_tokenize");
  std::vector<std::string> pieces;
  regexes_->split(text, [&](std::string_view p) { pieces.emplace_back(p); });
  return pieces;
}

// Byte-pair merging of one pre-tokenized piece. Symbols form a linked list;
// a min-heap holds candidate adjacent pairs by (merge rank, position), so the
// best-ranked pair merges first and equal ranks merge left to right. An entry
// whose symbols changed since it was pushed is stale and skipped.
void Tokenizer::bpe(std::string_view piece, std::vector<TokenId>& out) const {
  struct Symbol {
    TokenId id;
    int prev, next;
  };
  struct Candidate {
    std::uint32_t rank;
    int left, right;
    TokenId a, b;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  const int n = static_cast<int>(piece.size());
  std::vector<Symbol> sym(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    sym[static_cast<std::size_t>(i)] = {byte_token_[static_cast<unsigned char>(piece[static_cast<std::size_t>(i)])],
                                        i - 1, i + 1 < n ? i + 1 : -1};

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int left) {
    if (left < 0) return;
    const int right = sym[static_cast<std::size_t>(left)].next;
    if (right < 0) return;
    const TokenId a = sym[static_cast<std::size_t>(left)].id, b = sym[static_cast<std::size_t>(right)].id;
    auto it = merges_.find(pair_key(a, b));
    if (it != merges_.end()) heap.push({static_cast<std::uint32_t>(it->second >> 32), left, right, a, b});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& l = sym[static_cast<std::size_t>(c.left)];
    if (l.id != c.a || l.next != c.right || sym[static_cast<std::size_t>(c.right)].id != c.b) continue;
    Symbol& r = sym[static_cast<std::size_t>(c.right)];
    l.id = static_cast<TokenId>(merges_.at(pair_key(c.a, c.b)) & 0xFFFFFFFFu);
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<std::size_t>(r.next)].prev = c.left;
    r.id = -1;
    consider(l.prev);
    consider(c.left);
  }
  for (int i = n > 0 ? 0 : -1; i >= 0; i = sym[static_cast<std::size_t>(i)].next)
    out.push_back(sym[static_cast<std::size_t>(i)].id);
}

void Tokenizer::encode_ordinary(std::string_view text, std::size_t offset, std::vector<TokenId>& out) const {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (byte_token_[b] < 0)
      invalid("encode: byte " + hex_byte(b) + " at offset " + std::to_string(offset + i) +
              " has no token in this vocabulary, so the model cannot read it");
  }
  regexes_->split(text, [&](std::string_view piece) { bpe(piece, out); });
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, Specials specials) const {
  require_utf8(text, "Tokenizer::encode");
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 1);
  if (specials == Specials::as_text || specials_.empty()) {
    encode_ordinary(text, 0, out);
    return out;
  }
  // Leftmost special token first, the longest one where several start at the
  // same place; next[k] caches where special k next occurs.
  std::vector<std::size_t> next(specials_.size());
  for (std::size_t k = 0; k < specials_.size(); ++k) next[k] = text.find(specials_[k].first);
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t best = std::string_view::npos, which = 0;
    for (std::size_t k = 0; k < specials_.size(); ++k) {
      if (next[k] != std::string_view::npos && next[k] < pos) next[k] = text.find(specials_[k].first, pos);
      if (next[k] < best) best = next[k], which = k;  // sorted longest first: ties keep the longest
    }
    if (best == std::string_view::npos) break;
    encode_ordinary(text.substr(pos, best - pos), pos, out);
    out.push_back(specials_[which].second);
    pos = best + specials_[which].first.size();
  }
  encode_ordinary(text.substr(pos), pos, out);
  return out;
}

std::string TextStream::push(TokenId id) {
  pending_ += tok_->token_bytes(id);
  // Where the last character starts; hold it back if its sequence is longer
  // than the bytes there are. Anything else (complete, or not UTF-8 at all) goes out.
  std::size_t ready = pending_.size();
  for (std::size_t back = 1; back <= 3 && back <= pending_.size(); ++back) {
    const auto c = static_cast<unsigned char>(pending_[pending_.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (need > back) ready = pending_.size() - back;
    break;
  }
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string TextStream::flush() { return std::exchange(pending_, std::string()); }

}  // namespace attn::tokenizer
