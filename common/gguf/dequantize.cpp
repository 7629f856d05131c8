#include "dequantize.hpp"

#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

namespace attn::gguf {

namespace {

std::uint16_t load_u16(const std::byte* p) {
  std::uint16_t x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

unsigned byte_at(const std::byte* p, std::size_t k) { return std::to_integer<unsigned>(p[k]); }

}  // namespace

float half_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  std::uint32_t out;
  if (exponent == 0x1f) {  // infinity or NaN
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal: rebias 15 -> 127
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    out = sign;
  } else {  // subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign != 0 ? -magnitude : magnitude;
  }
  return std::bit_cast<float>(out);
}

void dequantize(TensorType type, std::span<const std::byte> bytes, std::span<float> out) {
  const std::size_t per_block = block_elements(type);
  const std::size_t block_size = block_bytes(type);
  if (out.size() % per_block != 0)
    throw std::invalid_argument("dequantize " + std::string(to_string(type)) + ": " +
                                std::to_string(out.size()) + " outputs, expected a multiple of " +
                                std::to_string(per_block));
  const std::size_t blocks = out.size() / per_block;
  if (bytes.size() != blocks * block_size)
    throw std::invalid_argument("dequantize " + std::string(to_string(type)) + ": expected " +
                                std::to_string(blocks * block_size) + " bytes for " +
                                std::to_string(out.size()) + " outputs, given " + std::to_string(bytes.size()));
  // File::parse refuses such a tensor already; bytes from elsewhere are checked here.
  if (const auto bad = first_non_finite(type, bytes))
    throw std::invalid_argument("dequantize " + std::string(to_string(type)) + ": " +
                                (per_block > 1 ? "block " : "element ") + std::to_string(bad->block) +
                                " of " + std::to_string(blocks) + ": " + std::string(bad->field) +
                                ": expected a finite number, given " + bad->value);
  const std::byte* in = bytes.data();
  float* y = out.data();
  switch (type) {
    case TensorType::F32:
      if (!out.empty()) std::memcpy(y, in, out.size() * sizeof(float));
      return;
    case TensorType::F16:
      for (std::size_t k = 0; k < out.size(); ++k) y[k] = half_to_float(load_u16(in + 2 * k));
      return;
    case TensorType::Q4_0:  // d (f16), qs[16]: x = (nibble - 8) * d; low nibbles first
      for (std::size_t b = 0; b < blocks; ++b, in += block_size, y += per_block) {
        const float d = half_to_float(load_u16(in));
        const std::byte* qs = in + 2;
        for (std::size_t j = 0; j < 16; ++j) {
          y[j] = static_cast<float>(static_cast<int>(byte_at(qs, j) & 0xfu) - 8) * d;
          y[j + 16] = static_cast<float>(static_cast<int>(byte_at(qs, j) >> 4) - 8) * d;
        }
      }
      return;
    case TensorType::Q4_1:  // d (f16), m (f16), qs[16]: x = nibble * d + m; low nibbles first
      for (std::size_t b = 0; b < blocks; ++b, in += block_size, y += per_block) {
        const float d = half_to_float(load_u16(in));
        const float m = half_to_float(load_u16(in + 2));
        const std::byte* qs = in + 4;
        for (std::size_t j = 0; j < 16; ++j) {
          y[j] = static_cast<float>(byte_at(qs, j) & 0xfu) * d + m;
          y[j + 16] = static_cast<float>(byte_at(qs, j) >> 4) * d + m;
        }
      }
      return;
    case TensorType::Q8_0:  // d (f16), qs[32] (int8): x = q * d
      for (std::size_t b = 0; b < blocks; ++b, in += block_size, y += per_block) {
        const float d = half_to_float(load_u16(in));
        for (std::size_t j = 0; j < 32; ++j)
          y[j] = static_cast<float>(static_cast<std::int8_t>(byte_at(in + 2, j))) * d;
      }
      return;
  }
  throw std::invalid_argument("dequantize: unsupported tensor type " +
                              std::to_string(static_cast<std::uint32_t>(type)));
}

void dequantize_rows(const TensorInfo& tensor, std::uint64_t first, std::uint64_t count,
                     std::span<float> out) {
  const std::uint64_t rows = tensor.rows();
  if (first > rows || count > rows - first)
    throw std::out_of_range("dequantize_rows " + std::string(tensor.name) + ": rows [" + std::to_string(first) +
                            ", " + std::to_string(first) + " + " + std::to_string(count) + ") of " +
                            std::to_string(rows));
  const std::uint64_t length = tensor.row_length();
  if (out.size() != count * length)
    throw std::invalid_argument("dequantize_rows " + std::string(tensor.name) + ": expected " +
                                std::to_string(count * length) + " outputs, given " + std::to_string(out.size()));
  const std::uint64_t row_bytes = length / block_elements(tensor.type) * block_bytes(tensor.type);
  dequantize(tensor.type, tensor.data.subspan(first * row_bytes, count * row_bytes), out);
}

}  // namespace attn::gguf
