// Malformed files: every corruption gives FormatError naming what was expected,
// what was found, and where; never a crash, a hang or a huge allocation.
#include <doctest/doctest.h>

#include <limits>
#include <string>

#include "gguf.hpp"
#include "gguf_writer.hpp"

using namespace attn::gguf;
using attn::gguf::testing::poke;
using attn::gguf::testing::sample;
using attn::gguf::testing::Writer;

namespace {

constexpr std::uint64_t huge = std::uint64_t{1} << 62;

/// The message of the FormatError that parsing `bytes` throws ("" if none).
std::string error_of(const std::vector<std::byte>& bytes) {
  try {
    File::parse(bytes, "bad.gguf");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("truncation at every byte of a small file gives FormatError") {
  const auto bytes = sample().build();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    INFO("truncated to ", n, " of ", bytes.size(), " bytes");
    CHECK_THROWS_WITH_AS(File::parse(cut, "bad.gguf"), doctest::Contains("expected"), FormatError);
  }
  CHECK(error_of({}) == "bad.gguf: byte 0: magic: expected 4 bytes, found only 0 left in a file of 0 bytes");
  const std::vector<std::byte> six(bytes.begin(), bytes.begin() + 6);
  CHECK(error_of(six) == "bad.gguf: byte 4: version: expected 4 bytes, found only 2 left in a file of 6 bytes");
}

TEST_CASE("the last tensor cut short names the tensor and the data section") {
  auto bytes = sample().build();
  bytes.pop_back();
  CHECK(error_of(bytes).find("tensor 'q' data: expected 18 bytes at data offset") != std::string::npos);
}

TEST_CASE("bad magic and bad version") {
  auto bytes = sample().build();
  bytes[3] = std::byte{'G'};
  CHECK(error_of(bytes) == "bad.gguf: byte 0: magic: expected 'GGUF', found 'GGUG'");
  bytes = sample().build();
  poke<std::uint32_t>(bytes, 4, 2);
  CHECK(error_of(bytes) == "bad.gguf: byte 4: version: expected 3, found 2");
  poke<std::uint32_t>(bytes, 4, 0x03000000u);
  CHECK(error_of(bytes) == "bad.gguf: byte 4: version: expected 3, found 3 byte-swapped (a big-endian file)");
}

TEST_CASE("huge tensor and metadata counts are refused before any allocation") {
  Writer w = sample();
  auto bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("kv_count"), std::numeric_limits<std::uint64_t>::max());
  CHECK(error_of(bytes).find("byte 16: metadata count: expected at most ") != std::string::npos);
  CHECK(error_of(bytes).find("found 18446744073709551615") != std::string::npos);
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("tensor_count"), huge);
  CHECK(error_of(bytes).find("byte 8: tensor count: expected at most ") != std::string::npos);
  // A count within the file's size but more than the file holds runs off its end.
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("kv_count"), 20);
  CHECK(error_of(bytes).find("expected") != std::string::npos);
}

TEST_CASE("string lengths past the end of the file or over the caps") {
  Writer w = sample();
  auto bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("key:test.u8"), 70000);
  CHECK(error_of(bytes).find("metadata 2 key length: expected at most 65535 bytes, found 70000") != std::string::npos);
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("key:test.u8"), 5000);
  CHECK(error_of(bytes).find("metadata 2 key length: expected at most the ") != std::string::npos);
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("value:general.architecture"), huge);
  CHECK(error_of(bytes) == "bad.gguf: byte " + std::to_string(w.at.at("value:general.architecture")) +
                               ": metadata 'general.architecture' length: expected at most 1073741824 bytes, found " +
                               std::to_string(huge));
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("tensor:w"), 300);
  CHECK(error_of(bytes).find("tensor 1 name length: expected at most 255 bytes, found 300") != std::string::npos);
}

TEST_CASE("array counts larger than the bytes left, and nested arrays") {
  Writer w = sample();
  auto bytes = w.build();
  const std::size_t tokens = w.at.at("value:tokenizer.ggml.tokens");
  poke<std::uint64_t>(bytes, tokens + 4, huge);
  CHECK(error_of(bytes).find("'tokenizer.ggml.tokens' count: expected at most 268435456, found") != std::string::npos);
  poke<std::uint64_t>(bytes, tokens + 4, 1000000);
  CHECK(error_of(bytes).find("'tokenizer.ggml.tokens' count: expected at most ") != std::string::npos);
  CHECK(error_of(bytes).find("elements of STRING in the") != std::string::npos);
  bytes = w.build();
  poke<std::uint32_t>(bytes, tokens, 9);
  CHECK(error_of(bytes).find("element type: expected a scalar or STRING (nested arrays are not supported), found ARRAY") !=
        std::string::npos);
  poke<std::uint32_t>(bytes, tokens, 13);
  CHECK(error_of(bytes).find("element type: expected a GGUF value type 0..12, found 13") != std::string::npos);
}

