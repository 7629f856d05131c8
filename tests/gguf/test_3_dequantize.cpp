// Dequantization of each block format, on blocks made and decoded by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "dequantize.hpp"
#include "gguf.hpp"
#include "gguf_writer.hpp"

using namespace attn::gguf;
using attn::gguf::testing::Writer;

namespace {

void put_u16(std::vector<std::byte>& b, std::uint16_t v) { Writer::append(b, Writer::le(v)); }

}  // namespace

TEST_CASE("half_to_float: normals, subnormals, signed zero, infinity, NaN") {
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xc000) == -2.0f);
  CHECK(half_to_float(0x3800) == 0.5f);
  CHECK(half_to_float(0x3555) == 0.333251953125f);   // 1.0101010101b x 2^-2
  CHECK(half_to_float(0x7bff) == 65504.0f);          // largest finite half
  CHECK(half_to_float(0x0400) == 0x1p-14f);          // smallest normal
  CHECK(half_to_float(0x0001) == 0x1p-24f);          // smallest subnormal
  CHECK(half_to_float(0x83ff) == -1023 * 0x1p-24f);  // largest subnormal, negative
  CHECK(half_to_float(0x0000) == 0.0f);
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(half_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(half_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7e00)));
}

TEST_CASE("Q4_0: x = (nibble - 8) * d, low nibbles are elements 0..15, high nibbles 16..31") {
  std::vector<std::byte> block;
  put_u16(block, 0x3800);  // d = 0.5
  for (unsigned j = 0; j < 16; ++j) block.push_back(static_cast<std::byte>(j | ((15 - j) << 4)));
  std::vector<float> y(32);
  dequantize(TensorType::Q4_0, block, y);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[static_cast<std::size_t>(j)] == static_cast<float>(j - 8) * 0.5f);
    CHECK(y[static_cast<std::size_t>(j) + 16] == static_cast<float>(7 - j) * 0.5f);
  }
  CHECK(y[0] == -4.0f);
  CHECK(y[16] == 3.5f);
}

TEST_CASE("Q4_1: x = nibble * d + m, low nibbles first") {
  std::vector<std::byte> block;
  put_u16(block, 0x3400);  // d = 0.25
  put_u16(block, 0xbc00);  // m = -1
  for (unsigned j = 0; j < 16; ++j) block.push_back(static_cast<std::byte>(j | ((15 - j) << 4)));
  std::vector<float> y(32);
  dequantize(TensorType::Q4_1, block, y);
  for (int j = 0; j < 16; ++j) {
    CHECK(y[static_cast<std::size_t>(j)] == static_cast<float>(j) * 0.25f - 1.0f);
    CHECK(y[static_cast<std::size_t>(j) + 16] == static_cast<float>(15 - j) * 0.25f - 1.0f);
  }
  CHECK(y[0] == -1.0f);
  CHECK(y[15] == 2.75f);
  CHECK(y[16] == 2.75f);
}

TEST_CASE("Q8_0: x = int8 * d, each block with its own scale") {
  std::vector<std::byte> blocks;
  put_u16(blocks, 0x4000);  // d = 2
  for (int j = 0; j < 32; ++j) blocks.push_back(static_cast<std::byte>(static_cast<std::int8_t>(j * 8 - 128)));
  put_u16(blocks, 0xb800);  // d = -0.5
  for (int j = 0; j < 32; ++j) blocks.push_back(static_cast<std::byte>(static_cast<std::int8_t>(j - 16)));
  std::vector<float> y(64);
  dequantize(TensorType::Q8_0, blocks, y);
  for (int j = 0; j < 32; ++j) {
    CHECK(y[static_cast<std::size_t>(j)] == static_cast<float>(j * 8 - 128) * 2.0f);
    CHECK(y[static_cast<std::size_t>(j) + 32] == static_cast<float>(j - 16) * -0.5f);
  }
  CHECK(y[0] == -256.0f);
  CHECK(y[63] == -7.5f);
}

TEST_CASE("F16 and F32 are converted element by element") {
  std::vector<std::byte> halves;
  for (std::uint16_t h : {std::uint16_t{0x3c00}, std::uint16_t{0xc000}, std::uint16_t{0x0001}, std::uint16_t{0x7bff}})
    put_u16(halves, h);
  std::vector<float> y(4);
  dequantize(TensorType::F16, halves, y);
  CHECK(y == std::vector<float>{1.0f, -2.0f, 0x1p-24f, 65504.0f});
  std::vector<std::byte> floats;
  for (float x : {1.5f, -0.0f, 3e38f}) Writer::append(floats, Writer::le(x));
  std::vector<float> z(3);
  dequantize(TensorType::F32, floats, z);
  CHECK(z == std::vector<float>{1.5f, -0.0f, 3e38f});
}

