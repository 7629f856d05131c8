// A well-formed GGUF v3 file: every metadata type and tensor info reads back as written.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "gguf.hpp"
#include "gguf_writer.hpp"

using namespace attn::gguf;
using attn::gguf::testing::sample;
using attn::gguf::testing::Writer;

TEST_CASE("a small GGUF file reads back: header, every metadata type, string arrays") {
  Writer w = sample();
  const auto bytes = w.build();
  const File f = File::parse(bytes, "sample.gguf");
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.size() == bytes.size());
  REQUIRE(f.metadata().size() == 15);
  CHECK(f.metadata()[0].first == "general.architecture");
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_uint("test.u8") == 200);
  CHECK(f.find("test.i8")->i == -5);
  CHECK(f.get_uint("test.u16") == 65000);
  CHECK(f.find("test.i16")->i == -300);
  CHECK(f.get_uint("test.u32") == 4000000000u);
  CHECK(f.find("test.i32")->i == -7);
  CHECK(f.get_float("test.f32") == 0.5);
  CHECK(f.get_bool("test.bool"));
  CHECK(f.get_uint("test.u64") == (std::uint64_t{1} << 40) + 3);
  CHECK(f.find("test.i64")->i == -(std::int64_t{1} << 40));
  CHECK(f.get_float("test.f64") == 0.1);
  const auto& tokens = f.get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens.size() == 3);
  CHECK(tokens[0] == "a");
  CHECK(tokens[1] == "bc");
  CHECK(tokens[2].empty());
  const Value* ints = f.find("test.i32s");
  REQUIRE(ints != nullptr);
  CHECK(ints->type == ValueType::ARRAY);
  CHECK(ints->element_type == ValueType::INT32);
  REQUIRE(ints->count == 3);
  CHECK(ints->element(1).i == -2);
  CHECK(ints->element(2).i == 3);
  CHECK_THROWS_AS(ints->element(3), std::out_of_range);
  CHECK(f.find("no.such.key") == nullptr);
  // Value offsets point at the value in the file.
  CHECK(f.find("test.u32")->offset == w.at.at("value:test.u32"));
}

TEST_CASE("tensor infos: dims innermost first, types, sizes, aligned data") {
  Writer w = sample();
  const auto bytes = w.build();
  const File f = File::parse(bytes);
  REQUIRE(f.tensors().size() == 5);
  CHECK(f.data_offset() == w.at.at("data"));
  CHECK(f.data_offset() % 32 == 0);
  const TensorInfo& wt = f.tensor("w");
  CHECK(wt.type == TensorType::Q4_1);
  CHECK(wt.dims == std::vector<std::uint64_t>{32, 2});
  CHECK(wt.row_length() == 32);
  CHECK(wt.rows() == 2);
  CHECK(wt.elements == 64);
  CHECK(wt.bytes == 40);
  CHECK(wt.data.data() == reinterpret_cast<const std::byte*>(f.tensor("norm").data.data()) + 32);
  CHECK(f.tensor("emb").bytes == 34);
  CHECK(f.tensor("h").bytes == 8);
  CHECK(f.tensor("q").bytes == 18);
  for (const TensorInfo& t : f.tensors()) CHECK(t.offset % 32 == 0);
  float first;
  std::memcpy(&first, f.tensor("norm").data.data(), 4);
  CHECK(first == 1.0f);
  CHECK(f.find_tensor("absent") == nullptr);
  CHECK_THROWS_WITH_AS(f.tensor("absent"), "<memory>: no tensor named 'absent'", std::out_of_range);
}

TEST_CASE("a file with no tensors and no metadata is valid") {
  Writer w;
  const auto bytes = w.build();
  CHECK(bytes.size() == 24);
  const File f = File::parse(bytes);
  CHECK(f.metadata().empty());
  CHECK(f.tensors().empty());
}

TEST_CASE("File::open maps a file from disk, and a missing file is a system_error") {
  const auto bytes = sample().build();
  const auto path = std::filesystem::temp_directory_path() / "attn_gguf_test_sample.gguf";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  {
    const File f = File::open(path);
    CHECK(f.source() == path.string());
    CHECK(f.get_string("general.architecture") == "llama");
    CHECK(f.tensor("w").bytes == 40);
    File moved = File::open(path);
    File other = std::move(moved);
    CHECK(other.tensor("norm").data.size() == 16);
  }
  std::filesystem::remove(path);
  CHECK_THROWS_AS(File::open(path), std::system_error);
  CHECK_THROWS_AS(File::open(std::filesystem::temp_directory_path()), std::system_error);
}

TEST_CASE("typed getters name the key, the expected type and the type found") {
  const File f = File::parse(sample().build(), "s.gguf");
  CHECK_THROWS_WITH_AS(f.get_uint("missing"), "s.gguf: byte 0: metadata 'missing': expected an unsigned integer, found no such key", FormatError);
  CHECK_THROWS_WITH_AS(f.get_string("test.u32"), doctest::Contains("metadata 'test.u32': expected STRING, found UINT32"), FormatError);
  CHECK_THROWS_WITH_AS(f.get_uint("test.i8"), doctest::Contains("expected an unsigned integer, found -5"), FormatError);
  CHECK_THROWS_WITH_AS(f.get_float("test.bool"), doctest::Contains("expected FLOAT32 or FLOAT64, found BOOL"), FormatError);
  CHECK_THROWS_WITH_AS(f.get_bool("test.f32"), doctest::Contains("expected BOOL, found FLOAT32"), FormatError);
  CHECK_THROWS_WITH_AS(f.get_string_array("test.i32s"), doctest::Contains("expected an array of STRING, found an array of INT32"), FormatError);
}
