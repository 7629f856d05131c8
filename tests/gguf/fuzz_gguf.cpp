// libFuzzer target over the GGUF reader: any input either parses, and then every
// value, string and tensor can be read and dequantized, or throws FormatError.
// Any other exception, a crash, or a sanitizer report is a bug. Built and run by
// tools/fuzz_gguf.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "dequantize.hpp"
#include "gguf.hpp"

using namespace attn::gguf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const File f = File::parse(bytes, "fuzz");
    std::size_t sink = 0;
    for (const auto& [key, value] : f.metadata()) {
      sink += key.size() + value.str.size();
      if (f.find(key) != &value) __builtin_trap();
      if (value.type == ValueType::ARRAY) {
        for (std::string_view s : value.strings) sink += s.size();
        if (value.element_type != ValueType::STRING)
          for (std::uint64_t k = 0; k < value.count; ++k) sink += value.element(k).u;
      }
    }
    for (const TensorInfo& t : f.tensors()) {
      if (f.find_tensor(t.name) != &t) __builtin_trap();
      std::vector<float> out(t.elements);
      dequantize_rows(t, 0, t.rows(), out);
      for (float x : out) sink += x != 0.0f;
    }
    if (sink == 0xdeadbeef) return 0;  // keep the reads from being optimized away
  } catch (const FormatError&) {
    // A clear refusal: what the reader promises for malformed input.
  }
  return 0;
}