TEST_CASE("dequantize refuses sizes that are not whole blocks or do not match") {
  std::vector<std::byte> block(20);
  std::vector<float> y(16);
  CHECK_THROWS_WITH_AS(dequantize(TensorType::Q4_1, block, y),
                       "dequantize Q4_1: 16 outputs, expected a multiple of 32", std::invalid_argument);
  std::vector<float> z(64);
  CHECK_THROWS_WITH_AS(dequantize(TensorType::Q4_1, block, z),
                       "dequantize Q4_1: expected 40 bytes for 64 outputs, given 20", std::invalid_argument);
}

TEST_CASE("dequantize_rows reads one row of a tensor in a file") {
  // Two Q4_1 rows: row 0 all nibbles 0 with m = 1; row 1 all nibbles 15, d = 0.5, m = -2.
  std::vector<std::byte> data;
  put_u16(data, 0x3c00);
  put_u16(data, 0x3c00);
  data.resize(20, std::byte{0x00});
  put_u16(data, 0x3800);
  put_u16(data, 0xc000);
  data.resize(40, std::byte{0xff});
  Writer w;
  w.tensor("w", {32, 2}, 3, data);
  const File f = File::parse(w.build());
  const TensorInfo& t = f.tensor("w");
  std::vector<float> row(32);
  dequantize_rows(t, 1, 1, row);
  for (float x : row) CHECK(x == 15 * 0.5f - 2.0f);
  dequantize_rows(t, 0, 1, row);
  for (float x : row) CHECK(x == 1.0f);
  std::vector<float> both(64);
  dequantize_rows(t, 0, 2, both);
  CHECK(both[0] == 1.0f);
  CHECK(both[63] == 5.5f);
  CHECK_THROWS_WITH_AS(dequantize_rows(t, 1, 2, both), "dequantize_rows w: rows [1, 1 + 2) of 2", std::out_of_range);
  CHECK_THROWS_WITH_AS(dequantize_rows(t, 0, 1, both), "dequantize_rows w: expected 32 outputs, given 64",
                       std::invalid_argument);
}

TEST_CASE("first_non_finite finds the first NaN or infinite scale, minimum or value; dequantize refuses it") {
  std::vector<std::byte> blocks;
  for (int b = 0; b < 3; ++b) {
    put_u16(blocks, 0x3c00);
    put_u16(blocks, b == 2 ? 0x7e00 : 0x0000);  // block 2: m = NaN
    blocks.resize(20 * (b + 1), std::byte{0x11});
  }
  const auto bad = first_non_finite(TensorType::Q4_1, blocks);
  REQUIRE(bad.has_value());
  CHECK(bad->block == 2);
  CHECK(bad->byte == 42);
  CHECK(bad->field == "minimum m");
  CHECK(bad->value == "NaN (0x7e00)");
  std::vector<float> y(96);
  CHECK_THROWS_WITH_AS(dequantize(TensorType::Q4_1, blocks, y),
                       "dequantize Q4_1: block 2 of 3: minimum m: expected a finite number, given NaN (0x7e00)",
                       std::invalid_argument);
  // The first 34 bytes read as one Q8_0 block: its scale is 1, its 32 int8 are always finite.
  CHECK_FALSE(first_non_finite(TensorType::Q8_0, std::span(blocks).first(34)).has_value());
  std::vector<std::byte> floats;
  for (float x : {1.0f, -std::numeric_limits<float>::infinity()}) Writer::append(floats, Writer::le(x));
  std::vector<float> z(2);
  CHECK_THROWS_WITH_AS(dequantize(TensorType::F32, floats, z),
                       "dequantize F32: element 1 of 2: value: expected a finite number, given -inf (0xff800000)",
                       std::invalid_argument);
  std::vector<std::byte> halves;
  put_u16(halves, 0x7bff);
  put_u16(halves, 0xfc00);
  CHECK(first_non_finite(TensorType::F16, halves)->value == "-inf (0xfc00)");
  CHECK_FALSE(first_non_finite(TensorType::F16, std::span(halves).first(2)).has_value());
}
