// Byte-level BPE on hand-made vocabularies: every expected id below is worked
// out by hand from the merges listed beside it.
#include <doctest/doctest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.hpp"

using namespace attn::tokenizer;

namespace {

// A vocabulary of the 256 single bytes (id == byte value), then `extra`
// tokens (given as bytes), then `specials` as control tokens.
struct Toy {
  Tokenizer tok;
  static TokenizerSpec spec(const std::vector<std::string>& extra, const std::vector<std::string>& merges,
                            const std::vector<std::string>& specials = {}, const std::string& pre = "smollm") {
    TokenizerSpec s;
    for (int b = 0; b < 256; ++b) s.tokens.push_back(spell(std::string(1, static_cast<char>(b))));
    for (const auto& e : extra) s.tokens.push_back(spell(e));
    s.types.assign(s.tokens.size(), TokenType::normal);
    for (const auto& sp : specials) {
      s.tokens.push_back(sp);
      s.types.push_back(TokenType::control);
    }
    for (const auto& m : merges) {  // merges given as "left|right" in bytes
      const auto bar = m.find('|');
      s.merges.push_back(spell(m.substr(0, bar)) + " " + spell(m.substr(bar + 1)));
    }
    s.pre = pre;
    return s;
  }
  Toy(const std::vector<std::string>& extra, const std::vector<std::string>& merges,
      const std::vector<std::string>& specials = {}, const std::string& pre = "smollm")
      : tok(spec(extra, merges, specials, pre)) {}
  // The id of the token standing for `bytes`.
  TokenId id(const std::string& bytes) const { return tok.find(spell(bytes)).value(); }
  std::vector<TokenId> ids(std::initializer_list<std::string> pieces) const {
    std::vector<TokenId> out;
    for (const auto& p : pieces) out.push_back(id(p));
    return out;
  }
};

using Pieces = std::vector<std::string>;

}  // namespace

TEST_CASE("the byte-to-unicode map keeps printable bytes and sends the 68 others to U+0100 onward") {
  CHECK(byte_to_unicode('A') == U'A');
  CHECK(byte_to_unicode('!') == U'!');
  CHECK(byte_to_unicode(0xE9) == U'\u00E9');  // é is printable Latin-1
  CHECK(byte_to_unicode(0x00) == U'\u0100');
  CHECK(byte_to_unicode(0x0A) == U'\u010A');  // newline: Ċ
  CHECK(byte_to_unicode(0x20) == U'\u0120');  // space: Ġ
  CHECK(byte_to_unicode(0x7F) == U'\u0121');  // DEL follows the 33 bytes 0x00..0x20
  CHECK(byte_to_unicode(0xA0) == U'\u0142');  // no-break space ends the C1 run 0x7F..0xA0
  CHECK(byte_to_unicode(0xAD) == U'\u0143');  // soft hyphen is the last one
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = byte_to_unicode(static_cast<std::uint8_t>(b));
    seen.insert(cp);
    CHECK(unicode_to_byte(cp) == std::optional<std::uint8_t>(static_cast<std::uint8_t>(b)));
  }
  CHECK(seen.size() == 256);
  CHECK_FALSE(unicode_to_byte(U'\u0144').has_value());
  CHECK(spell("a b\n") == "a\u0120b\u010A");
}

TEST_CASE("merges apply lowest rank first") {
  const Toy bc_first({"bc", "ab"}, {"b|c", "a|b"});
  CHECK(bc_first.tok.encode("abc") == bc_first.ids({"a", "bc"}));
  const Toy ab_first({"ab", "bc"}, {"a|b", "b|c"});
  CHECK(ab_first.tok.encode("abc") == ab_first.ids({"ab", "c"}));
}

