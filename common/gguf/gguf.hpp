/// @file gguf.hpp
/// @brief A read-only GGUF v3 reader: metadata, tensor infos, and the tensors'
///        bytes, memory-mapped; dequantization to float32 lives in dequantize.hpp.
///
/// Format summary and sources: common/gguf/README.md. Every length, count,
/// offset, alignment and size read from the file is checked against the file's
/// size and against overflow before it is used, so a malformed file throws
/// FormatError instead of reading out of bounds or allocating without limit.
/// Depends only on the C++ standard library (and POSIX mmap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attn::gguf {

/// A file that is not a well-formed GGUF v3 file. what() reads
/// "<source>: byte <offset>: <what>: expected <X>, found <Y>".
class FormatError : public std::runtime_error {
 public:
  FormatError(const std::string& source, std::uint64_t offset, const std::string& what,
              const std::string& expected, const std::string& found);
  /// Byte offset in the file where the problem was found.
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::uint64_t offset_;
};

/// Type tag of a metadata value (numbering of the GGUF spec).
enum class ValueType : std::uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
/// "UINT32", "STRING", ...
std::string_view to_string(ValueType type);

/// Tensor storage types this reader knows (ggml's numbering).
enum class TensorType : std::uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8 };
/// "F32", "Q4_1", ...
std::string_view to_string(TensorType type);
/// Elements per block: 1 for F32/F16, 32 for the Q types.
std::size_t block_elements(TensorType type);
/// Bytes per block: 4, 2, 18 (Q4_0), 20 (Q4_1), 34 (Q8_0).
std::size_t block_bytes(TensorType type);

/// A stored number that is NaN or infinite: found by first_non_finite.
struct NonFinite {
  std::uint64_t block = 0;  ///< which block (for F32 and F16: which element) of the bytes
  std::uint64_t byte = 0;   ///< offset of the number in the bytes given
  std::string_view field;   ///< "value" (F32, F16), "scale d", or "minimum m" (Q4_1)
  std::string value;        ///< "NaN (0x7e00)", "+inf (0x7f800000)", ...
};

/// The first number of `bytes` (whole blocks of `type`) that is not finite: an F32 or F16
/// value, or the float16 scale d (and, in Q4_1, minimum m) of a quantized block. A trained
/// model holds none; one such scale makes its 32 weights NaN or infinite, and every logit
/// after them. The 4- and 8-bit integers of a block are always finite. std::nullopt if all
/// are finite; a trailing partial block is not read.
std::optional<NonFinite> first_non_finite(TensorType type, std::span<const std::byte> bytes);

/// One metadata value. Scalars are held decoded; arrays keep their element type
/// and their raw little-endian bytes (numbers) or views of their strings.
/// Strings are views into the mapped file: valid while the File lives.
struct Value {
  ValueType type = ValueType::UINT8;
  std::uint64_t offset = 0;  ///< where the value starts in the file
  // Scalars: exactly one of these is meaningful, by `type`.
  std::uint64_t u = 0;       ///< UINT8/16/32/64 and BOOL (0 or 1)
  std::int64_t i = 0;        ///< INT8/16/32/64
  double f = 0.0;            ///< FLOAT32/64
  std::string_view str;      ///< STRING
  // Arrays.
  ValueType element_type = ValueType::UINT8;  ///< type of every element (never ARRAY)
  std::uint64_t count = 0;                    ///< number of elements
  std::span<const std::byte> numbers;         ///< count * element size raw bytes (numeric arrays)
  std::vector<std::string_view> strings;      ///< the elements of a STRING array

  /// Element `k` of a numeric array as the scalar Value it would be.
  /// Throws std::out_of_range if k >= count, std::invalid_argument for a STRING array.
  Value element(std::uint64_t k) const;
};

