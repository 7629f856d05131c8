#include "gguf.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static_assert(std::endian::native == std::endian::little,
              "this reader decodes GGUF's little-endian fields by copying bytes");

namespace attn::gguf {

FormatError::FormatError(const std::string& source, std::uint64_t offset, const std::string& what,
                         const std::string& expected, const std::string& found)
    : std::runtime_error(source + ": byte " + std::to_string(offset) + ": " + what + ": expected " +
                         expected + ", found " + found),
      offset_(offset) {}

std::string_view to_string(ValueType type) {
  switch (type) {
    case ValueType::UINT8: return "UINT8";
    case ValueType::INT8: return "INT8";
    case ValueType::UINT16: return "UINT16";
    case ValueType::INT16: return "INT16";
    case ValueType::UINT32: return "UINT32";
    case ValueType::INT32: return "INT32";
    case ValueType::FLOAT32: return "FLOAT32";
    case ValueType::BOOL: return "BOOL";
    case ValueType::STRING: return "STRING";
    case ValueType::ARRAY: return "ARRAY";
    case ValueType::UINT64: return "UINT64";
    case ValueType::INT64: return "INT64";
    case ValueType::FLOAT64: return "FLOAT64";
  }
  return "?";
}

std::string_view to_string(TensorType type) {
  switch (type) {
    case TensorType::F32: return "F32";
    case TensorType::F16: return "F16";
    case TensorType::Q4_0: return "Q4_0";
    case TensorType::Q4_1: return "Q4_1";
    case TensorType::Q8_0: return "Q8_0";
  }
  return "?";
}

std::size_t block_elements(TensorType type) {
  return type == TensorType::F32 || type == TensorType::F16 ? 1 : 32;
}

std::size_t block_bytes(TensorType type) {
  switch (type) {
    case TensorType::F32: return 4;
    case TensorType::F16: return 2;
    case TensorType::Q4_0: return 2 + 16;
    case TensorType::Q4_1: return 2 + 2 + 16;
    case TensorType::Q8_0: return 2 + 32;
  }
  return 0;
}

namespace {

std::string hex_bits(std::uint32_t bits, int digits) {
  static const char* hex = "0123456789abcdef";
  std::string out = "0x";
  for (int k = digits - 1; k >= 0; --k) out += hex[(bits >> (4 * k)) & 15u];
  return out;
}

/// "NaN (0x7e00)", "+inf (0x7c00)", "-inf (0xff800000)": a non-finite half or float.
std::string describe_non_finite(std::uint32_t bits, bool half) {
  const std::uint32_t mantissa = half ? bits & 0x3ffu : bits & 0x7fffffu;
  const bool negative = half ? (bits & 0x8000u) != 0 : (bits & 0x80000000u) != 0;
  const std::string what = mantissa != 0 ? "NaN" : negative ? "-inf" : "+inf";
  return what + " (" + hex_bits(bits, half ? 4 : 8) + ")";
}

}  // namespace

std::optional<NonFinite> first_non_finite(TensorType type, std::span<const std::byte> bytes) {
  // Where each block keeps its floats: (offset in the block, name, float16 or float32).
  struct Field {
    std::size_t at;
    std::string_view name;
    bool half;
  };
  static constexpr Field value32[] = {{0, "value", false}};
  static constexpr Field value16[] = {{0, "value", true}};
  static constexpr Field scale[] = {{0, "scale d", true}};
  static constexpr Field scale_min[] = {{0, "scale d", true}, {2, "minimum m", true}};
  std::span<const Field> fields;
  switch (type) {
    case TensorType::F32: fields = value32; break;
    case TensorType::F16: fields = value16; break;
    case TensorType::Q4_0: case TensorType::Q8_0: fields = scale; break;
    case TensorType::Q4_1: fields = scale_min; break;
  }
  const std::size_t size = block_bytes(type);
  if (size == 0) return std::nullopt;
  const std::size_t blocks = bytes.size() / size;
  const std::byte* p = bytes.data();
  for (std::size_t b = 0; b < blocks; ++b, p += size)
    for (const Field& f : fields) {
      // All exponent bits set: infinity (mantissa 0) or NaN.
      std::uint32_t bits;
      bool bad;
      if (f.half) {
        std::uint16_t h;
        std::memcpy(&h, p + f.at, sizeof h);
        bits = h;
        bad = (h & 0x7c00u) == 0x7c00u;
      } else {
        std::memcpy(&bits, p + f.at, sizeof bits);
        bad = (bits & 0x7f800000u) == 0x7f800000u;
      }
      if (bad) return NonFinite{b, b * size + f.at, f.name, describe_non_finite(bits, f.half)};
    }
  return std::nullopt;
}

namespace {

/// Size in bytes of a scalar of `type` in the file; 0 for STRING and ARRAY.
std::uint64_t scalar_bytes(ValueType type) {
  switch (type) {
    case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
    case ValueType::UINT16: case ValueType::INT16: return 2;
    case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
    case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
    case ValueType::STRING: case ValueType::ARRAY: return 0;
  }
  return 0;
}

bool known_value_type(std::uint32_t t) { return t <= static_cast<std::uint32_t>(ValueType::FLOAT64); }

bool known_tensor_type(std::uint32_t t) {
  return t == 0 || t == 1 || t == 2 || t == 3 || t == 8;
}

std::string quoted(std::string_view s) {
  constexpr std::size_t shown = 64;
  std::string out = "'";
  for (char c : s.substr(0, shown)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  out += "'";
  if (s.size() > shown) out += "...";
  return out;
}

std::string num(std::uint64_t v) { return std::to_string(v); }

/// Decodes a scalar of `type` from `p` (which holds scalar_bytes(type) bytes).
Value decode_scalar(ValueType type, const std::byte* p, std::uint64_t offset) {
  Value v;
  v.type = type;
  v.offset = offset;
  auto load = [p](auto zero) {
    decltype(zero) x;
    std::memcpy(&x, p, sizeof x);
    return x;
  };
  switch (type) {
    case ValueType::UINT8: v.u = load(std::uint8_t{}); break;
    case ValueType::BOOL: v.u = load(std::uint8_t{}); break;
    case ValueType::INT8: v.i = load(std::int8_t{}); break;
    case ValueType::UINT16: v.u = load(std::uint16_t{}); break;
    case ValueType::INT16: v.i = load(std::int16_t{}); break;
    case ValueType::UINT32: v.u = load(std::uint32_t{}); break;
    case ValueType::INT32: v.i = load(std::int32_t{}); break;
    case ValueType::FLOAT32: v.f = static_cast<double>(load(float{})); break;
    case ValueType::UINT64: v.u = load(std::uint64_t{}); break;
    case ValueType::INT64: v.i = load(std::int64_t{}); break;
    case ValueType::FLOAT64: v.f = load(double{}); break;
    case ValueType::STRING: case ValueType::ARRAY: break;
  }
  return v;
}

/// A bounds-checked cursor over the file's bytes. Every read checks that the
/// bytes exist before touching them, and reports the offset where it failed.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t remaining() const { return bytes_.size() - pos_; }

  [[noreturn]] void fail(std::uint64_t at, const std::string& what, const std::string& expected,
                         const std::string& found) const {
    throw FormatError(source_, at, what, expected, found);
  }

  void need(std::uint64_t n, const std::string& what) const {
    if (n > remaining())
      fail(pos_, what, num(n) + " bytes", "only " + num(remaining()) + " left in a file of " +
                                              num(bytes_.size()) + " bytes");
  }

  const std::byte* take(std::uint64_t n, const std::string& what) {
    need(n, what);
    const std::byte* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }

  template <class T>
  T read(const std::string& what) {
    T x;
    std::memcpy(&x, take(sizeof x, what), sizeof x);
    return x;
  }

  /// A gguf_string: uint64 length, then that many bytes (no terminator).
  /// `label()` names it in an error; it is called only when there is one.
  template <class Label>
  std::string_view string(const Label& label, std::uint64_t max_bytes) {
    const std::uint64_t at = pos_;
    if (remaining() < 8) need(8, label() + " length");
    std::uint64_t n;
    std::memcpy(&n, bytes_.data() + pos_, sizeof n);
    pos_ += sizeof n;
    if (n > max_bytes) fail(at, label() + " length", "at most " + num(max_bytes) + " bytes", num(n));
    if (n > remaining())
      fail(at, label() + " length", "at most the " + num(remaining()) + " bytes left in the file", num(n));
    const std::byte* p = bytes_.data() + pos_;
    pos_ += n;
    return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)};
  }
  std::string_view string(const std::string& what, std::uint64_t max_bytes) {
    return string([&what] { return what; }, max_bytes);
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& source_;
  std::uint64_t pos_ = 0;
};

/// Reads one metadata value of `type` (already read) at the cursor.
Value read_value(Cursor& in, ValueType type, const std::string& what) {
  const std::uint64_t at = in.pos();
  if (type == ValueType::STRING) {
    Value v;
    v.type = type;
    v.offset = at;
    v.str = in.string(what, Limits::max_string_bytes);
    return v;
  }
  if (type != ValueType::ARRAY) {
    const std::byte* p = in.take(scalar_bytes(type), what + " (" + std::string(to_string(type)) + ")");
    Value v = decode_scalar(type, p, at);
    if (type == ValueType::BOOL && v.u > 1) in.fail(at, what + " (BOOL)", "0 or 1", num(v.u));
    return v;
  }
  Value v;
  v.type = ValueType::ARRAY;
  v.offset = at;
  const auto raw_type = in.read<std::uint32_t>(what + " element type");
  if (!known_value_type(raw_type))
    in.fail(at, what + " element type", "a GGUF value type 0..12", num(raw_type));
  v.element_type = static_cast<ValueType>(raw_type);
  if (v.element_type == ValueType::ARRAY)
    in.fail(at, what + " element type", "a scalar or STRING (nested arrays are not supported)", "ARRAY");
  const std::uint64_t count_at = in.pos();
  v.count = in.read<std::uint64_t>(what + " count");
  if (v.count > Limits::max_array_count)
    in.fail(count_at, what + " count", "at most " + num(Limits::max_array_count), num(v.count));
  // Each element takes at least this many bytes, so the count is bounded by what is left.
  const std::uint64_t min_each = v.element_type == ValueType::STRING ? 8 : scalar_bytes(v.element_type);
  if (v.count > in.remaining() / min_each)
    in.fail(count_at, what + " count",
            "at most " + num(in.remaining() / min_each) + " elements of " +
                std::string(to_string(v.element_type)) + " in the " + num(in.remaining()) + " bytes left",
            num(v.count));
  if (v.element_type == ValueType::STRING) {
    v.strings.reserve(static_cast<std::size_t>(v.count));
    for (std::uint64_t k = 0; k < v.count; ++k)
      v.strings.push_back(in.string([&] { return what + "[" + num(k) + "]"; }, Limits::max_string_bytes));
  } else {
    const std::uint64_t n = v.count * min_each;
    const std::byte* p = in.take(n, what);
    v.numbers = {p, static_cast<std::size_t>(n)};
    if (v.element_type == ValueType::BOOL)
      for (std::uint64_t k = 0; k < n; ++k)
        if (std::to_integer<unsigned>(p[k]) > 1)
          in.fail(at + 12 + k, what + "[" + num(k) + "] (BOOL)", "0 or 1", num(std::to_integer<unsigned>(p[k])));
  }
  return v;
}

}  // namespace

