// SmolLM2-135M-Instruct's tokenizer, read from the model's GGUF file, against
// the golden ids of Hugging Face tokenizers (tests/fixtures/tokenizer_smollm2.txt,
// made by tests/fixtures/make_tokenizer_fixtures.py). Every case prints
// "SKIPPED: ..." and returns when the model file is absent.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tokenizer/gguf_tokenizer.hpp"

using namespace attn::tokenizer;

namespace {

// The tokenizer of the model file, or nullptr (after saying why) if it is absent.
const Tokenizer* smollm2() {
  static const std::filesystem::path path = attn::gguf::smollm2_model_path();
  static const std::unique_ptr<Tokenizer> tok =
      std::filesystem::exists(path) ? std::make_unique<Tokenizer>(tokenizer_from_gguf(path)) : nullptr;
  if (!tok)
    std::cout << "SKIPPED: " << path.string()
              << " is absent; fetch it with `python3 tools/fetch_model.py` or point ATTN_MODEL_DIR at "
                 "the folder that holds it\n";
  return tok.get();
}

struct Case {
  std::string name;
  Specials specials = Specials::recognized;
  std::string text;
  std::vector<TokenId> ids;
};

struct Golden {
  std::vector<Case> cases;
  std::string file_path;
  std::size_t file_bytes = 0;
  std::vector<TokenId> prefix;
  std::size_t total = 0;
  std::uint64_t total_hash = 0;
};

std::vector<TokenId> read_ids(std::istringstream& in) {
  std::size_t n = 0;
  in >> n;
  std::vector<TokenId> ids(n);
  for (auto& id : ids)
    if (!(in >> id)) throw std::runtime_error("tokenizer fixture: too few ids");
  return ids;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

// Reads the format described in make_tokenizer_fixtures.py.
const Golden& golden() {
  static const Golden g = [] {
    Golden out;
    const std::string path = std::string(ATTN_FIXTURE_DIR) + "/tokenizer_smollm2.txt";
    std::ifstream file(path);
    if (!file) throw std::runtime_error("cannot open " + path);
    std::string line;
    while (std::getline(file, line)) {
      std::istringstream in(line);
      std::string key;
      in >> key;
      if (key.empty() || key[0] == '#') continue;
      if (key == "case") {
        Case c;
        std::string specials;
        in >> c.name >> specials;
        c.specials = specials == "as_text" ? Specials::as_text : Specials::recognized;
        out.cases.push_back(c);
      } else if (key == "text") {
        std::string hex;
        in >> hex;
        out.cases.back().text = from_hex(hex);
      } else if (key == "ids") {
        out.cases.back().ids = read_ids(in);
      } else if (key == "file") {
        std::string name;
        in >> name >> out.file_path >> out.file_bytes;
      } else if (key == "prefix") {
        out.prefix = read_ids(in);
      } else if (key == "total") {
        std::string hash;
        in >> out.total >> hash;
        out.total_hash = std::stoull(hash, nullptr, 16);
      } else {
        throw std::runtime_error(path + ": unknown record " + key);
      }
    }
    return out;
  }();
  return g;
}

std::uint64_t fnv1a64(const std::vector<TokenId>& ids) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (TokenId id : ids)
    for (int k = 0; k < 4; ++k) {
      h ^= (static_cast<std::uint32_t>(id) >> (8 * k)) & 0xFFu;
      h *= 0x100000001B3ull;
    }
  return h;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("the GGUF file holds SmolLM2's tokenizer: 49152 tokens, 17 control tokens, BOS 1, EOS 2") {
  const Tokenizer* tok = smollm2();
  if (!tok) return;
  CHECK(tok->size() == 49152);
  CHECK(tok->pre() == "smollm");
  CHECK(tok->bos() == 1);
  CHECK(tok->eos() == 2);
  CHECK_FALSE(tok->add_bos());
  int specials = 0;
  for (TokenId id = 0; id < tok->size(); ++id) specials += tok->is_special(id);
  CHECK(specials == 17);
  CHECK(tok->token_bytes(1) == "<|im_start|>");
  CHECK(tok->token_bytes(2) == "<|im_end|>");
}

TEST_CASE("every tricky string encodes token for token as Hugging Face tokenizers does") {
  const Tokenizer* tok = smollm2();
  if (!tok) return;
  REQUIRE(golden().cases.size() >= 30);
  for (const Case& c : golden().cases) {
    INFO("case " << c.name);
    CHECK(tok->encode(c.text, c.specials) == c.ids);
  }
}

TEST_CASE("decode(encode(x)) == x for every tricky string") {
  const Tokenizer* tok = smollm2();
  if (!tok) return;
  for (const Case& c : golden().cases) {
    INFO("case " << c.name);
    CHECK(tok->decode(tok->encode(c.text, c.specials)) == c.text);
  }
}

TEST_CASE("streaming the tokens of every tricky string gives whole characters only, and the same text") {
  const Tokenizer* tok = smollm2();
  if (!tok) return;
  for (const Case& c : golden().cases) {
    INFO("case " << c.name);
    TextStream stream(*tok);
    std::string text;
    for (TokenId id : c.ids) {
      const std::string piece = stream.push(id);
      CHECK_FALSE(find_invalid_utf8(piece).has_value());
      text += piece;
    }
    CHECK(stream.flush().empty());
    CHECK(text == c.text);
  }
}

TEST_CASE("the evaluation text GPL-3 encodes as the reference: first 512 ids, count and hash of all") {
  const Tokenizer* tok = smollm2();
  if (!tok) return;
  const Golden& g = golden();
  if (!std::filesystem::exists(g.file_path)) {
    std::cout << "SKIPPED: " << g.file_path << " is absent (Debian's base-files package installs it)\n";
    return;
  }
  const std::string text = read_file(g.file_path);
  REQUIRE(text.size() == g.file_bytes);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<TokenId> ids = tok->encode(text);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "GPL-3: " << text.size() << " bytes -> " << ids.size() << " tokens in " << ms << " ms\n";
  REQUIRE(ids.size() >= g.prefix.size());
  CHECK(std::vector<TokenId>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(g.prefix.size())) == g.prefix);
  CHECK(ids.size() == g.total);
  CHECK(fnv1a64(ids) == g.total_hash);
  CHECK(tok->decode(ids) == text);
}

TEST_CASE("the chat template's markers are single special tokens, and read as text on request") {
  const Tokenizer* tok = smollm2();
  if (!tok) return;
  // The example of common/tokenizer/README.md: <|im_start|> user \n Hi ! <|im_end|> \n
  CHECK(tok->encode("<|im_start|>user\nHi!<|im_end|>\n") == std::vector<TokenId>{1, 4093, 198, 26843, 17, 2, 198});
  const auto as_text = tok->encode("<|im_start|>", Specials::as_text);
  CHECK(as_text.size() > 1);
  CHECK(std::find(as_text.begin(), as_text.end(), 1) == as_text.end());
  CHECK(tok->decode(as_text) == "<|im_start|>");
}

TEST_CASE("random valid UTF-8 round-trips, except bytes SmolLM2 has no token for, which are refused") {
  const Tokenizer* tok = smollm2();
  if (!tok) return;
  // The 21 bytes that have no token: controls the training data never held,
  // bytes no UTF-8 text contains, and the lead bytes of planes 4 to 11.
  std::vector<int> missing;
  for (int b = 0; b < 256; ++b)
    if (!tok->find(spell(std::string(1, static_cast<char>(b))))) missing.push_back(b);
  CHECK(missing == std::vector<int>{0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2,
                                    0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF});
  std::mt19937 rng(49152);
  std::uniform_int_distribution<int> length(0, 30), kind(0, 9);
  int round_trips = 0, refused = 0;
  for (int trial = 0; trial < 1000; ++trial) {
    std::string text;
    bool representable = true;
    for (int i = 0, n = length(rng); i < n; ++i) {
      const int k = kind(rng);
      std::uint32_t cp = k < 5   ? std::uniform_int_distribution<std::uint32_t>(0, 0x7F)(rng)
                         : k < 7 ? std::uniform_int_distribution<std::uint32_t>(0x80, 0x7FF)(rng)
                         : k < 9 ? std::uniform_int_distribution<std::uint32_t>(0x800, 0xFFFF)(rng)
                                 : std::uniform_int_distribution<std::uint32_t>(0x10000, 0x10FFFF)(rng);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = ' ';
      std::string one;
      if (cp < 0x80) one = {static_cast<char>(cp)};
      else if (cp < 0x800) one = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      else if (cp < 0x10000)
        one = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
               static_cast<char>(0x80 | (cp & 0x3F))};
      else
        one = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
               static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
      for (char c : one)
        representable = representable &&
                        !std::binary_search(missing.begin(), missing.end(), static_cast<unsigned char>(c));
      text += one;
    }
    INFO("trial " << trial);
    if (representable) {
      CHECK(tok->decode(tok->encode(text, Specials::as_text)) == text);
      ++round_trips;
    } else {
      CHECK_THROWS_AS(tok->encode(text), std::invalid_argument);
      ++refused;
    }
  }
  CHECK(round_trips > 100);
  CHECK(refused > 100);
}