TEST_CASE("equal ranks merge left to right, and merged tokens merge again") {
  const Toy toy({"aa", "aaaa"}, {"a|a", "aa|aa"});
  CHECK(toy.tok.encode("aaa") == toy.ids({"aa", "a"}));
  CHECK(toy.tok.encode("aaaa") == toy.ids({"aaaa"}));
  CHECK(toy.tok.encode("aaaaaaa") == toy.ids({"aaaa", "aa", "a"}));
  const Toy chain({"ab", "abc", "abcd"}, {"a|b", "ab|c", "abc|d"});
  CHECK(chain.tok.encode("abcd") == chain.ids({"abcd"}));
  CHECK(chain.tok.encode("abdc") == chain.ids({"ab", "d", "c"}));
}

TEST_CASE("a token in the vocabulary is only reached through the merges") {
  // "abc" is a token, but no merge builds it from "a" "bc".
  const Toy toy({"bc", "abc"}, {"b|c"});
  CHECK(toy.tok.encode("abc") == toy.ids({"a", "bc"}));
}

TEST_CASE("GPT-2 pre-tokenization: words keep their leading space, a run of spaces leaves its last one to the word") {
  const Toy toy({}, {}, {}, "gpt2");
  CHECK(toy.tok.pre_tokenize("Hello world's  end\n") == Pieces{"Hello", " world", "'s", " ", " end", "\n"});
  CHECK(toy.tok.pre_tokenize("a\n\nb") == Pieces{"a", "\n", "\n", "b"});
  CHECK(toy.tok.pre_tokenize("x = 10;  ") == Pieces{"x", " =", " 10", ";", "  "});
  CHECK(toy.tok.pre_tokenize("I'M") == Pieces{"I", "'", "M"});  // contractions are lowercase only
}

TEST_CASE("pre-tokenization uses Unicode classes: letters and numbers of every script") {
  const Toy toy({}, {}, {}, "gpt2");
  CHECK(toy.tok.pre_tokenize("na\u00efve \u6771\u4eac \u0661\u0662!") ==
        Pieces{"na\u00efve", " \u6771\u4eac", " \u0661\u0662", "!"});
  // A combining mark (Mn) is not a letter: it ends the word.
  CHECK(toy.tok.pre_tokenize("e\u0301t") == Pieces{"e", "\u0301", "t"});
}

TEST_CASE("merges never cross a pre-token boundary") {
  const Toy toy({"ab", " ab", "b "}, {"b| ", "a|b", " |ab"});
  CHECK(toy.tok.pre_tokenize("ab ab") == Pieces{"ab", " ab"});
  CHECK(toy.tok.encode("ab ab") == toy.ids({"ab", " ab"}));
}

TEST_CASE("smollm splits every digit alone even where a merge would join them") {
  const Toy smol({"12"}, {"1|2"});
  CHECK(smol.tok.encode("a 123") == smol.ids({"a", " ", "1", "2", "3"}));
  const Toy gpt2({"12"}, {"1|2"}, {}, "gpt2");
  CHECK(gpt2.tok.encode("a 123") == gpt2.ids({"a", " ", "12", "3"}));
}

TEST_CASE("smollm cuts digits out before the GPT-2 regex runs, so spaces before a digit stay one piece") {
  const Toy smol({}, {});
  CHECK(smol.tok.pre_tokenize("x  1") == Pieces{"x", "  ", "1"});
  CHECK(smol.tok.pre_tokenize("\u0661\u0662 \u00b2") == Pieces{"\u0661", "\u0662", " ", "\u00b2"});
  const Toy gpt2({}, {}, {}, "gpt2");
  CHECK(gpt2.tok.pre_tokenize("x  1") == Pieces{"x", " ", " 1"});
}