Value Value::element(std::uint64_t k) const {
  if (type != ValueType::ARRAY) throw std::invalid_argument("Value::element: not an array");
  if (element_type == ValueType::STRING)
    throw std::invalid_argument("Value::element: a STRING array; use .strings");
  if (k >= count)
    throw std::out_of_range("Value::element: index " + std::to_string(k) + ", array of " +
                            std::to_string(count));
  const std::uint64_t each = scalar_bytes(element_type);
  return decode_scalar(element_type, numbers.data() + k * each, offset + 12 + k * each);
}

struct File::Mapping {
  void* address = nullptr;
  std::size_t length = 0;
  ~Mapping() {
    if (address != nullptr) munmap(address, length);
  }
};

File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::filesystem::path& path) {
  File file;
  file.source_ = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot open " + file.source_);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "cannot stat " + file.source_);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::system_error(EINVAL, std::generic_category(), file.source_ + " is not a regular file");
  }
  file.mapping_ = std::make_unique<Mapping>();
  if (st.st_size > 0) {
    const auto length = static_cast<std::size_t>(st.st_size);
    void* address = mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw std::system_error(err, std::generic_category(), "cannot map " + file.source_);
    }
    file.mapping_->address = address;
    file.mapping_->length = length;
    file.bytes_ = {static_cast<const std::byte*>(address), length};
  }
  ::close(fd);
  file.parse_all();
  return file;
}

