/// @file gguf_writer.hpp
/// @brief A tiny GGUF v3 writer for tests: builds a file in memory and records
///        where each field landed, so that a test can corrupt exactly one field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace attn::gguf::testing {

class Writer {
 public:
  std::uint32_t version = 3;
  std::uint64_t alignment = 32;  ///< used to place tensor data (write general.alignment yourself)

  /// A scalar key-value pair; `type` is the GGUF value type, `bytes` its encoding.
  Writer& kv(const std::string& key, std::uint32_t type, std::vector<std::byte> bytes) {
    kvs_.push_back({key, type, std::move(bytes)});
    return *this;
  }
  Writer& u32(const std::string& key, std::uint32_t v) { return kv(key, 4, le(v)); }
  Writer& f32(const std::string& key, float v) { return kv(key, 6, le(v)); }
  Writer& boolean(const std::string& key, bool v) { return kv(key, 7, {std::byte{v ? std::uint8_t{1} : std::uint8_t{0}}}); }
  Writer& str(const std::string& key, const std::string& v) { return kv(key, 8, string_bytes(v)); }
  Writer& strings(const std::string& key, const std::vector<std::string>& vs) {
    std::vector<std::byte> b = le(std::uint32_t{8});
    append(b, le(static_cast<std::uint64_t>(vs.size())));
    for (const auto& v : vs) append(b, string_bytes(v));
    return kv(key, 9, b);
  }
  Writer& i32s(const std::string& key, const std::vector<std::int32_t>& vs) {
    std::vector<std::byte> b = le(std::uint32_t{5});
    append(b, le(static_cast<std::uint64_t>(vs.size())));
    for (auto v : vs) append(b, le(v));
    return kv(key, 9, b);
  }

  /// A tensor; its data is placed at the next multiple of `alignment`.
  Writer& tensor(const std::string& name, std::vector<std::uint64_t> dims, std::uint32_t type,
                 std::vector<std::byte> data) {
    tensors_.push_back({name, std::move(dims), type, std::move(data)});
    return *this;
  }

  /// The file. `at` then holds the offsets of its fields: "tensor_count", "kv_count",
  /// "key:K" / "value:K" (the value's type field is at value:K - 4), "tensor:N" (its
  /// name length), "n_dims:N", "type:N", "offset:N", "data" (start of the data section).
  std::vector<std::byte> build() {
    std::vector<std::byte> out;
    at.clear();
    append(out, {std::byte{'G'}, std::byte{'G'}, std::byte{'U'}, std::byte{'F'}});
    append(out, le(version));
    at["tensor_count"] = out.size();
    append(out, le(static_cast<std::uint64_t>(tensors_.size())));
    at["kv_count"] = out.size();
    append(out, le(static_cast<std::uint64_t>(kvs_.size())));
    for (const auto& e : kvs_) {
      at["key:" + e.key] = out.size();
      append(out, string_bytes(e.key));
      append(out, le(e.type));
      at["value:" + e.key] = out.size();
      append(out, e.bytes);
    }
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> offsets;
    for (const auto& t : tensors_) {
      offset = (offset + alignment - 1) / alignment * alignment;
      offsets.push_back(offset);
      at["tensor:" + t.name] = out.size();
      append(out, string_bytes(t.name));
      at["n_dims:" + t.name] = out.size();
      append(out, le(static_cast<std::uint32_t>(t.dims.size())));
      for (auto d : t.dims) append(out, le(d));
      at["type:" + t.name] = out.size();
      append(out, le(t.type));
      at["offset:" + t.name] = out.size();
      append(out, le(offset));
      offset += t.data.size();
    }
    if (!tensors_.empty()) {
      out.resize((out.size() + alignment - 1) / alignment * alignment);
      at["data"] = out.size();
      const std::size_t data = out.size();
      for (std::size_t k = 0; k < tensors_.size(); ++k) {
        out.resize(data + offsets[k]);
        append(out, tensors_[k].data);
      }
    }
    return out;
  }

  std::map<std::string, std::size_t> at;

  template <class T>
  static std::vector<std::byte> le(T v) {
    std::vector<std::byte> b(sizeof v);
    std::memcpy(b.data(), &v, sizeof v);
    return b;
  }
  static std::vector<std::byte> string_bytes(const std::string& s) {
    std::vector<std::byte> b = le(static_cast<std::uint64_t>(s.size()));
    for (char c : s) b.push_back(static_cast<std::byte>(c));
    return b;
  }
  static void append(std::vector<std::byte>& out, const std::vector<std::byte>& more) {
    out.insert(out.end(), more.begin(), more.end());
  }

 private:
  struct Kv {
    std::string key;
    std::uint32_t type;
    std::vector<std::byte> bytes;
  };
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type;
    std::vector<std::byte> data;
  };
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

/// Overwrites sizeof(T) bytes of `file` at `offset` with v (little-endian).
template <class T>
void poke(std::vector<std::byte>& file, std::size_t offset, T v) {
  std::memcpy(file.data() + offset, &v, sizeof v);
}

/// `count` bytes 0, 1, 2, ... (mod 256) after `head`.
inline std::vector<std::byte> pattern(std::vector<std::byte> head, std::size_t count) {
  for (std::size_t k = 0; k < count; ++k) head.push_back(static_cast<std::byte>(k * 37 % 256));
  return head;
}

/// A small valid file: every metadata value type, and one tensor of each
/// supported type (F32, F16, Q4_0, Q4_1, Q8_0), 32-byte aligned.
inline Writer sample() {
  Writer w;
  w.str("general.architecture", "llama")
      .u32("general.alignment", 32)
      .kv("test.u8", 0, Writer::le(std::uint8_t{200}))
      .kv("test.i8", 1, Writer::le(std::int8_t{-5}))
      .kv("test.u16", 2, Writer::le(std::uint16_t{65000}))
      .kv("test.i16", 3, Writer::le(std::int16_t{-300}))
      .u32("test.u32", 4000000000u)
      .kv("test.i32", 5, Writer::le(std::int32_t{-7}))
      .f32("test.f32", 0.5f)
      .boolean("test.bool", true)
      .kv("test.u64", 10, Writer::le((std::uint64_t{1} << 40) + 3))
      .kv("test.i64", 11, Writer::le(-(std::int64_t{1} << 40)))
      .kv("test.f64", 12, Writer::le(0.1))
      .strings("tokenizer.ggml.tokens", {"a", "bc", ""})
      .i32s("test.i32s", {1, -2, 3});
  std::vector<std::byte> norm;
  for (float x : {1.0f, 2.0f, 3.0f, 4.0f}) Writer::append(norm, Writer::le(x));
  w.tensor("norm", {4}, 0, norm)
      .tensor("w", {32, 2}, 3, pattern({}, 40))
      .tensor("emb", {32}, 8, pattern({}, 34))
      .tensor("h", {2, 2}, 1, pattern({}, 8))
      .tensor("q", {32}, 2, pattern({}, 18));
  return w;
}

}  // namespace attn::gguf::testing