TEST_CASE("special tokens are recognized whole, leftmost and longest first, or read as text on request") {
  const Toy toy({}, {}, {"<|end|>", "<|end|>!"});
  const TokenId end = toy.tok.find("<|end|>").value(), end_bang = toy.tok.find("<|end|>!").value();
  CHECK(toy.tok.is_special(end));
  CHECK_FALSE(toy.tok.is_special(toy.id("a")));
  CHECK(toy.tok.encode("a<|end|>b") == std::vector<TokenId>{'a', end, 'b'});
  CHECK(toy.tok.encode("<|end|>!<|end|><|end|>") == std::vector<TokenId>{end_bang, end, end});
  CHECK(toy.tok.encode("<|end|") == std::vector<TokenId>{'<', '|', 'e', 'n', 'd', '|'});
  const auto as_text = toy.tok.encode("a<|end|>", Specials::as_text);
  CHECK(as_text.size() == 8);
  CHECK(toy.tok.decode(as_text) == "a<|end|>");
  CHECK(toy.tok.decode(std::vector<TokenId>{end, 'x', end_bang}) == "<|end|>x<|end|>!");
}

TEST_CASE("decode(encode(x)) == x for random valid UTF-8 and for the empty text") {
  const Toy toy({"ab", "abc", " t", " th", "e "}, {"a|b", "ab|c", " |t", " t|h", "e| "}, {"<|end|>"});
  CHECK(toy.tok.encode("").empty());
  CHECK(toy.tok.decode(std::vector<TokenId>{}).empty());
  std::mt19937 rng(20241122);
  std::uniform_int_distribution<int> length(0, 40), plane(0, 9);
  for (int trial = 0; trial < 500; ++trial) {
    std::string text;
    const int n = length(rng);
    for (int i = 0; i < n; ++i) {
      // Mostly ASCII and spaces, then 2-, 3- and 4-byte characters, no surrogates.
      const int kind = plane(rng);
      std::uint32_t cp = 0;
      if (kind < 5) cp = std::uniform_int_distribution<std::uint32_t>(0, 0x7F)(rng);
      else if (kind < 7) cp = std::uniform_int_distribution<std::uint32_t>(0x80, 0x7FF)(rng);
      else if (kind < 9) cp = std::uniform_int_distribution<std::uint32_t>(0x800, 0xFFFF)(rng);
      else cp = std::uniform_int_distribution<std::uint32_t>(0x10000, 0x10FFFF)(rng);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = U' ';
      std::string one;
      // UTF-8 by hand: spell() maps bytes, so write the bytes directly.
      if (cp < 0x80) one += static_cast<char>(cp);
      else if (cp < 0x800) one += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      else if (cp < 0x10000)
        one += {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                static_cast<char>(0x80 | (cp & 0x3F))};
      else
        one += {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
                static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
      text += one;
    }
    REQUIRE_FALSE(find_invalid_utf8(text).has_value());
    INFO("trial " << trial);
    CHECK(toy.tok.decode(toy.tok.encode(text)) == text);
  }
}

TEST_CASE("invalid UTF-8 is rejected with the offending byte and its offset") {
  const Toy toy({}, {});
  CHECK(find_invalid_utf8("ok \xC3\xA9") == std::nullopt);
  CHECK(find_invalid_utf8("ab\xFF") == std::optional<std::size_t>(2));
  CHECK(find_invalid_utf8("\xC0\xAF") == std::optional<std::size_t>(0));           // overlong '/'
  CHECK(find_invalid_utf8("x\xED\xA0\x80") == std::optional<std::size_t>(1));      // a surrogate
  CHECK(find_invalid_utf8("\xE2\x82") == std::optional<std::size_t>(0));           // cut short
  CHECK(find_invalid_utf8("\xF4\x90\x80\x80") == std::optional<std::size_t>(0));   // above U+10FFFF
  CHECK(find_invalid_utf8("\x80") == std::optional<std::size_t>(0));               // a lone continuation
  CHECK_THROWS_WITH_AS(toy.tok.encode("ab\xFF"),
                       "Tokenizer::encode: text is not valid UTF-8: byte 0xFF at offset 2 starts no "
                       "well-formed character",
                       std::invalid_argument);
  CHECK_THROWS_AS(toy.tok.pre_tokenize("\xC0\xAF"), std::invalid_argument);
}

TEST_CASE("a byte without a token is an error, not silently dropped") {
  TokenizerSpec s = Toy::spec({}, {});
  s.tokens[4] = spell("\x04\x04");  // byte 0x04 has no token of its own any more
  const Tokenizer tok(s);
  CHECK_THROWS_WITH_AS(tok.encode("ab\x04"),
                       "Tokenizer: encode: byte 0x04 at offset 2 has no token in this vocabulary, so the "
                       "model cannot read it",
                       std::invalid_argument);
  CHECK(tok.encode("ab") == std::vector<TokenId>{'a', 'b'});
}

TEST_CASE("a malformed vocabulary or merge list is refused with the entry named") {
  auto refused = [](TokenizerSpec s, const std::string& message) {
    CHECK_THROWS_WITH_AS(Tokenizer{std::move(s)}, message.c_str(), std::invalid_argument);
  };
  TokenizerSpec s = Toy::spec({"ab"}, {"a|b"});
  {
    auto t = s;
    t.tokens.push_back("a");
    t.types.push_back(TokenType::normal);
    refused(t, "Tokenizer: token 257 'a' repeats token 97");
  }
  {
    auto t = s;
    t.tokens.push_back("\u4e00");
    t.types.push_back(TokenType::normal);
    refused(t, "Tokenizer: token 257 '\u4e00' holds a character that stands for no byte (at byte 0)");
  }
  {
    auto t = s;
    t.merges.push_back("ab");
    refused(t, "Tokenizer: merge 1 'ab': expected two tokens joined by one space");
  }
  {
    auto t = s;
    t.merges.push_back("b c");
    refused(t, "Tokenizer: merge 1 'b c': the merged token is not in the vocabulary");
  }
  {
    auto t = s;
    t.merges.push_back("a b");
    refused(t, "Tokenizer: merge 1 'a b' repeats an earlier merge");
  }
  {
    auto t = s;
    t.types.pop_back();
    refused(t, "Tokenizer: token types: expected 257 (one per token), given 256");
  }
  {
    auto t = s;
    t.pre = "llama3";
    refused(t, "Tokenizer: pre-tokenizer: expected \"smollm\" or \"gpt2\", given \"llama3\"");
  }
  {
    auto t = s;
    t.bos = 257;
    refused(t, "Tokenizer: BOS id: expected -1 or 0 to 256, given 257");
  }
  const Tokenizer tok(s);
  CHECK_THROWS_WITH_AS(tok.decode(std::vector<TokenId>{1, 257}),
                       "Tokenizer::decode: token id: expected 0 to 256, given 257", std::out_of_range);
  CHECK_THROWS_AS(tok.token_bytes(-1), std::out_of_range);
}

TEST_CASE("a text stream holds back a character until its last byte arrives") {
  const Toy toy({}, {});
  TextStream stream(toy.tok);
  const std::string text = "a\u00e9\U0001F600!";  // 1, 2, 4 and 1 bytes
  std::vector<std::string> out;
  for (unsigned char c : text) out.push_back(stream.push(c));  // one byte per token
  CHECK(out == std::vector<std::string>{"a", "", "\u00e9", "", "", "", "\U0001F600", "!"});
  CHECK(stream.push(0xF0).empty());
  CHECK(stream.flush() == "\xF0");  // generation stopped inside a character
  CHECK(stream.push(0x80) == "\x80");  // a stray continuation byte is not held
}

TEST_CASE("arbitrary bytes either round-trip or are refused as invalid UTF-8, never anything else") {
  const Toy toy({"ab", "\xC3\xA9"}, {"a|b", "\xC3|\xA9"}, {"<|end|>"});
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> length(0, 24), byte(0, 255);
  int valid = 0, refused = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    for (int i = 0, n = length(rng); i < n; ++i) text += static_cast<char>(byte(rng));
    INFO("trial " << trial);
    if (find_invalid_utf8(text)) {
      CHECK_THROWS_AS(toy.tok.encode(text), std::invalid_argument);
      ++refused;
    } else {
      CHECK(toy.tok.decode(toy.tok.encode(text)) == text);
      ++valid;
    }
  }
  CHECK(valid > 50);
  CHECK(refused > 50);
}
