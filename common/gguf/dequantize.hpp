/// @file dequantize.hpp
/// @brief Dequantization of GGUF tensors (F32, F16, Q4_0, Q4_1, Q8_0) to float32.
///        Block layouts and their sources: common/gguf/README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "gguf.hpp"

namespace attn::gguf {

/// IEEE 754 half precision (binary16) bits to float, subnormals, infinities and NaN included.
float half_to_float(std::uint16_t bits);

/// Decodes whole blocks of `type`: `bytes` holds out.size() / block_elements(type)
/// blocks. Throws std::invalid_argument if out.size() is not a multiple of the
/// block or bytes.size() does not match, or if a value, a scale or a minimum is NaN or
/// infinite (first_non_finite), naming the block.
void dequantize(TensorType type, std::span<const std::byte> bytes, std::span<float> out);

/// Rows [first, first + count) of `tensor` (each of tensor.row_length() numbers),
/// written to `out` (count * row_length floats). Throws std::out_of_range if the
/// rows are past tensor.rows(), std::invalid_argument if out has the wrong size.
void dequantize_rows(const TensorInfo& tensor, std::uint64_t first, std::uint64_t count,
                     std::span<float> out);

}  // namespace attn::gguf