File File::parse(std::span<const std::byte> bytes, std::string source) {
  File file;
  file.source_ = std::move(source);
  file.owned_.assign(bytes.begin(), bytes.end());
  file.bytes_ = file.owned_;
  file.parse_all();
  return file;
}

void File::parse_all() {
  Cursor in(bytes_, source_);

  // Header: magic, version, tensor count, metadata count.
  in.need(4, "magic");
  const std::string_view magic(reinterpret_cast<const char*>(bytes_.data()), 4);
  if (magic != "GGUF") in.fail(0, "magic", "'GGUF'", quoted(magic));
  in.take(4, "magic");
  version_ = in.read<std::uint32_t>("version");
  if (version_ != 3) {
    const std::string found = version_ == 0x03000000u ? "3 byte-swapped (a big-endian file)" : num(version_);
    in.fail(4, "version", "3", found);
  }
  const auto tensor_count = in.read<std::uint64_t>("tensor count");
  const auto kv_count = in.read<std::uint64_t>("metadata count");

  // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor
  // info at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
  if (kv_count > in.remaining() / 13)
    in.fail(16, "metadata count", "at most " + num(in.remaining() / 13) + " key-value pairs in the " +
                                      num(in.remaining()) + " bytes after the header",
            num(kv_count));
  if (tensor_count > in.remaining() / 24)
    in.fail(8, "tensor count", "at most " + num(in.remaining() / 24) + " tensor infos in the " +
                                   num(in.remaining()) + " bytes after the header",
            num(tensor_count));

  metadata_.reserve(static_cast<std::size_t>(kv_count));
  for (std::uint64_t k = 0; k < kv_count; ++k) {
    const std::uint64_t at = in.pos();
    const std::string label = "metadata " + num(k);
    const std::string_view key = in.string(label + " key", Limits::max_key_bytes);
    const std::string what = "metadata " + quoted(key);
    const auto raw_type = in.read<std::uint32_t>(what + " type");
    if (!known_value_type(raw_type)) in.fail(in.pos() - 4, what + " type", "a GGUF value type 0..12", num(raw_type));
    Value v = read_value(in, static_cast<ValueType>(raw_type), what);
    if (key_index_.count(key) != 0) in.fail(at, label + " key", "a key not seen before", quoted(key) + " again");
    key_index_.emplace(key, metadata_.size());
    metadata_.emplace_back(key, std::move(v));
  }

  if (const Value* a = find("general.alignment")) {
    if (a->type != ValueType::UINT32)
      in.fail(a->offset, "general.alignment", "UINT32", std::string(to_string(a->type)));
    if (a->u == 0 || !std::has_single_bit(a->u))
      in.fail(a->offset, "general.alignment", "a power of two", num(a->u));
    alignment_ = a->u;
  }

  tensors_.reserve(static_cast<std::size_t>(tensor_count));
  for (std::uint64_t k = 0; k < tensor_count; ++k) {
    TensorInfo t;
    t.info_offset = in.pos();
    const std::string label = "tensor " + num(k);
    t.name = in.string(label + " name", Limits::max_tensor_name_bytes);
    const std::string what = "tensor " + quoted(t.name);
    const std::uint64_t dims_at = in.pos();
    const auto n_dims = in.read<std::uint32_t>(what + " n_dims");
    if (n_dims > Limits::max_dims)
      in.fail(dims_at, what + " n_dims", "at most " + num(Limits::max_dims), num(n_dims));
    // Products stay below 2^63 (ggml counts elements in int64_t).
    constexpr std::uint64_t max_elements = std::uint64_t{1} << 62;
    t.elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      const std::uint64_t dim_at = in.pos();
      const auto n = in.read<std::uint64_t>(what + " dim " + num(d));
      if (n == 0 || n > max_elements / t.elements)
        in.fail(dim_at, what + " dim " + num(d),
                "1.." + num(max_elements / t.elements) + " (elements below 2^62)", num(n));
      t.dims.push_back(n);
      t.elements *= n;
    }
    const std::uint64_t type_at = in.pos();
    const auto raw_type = in.read<std::uint32_t>(what + " type");
    if (!known_tensor_type(raw_type))
      in.fail(type_at, what + " type", "a supported type (F32=0, F16=1, Q4_0=2, Q4_1=3, Q8_0=8)",
              num(raw_type));
    t.type = static_cast<TensorType>(raw_type);
    const std::uint64_t per_block = block_elements(t.type);
    if (t.row_length() % per_block != 0)
      in.fail(dims_at + 4, what + " dim 0", "a multiple of " + num(per_block) + " for " +
                                                std::string(to_string(t.type)),
              num(t.row_length()));
    // elements < 2^62 and block_bytes <= 34 * elements / 32: no overflow.
    t.bytes = t.elements / per_block * block_bytes(t.type);
    const std::uint64_t offset_at = in.pos();
    t.offset = in.read<std::uint64_t>(what + " offset");
    if (t.offset % alignment_ != 0)
      in.fail(offset_at, what + " offset", "a multiple of the alignment " + num(alignment_), num(t.offset));
    if (tensor_index_.count(t.name) != 0)
      in.fail(t.info_offset, label + " name", "a name not seen before", quoted(t.name) + " again");
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const std::uint64_t end_of_infos = in.pos();
  const std::uint64_t padding = (alignment_ - end_of_infos % alignment_) % alignment_;
  data_offset_ = end_of_infos + padding;  // end_of_infos <= size, alignment <= 2^31: no overflow
  if (tensors_.empty()) return;
  if (data_offset_ > bytes_.size())
    in.fail(end_of_infos, "data section", "to start at byte " + num(data_offset_) + " (aligned to " +
                                             num(alignment_) + ")",
            "a file of " + num(bytes_.size()) + " bytes");
  const std::uint64_t data_size = bytes_.size() - data_offset_;
  for (TensorInfo& t : tensors_) {
    if (t.offset > data_size || t.bytes > data_size - t.offset)
      in.fail(t.info_offset, "tensor " + quoted(t.name) + " data",
              num(t.bytes) + " bytes at data offset " + num(t.offset) + " within the " + num(data_size) +
                  "-byte data section",
              t.offset > data_size ? "an offset past its end" : "bytes past its end");
    t.data = bytes_.subspan(static_cast<std::size_t>(data_offset_ + t.offset), static_cast<std::size_t>(t.bytes));
  }
  // No two tensors may share bytes.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->info_offset < b->info_offset;
  });
  for (std::size_t k = 1; k < by_offset.size(); ++k) {
    const TensorInfo& a = *by_offset[k - 1];
    const TensorInfo& b = *by_offset[k];
    if (b.offset < a.offset + a.bytes)
      in.fail(b.info_offset, "tensor " + quoted(b.name) + " offset",
              "at least " + num(a.offset + a.bytes) + ", past the end of tensor " + quoted(a.name),
              num(b.offset) + " (overlapping)");
  }
  // Every stored number is finite: a NaN or an infinity in a weight, or in the scale or
  // minimum of a quantized block, is damage (no trained model holds one), and it would flow
  // silently into every computation that reads the tensor, dequantized or in place.
  for (const TensorInfo& t : tensors_) {
    const auto bad = first_non_finite(t.type, t.data);
    if (!bad) continue;
    const bool blocks = block_elements(t.type) > 1;
    const std::uint64_t per_row = t.row_length() / block_elements(t.type);
    in.fail(data_offset_ + t.offset + bad->byte,
            "tensor " + quoted(t.name) + " (" + std::string(to_string(t.type)) + ") " +
                (blocks ? "block " : "element ") + num(bad->block) + " of " +
                num(t.bytes / block_bytes(t.type)) + ", in row " + num(bad->block / per_row) + ": " +
                std::string(bad->field),
            "a finite float" + std::string(t.type == TensorType::F32 ? "32" : "16"), bad->value);
  }
}