TEST_CASE("unknown value types, bools other than 0 or 1, duplicate keys") {
  Writer w = sample();
  auto bytes = w.build();
  poke<std::uint32_t>(bytes, w.at.at("value:test.u8") - 4, 99);
  CHECK(error_of(bytes) == "bad.gguf: byte " + std::to_string(w.at.at("value:test.u8") - 4) +
                               ": metadata 'test.u8' type: expected a GGUF value type 0..12, found 99");
  bytes = w.build();
  poke<std::uint8_t>(bytes, w.at.at("value:test.bool"), 2);
  CHECK(error_of(bytes).find("metadata 'test.bool' (BOOL): expected 0 or 1, found 2") != std::string::npos);
  Writer twice;
  twice.u32("a.b", 1).u32("a.b", 2);
  CHECK(error_of(twice.build()).find("metadata 1 key: expected a key not seen before, found 'a.b' again") !=
        std::string::npos);
}

TEST_CASE("general.alignment must be a UINT32 power of two") {
  for (std::uint32_t bad : {0u, 3u, 48u}) {
    Writer w;
    w.u32("general.alignment", bad);
    CHECK(error_of(w.build()).find("general.alignment: expected a power of two, found " + std::to_string(bad)) !=
          std::string::npos);
  }
  Writer w;
  w.f32("general.alignment", 32.0f);
  CHECK(error_of(w.build()).find("general.alignment: expected UINT32, found FLOAT32") != std::string::npos);
  Writer ok;
  ok.alignment = 64;
  ok.u32("general.alignment", 64).tensor("a", {4}, 0, std::vector<std::byte>(16)).tensor("b", {4}, 0, std::vector<std::byte>(16));
  const File f = File::parse(ok.build());
  CHECK(f.alignment() == 64);
  CHECK(f.tensor("b").offset == 64);
}

TEST_CASE("tensor dims: too many, zero, or overflowing the element count") {
  Writer w = sample();
  auto bytes = w.build();
  poke<std::uint32_t>(bytes, w.at.at("n_dims:norm"), 5);
  CHECK(error_of(bytes).find("tensor 'norm' n_dims: expected at most 4, found 5") != std::string::npos);
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("n_dims:norm") + 4, 0);
  CHECK(error_of(bytes).find("tensor 'norm' dim 0: expected 1..4611686018427387904 (elements below 2^62), found 0") !=
        std::string::npos);
  // 2^32 x 2^32 overflows 64 bits; the second dim is refused.
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("n_dims:w") + 4, std::uint64_t{1} << 32);
  poke<std::uint64_t>(bytes, w.at.at("n_dims:w") + 12, std::uint64_t{1} << 32);
  CHECK(error_of(bytes).find("tensor 'w' dim 1: expected 1..1073741824 (elements below 2^62), found 4294967296") !=
        std::string::npos);
  // Large but representable dims: the size check against the file refuses them.
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("n_dims:w") + 12, std::uint64_t{1} << 40);
  CHECK(error_of(bytes).find("tensor 'w' data: expected 21990232555520 bytes at data offset 32") != std::string::npos);
}

TEST_CASE("tensor types: unknown, or a row length that is not a whole number of blocks") {
  Writer w = sample();
  auto bytes = w.build();
  poke<std::uint32_t>(bytes, w.at.at("type:w"), 12);
  CHECK(error_of(bytes).find("tensor 'w' type: expected a supported type (F32=0, F16=1, Q4_0=2, Q4_1=3, Q8_0=8), found 12") !=
        std::string::npos);
  poke<std::uint32_t>(bytes, w.at.at("type:w"), 0xffffffffu);
  CHECK(error_of(bytes).find("found 4294967295") != std::string::npos);
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("n_dims:emb") + 4, 16);
  CHECK(error_of(bytes).find("tensor 'emb' dim 0: expected a multiple of 32 for Q8_0, found 16") != std::string::npos);
}

TEST_CASE("tensor offsets: misaligned, past the end, overlapping, and duplicate names") {
  Writer w = sample();
  auto bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("offset:w"), 36);
  CHECK(error_of(bytes) == "bad.gguf: byte " + std::to_string(w.at.at("offset:w")) +
                               ": tensor 'w' offset: expected a multiple of the alignment 32, found 36");
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("offset:w"), std::numeric_limits<std::uint64_t>::max() - 31);
  CHECK(error_of(bytes).find("tensor 'w' data: expected 40 bytes at data offset 18446744073709551584 within the") !=
        std::string::npos);
  CHECK(error_of(bytes).find("found an offset past its end") != std::string::npos);
  bytes = w.build();
  poke<std::uint64_t>(bytes, w.at.at("offset:emb"), 32);  // inside 'w' (bytes 32..71)
  CHECK(error_of(bytes).find("tensor 'emb' offset: expected at least 72, past the end of tensor 'w', found 32 (overlapping)") !=
        std::string::npos);
  Writer twice;
  twice.tensor("t", {4}, 0, std::vector<std::byte>(16)).tensor("t", {4}, 0, std::vector<std::byte>(16));
  CHECK(error_of(twice.build()).find("tensor 1 name: expected a name not seen before, found 't' again") !=
        std::string::npos);
}