/// One tensor's description. dims[0] is the innermost (contiguous) dimension,
/// as in ggml: a matrix W with `rows` rows of `cols` numbers has dims {cols, rows}.
struct TensorInfo {
  std::string_view name;
  std::vector<std::uint64_t> dims;  ///< 0 to 4 dimensions, innermost first
  TensorType type = TensorType::F32;
  std::uint64_t offset = 0;         ///< relative to the start of the data section
  std::uint64_t elements = 0;       ///< product of dims
  std::uint64_t bytes = 0;          ///< elements / block_elements * block_bytes
  std::uint64_t info_offset = 0;    ///< where this tensor info starts in the file
  std::span<const std::byte> data;  ///< the tensor's bytes in the mapped file

  /// dims[0]: numbers per row (1 for a 0-dimensional tensor).
  std::uint64_t row_length() const { return dims.empty() ? 1 : dims[0]; }
  /// elements / row_length(): rows of a matrix, all outer dimensions flattened.
  std::uint64_t rows() const { return elements / row_length(); }
};

/// Limits beyond those the file's size imposes (a GGUF file may legally exceed
/// none of them: the spec caps keys at 65535 bytes, ggml tensors at 4 dims).
struct Limits {
  static constexpr std::uint64_t max_key_bytes = 65535;
  static constexpr std::uint64_t max_string_bytes = std::uint64_t{1} << 30;
  static constexpr std::uint64_t max_array_count = std::uint64_t{1} << 28;
  static constexpr std::uint32_t max_dims = 4;
  static constexpr std::uint64_t max_tensor_name_bytes = 255;
};

/// A parsed GGUF file: its metadata and tensor infos, with the bytes kept
/// mapped (or owned) for as long as the object lives. Not copyable.
class File {
 public:
  /// Maps `path` read-only and parses it. Throws std::system_error if it cannot
  /// be opened or mapped, FormatError if it is not well-formed GGUF v3.
  static File open(const std::filesystem::path& path);
  /// Parses a copy of `bytes`; `source` names it in error messages.
  static File parse(std::span<const std::byte> bytes, std::string source = "<memory>");

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  std::uint32_t version() const { return version_; }
  std::uint64_t alignment() const { return alignment_; }
  std::uint64_t data_offset() const { return data_offset_; }  ///< start of the data section
  std::uint64_t size() const { return bytes_.size(); }
  const std::string& source() const { return source_; }

  /// Metadata keys in file order, and their values.
  const std::vector<std::pair<std::string_view, Value>>& metadata() const { return metadata_; }
  /// The value of `key`, or nullptr.
  const Value* find(std::string_view key) const;
  /// The value of `key` as an unsigned integer (any integer type, not negative);
  /// throws FormatError if missing or of another type.
  std::uint64_t get_uint(std::string_view key) const;
  /// The value of `key` as a float (FLOAT32 or FLOAT64); throws FormatError likewise.
  double get_float(std::string_view key) const;
  /// The value of `key` as a bool; throws FormatError likewise.
  bool get_bool(std::string_view key) const;
  /// The value of `key` as a string; throws FormatError likewise.
  std::string_view get_string(std::string_view key) const;
  /// The value of `key` as an array of strings; throws FormatError likewise.
  const std::vector<std::string_view>& get_string_array(std::string_view key) const;

  /// Tensor infos in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The tensor called `name`, or nullptr.
  const TensorInfo* find_tensor(std::string_view name) const;
  /// The tensor called `name`; throws std::out_of_range naming it if absent.
  const TensorInfo& tensor(std::string_view name) const;

 private:
  File() = default;
  struct Mapping;
  void parse_all();
  const Value& require_key(std::string_view key, const char* wanted) const;

  std::unique_ptr<Mapping> mapping_;        // the mmap, when opened from a path
  std::vector<std::byte> owned_;            // the copy, when parsed from memory
  std::span<const std::byte> bytes_;
  std::string source_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string_view, Value>> metadata_;
  std::unordered_map<std::string_view, std::size_t> key_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string_view, std::size_t> tensor_index_;
};

/// Where tools/fetch_model.py puts SmolLM2-135M-Instruct.Q4_1.gguf:
/// $ATTN_MODEL_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/attention-tutorial.
/// The file may not exist.
std::filesystem::path smollm2_model_path();

}  // namespace attn::gguf