const Value* File::find(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
}

const Value& File::require_key(std::string_view key, const char* wanted) const {
  const Value* v = find(key);
  if (v == nullptr) throw FormatError(source_, 0, "metadata " + quoted(key), std::string(wanted), "no such key");
  return *v;
}

std::uint64_t File::get_uint(std::string_view key) const {
  const Value& v = require_key(key, "an unsigned integer");
  switch (v.type) {
    case ValueType::UINT8: case ValueType::UINT16: case ValueType::UINT32: case ValueType::UINT64:
      return v.u;
    case ValueType::INT8: case ValueType::INT16: case ValueType::INT32: case ValueType::INT64:
      if (v.i >= 0) return static_cast<std::uint64_t>(v.i);
      throw FormatError(source_, v.offset, "metadata " + quoted(key), "an unsigned integer", std::to_string(v.i));
    default:
      throw FormatError(source_, v.offset, "metadata " + quoted(key), "an integer", std::string(to_string(v.type)));
  }
}

double File::get_float(std::string_view key) const {
  const Value& v = require_key(key, "FLOAT32 or FLOAT64");
  if (v.type != ValueType::FLOAT32 && v.type != ValueType::FLOAT64)
    throw FormatError(source_, v.offset, "metadata " + quoted(key), "FLOAT32 or FLOAT64", std::string(to_string(v.type)));
  return v.f;
}