TEST_CASE("the data section must start inside the file") {
  Writer w;
  w.tensor("t", {8}, 0, std::vector<std::byte>(32));
  auto bytes = w.build();
  bytes.resize(w.at.at("data") - 1);  // cut inside the padding
  CHECK(error_of(bytes).find("data section: expected to start at byte " + std::to_string(w.at.at("data"))) !=
        std::string::npos);
}

TEST_CASE("names with control bytes are shown escaped") {
  Writer w;
  w.str("bad\nkey", "x");
  auto bytes = w.build();
  poke<std::uint32_t>(bytes, w.at.at("value:bad\nkey") - 4, 77);
  CHECK(error_of(bytes).find("metadata 'bad\\x0akey' type") != std::string::npos);
}

TEST_CASE("a NaN or infinite scale, minimum or value is refused, naming the tensor and the block") {
  // 'w' is Q4_1 with rows of two blocks: 64 numbers in 40 bytes, 2 rows.
  auto one_per_block = [](std::uint16_t d, std::uint16_t m) {
    std::vector<std::byte> block = Writer::le(d);
    Writer::append(block, Writer::le(m));
    block.resize(20, std::byte{0x5a});
    return block;
  };
  std::vector<std::byte> data;
  for (int b = 0; b < 4; ++b) Writer::append(data, one_per_block(0x3c00, 0xbc00));  // d = 1, m = -1
  Writer w;
  w.tensor("w", {64, 2}, 3, data);
  const auto valid = w.build();
  CHECK(error_of(valid).empty());
  const std::size_t at = w.at.at("data");
  auto bytes = valid;
  poke<std::uint16_t>(bytes, at + 3 * 20 + 2, 0x7c00);  // block 3 (row 1): m = +inf
  CHECK(error_of(bytes) == "bad.gguf: byte " + std::to_string(at + 62) +
                               ": tensor 'w' (Q4_1) block 3 of 4, in row 1: minimum m: expected a "
                               "finite float16, found +inf (0x7c00)");
  bytes = valid;
  poke<std::uint16_t>(bytes, at + 1 * 20, 0x7e00);  // block 1 (row 0): d = NaN
  CHECK(error_of(bytes) == "bad.gguf: byte " + std::to_string(at + 20) +
                               ": tensor 'w' (Q4_1) block 1 of 4, in row 0: scale d: expected a "
                               "finite float16, found NaN (0x7e00)");
  // The other types of the sample file: Q8_0 and Q4_0 scales, F16 and F32 values.
  Writer s = sample();
  const auto file = s.build();
  const File f = File::parse(file);
  auto data_of = [&](const char* name) { return f.data_offset() + f.tensor(name).offset; };
  bytes = file;
  poke<std::uint16_t>(bytes, data_of("emb"), 0xfc00);
  CHECK(error_of(bytes).find("tensor 'emb' (Q8_0) block 0 of 1, in row 0: scale d: expected a finite float16, "
                             "found -inf (0xfc00)") != std::string::npos);
  bytes = file;
  poke<std::uint16_t>(bytes, data_of("q"), 0xfe01);
  CHECK(error_of(bytes).find("tensor 'q' (Q4_0) block 0 of 1, in row 0: scale d: expected a finite float16, "
                             "found NaN (0xfe01)") != std::string::npos);
  bytes = file;
  poke<std::uint16_t>(bytes, data_of("h") + 6, 0x7c00);  // h is {2, 2}: element 3 is in row 1
  CHECK(error_of(bytes).find("tensor 'h' (F16) element 3 of 4, in row 1: value: expected a finite float16, "
                             "found +inf (0x7c00)") != std::string::npos);
  bytes = file;
  poke<float>(bytes, data_of("norm") + 8, std::numeric_limits<float>::quiet_NaN());
  CHECK(error_of(bytes).find("tensor 'norm' (F32) element 2 of 4, in row 0: value: expected a finite "
                             "float32, found NaN (0x7fc00000)") != std::string::npos);
  // The largest finite half, zero, negative zero and subnormals are numbers like any other.
  bytes = valid;
  poke<std::uint16_t>(bytes, at, 0x7bff);
  poke<std::uint16_t>(bytes, at + 2, 0x8000);
  poke<std::uint16_t>(bytes, at + 20, 0x0001);
  poke<std::uint16_t>(bytes, at + 22, 0x0000);
  CHECK(error_of(bytes).empty());
}