bool File::get_bool(std::string_view key) const {
  const Value& v = require_key(key, "BOOL");
  if (v.type != ValueType::BOOL)
    throw FormatError(source_, v.offset, "metadata " + quoted(key), "BOOL", std::string(to_string(v.type)));
  return v.u != 0;
}

std::string_view File::get_string(std::string_view key) const {
  const Value& v = require_key(key, "STRING");
  if (v.type != ValueType::STRING)
    throw FormatError(source_, v.offset, "metadata " + quoted(key), "STRING", std::string(to_string(v.type)));
  return v.str;
}

const std::vector<std::string_view>& File::get_string_array(std::string_view key) const {
  const Value& v = require_key(key, "an array of STRING");
  if (v.type != ValueType::ARRAY || v.element_type != ValueType::STRING) {
    const std::string found = v.type == ValueType::ARRAY
                                  ? "an array of " + std::string(to_string(v.element_type))
                                  : std::string(to_string(v.type));
    throw FormatError(source_, v.offset, "metadata " + quoted(key), "an array of STRING", found);
  }
  return v.strings;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (t == nullptr) throw std::out_of_range(source_ + ": no tensor named " + quoted(name));
  return *t;
}

std::filesystem::path smollm2_model_path() {
  constexpr const char* file = "SmolLM2-135M-Instruct.Q4_1.gguf";
  if (const char* dir = std::getenv("ATTN_MODEL_DIR"); dir != nullptr && *dir != '\0')
    return std::filesystem::path(dir) / file;
  std::filesystem::path cache;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0')
    cache = xdg;
  else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    cache = std::filesystem::path(home) / ".cache";
  else
    cache = ".cache";
  return cache / "attention-tutorial" / file;
}

}  // namespace attn::gguf
