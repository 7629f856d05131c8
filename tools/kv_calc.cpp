// kv_calc: how many bytes a KV cache takes, for MHA, GQA and MQA, and how many sequences
// fit in a memory budget. KV only: weights and activations are not counted.
//
//   kv_calc --layers 32 --heads 32 --kv-heads 8 --head-dim 128 --tokens 8192
//           --dtype fp16 --memory 80GB
//
// The arithmetic is lesson 04's kv_cache_bytes (2 x layers x batch x kv_heads x tokens x
// head_dim x element bytes, refusing to overflow 64 bits); this file reads the flags,
// refuses absurd shapes and prints the table. Units: KiB = 2^10, MiB = 2^20, GiB = 2^30
// bytes; KB = 10^3, MB = 10^6, GB = 10^9 bytes.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kv_cache.hpp"

namespace {

constexpr const char* kUsage = R"(usage: kv_calc --heads H (--head-dim D | --d-model M) --tokens T [options]

KV-cache bytes of MHA (G = H), GQA (G = --kv-heads) and MQA (G = 1):
  2 (K and V) x layers x batch x G x tokens x head_dim x bytes per element.
K and V only: weights and activations are not counted.

  --layers L      transformer layers (default 1)
  --heads H       query heads
  --kv-heads G    key/value heads of the GQA row; must divide H (default: no GQA row)
  --head-dim D    dimension of one head
  --d-model M     model width; head_dim = M / H (instead of --head-dim)
  --tokens T      sequence length: tokens cached per sequence
  --batch B       sequences (default 1)
  --dtype TYPE    fp32, fp16, bf16 or int8 (default fp32)
  --memory SIZE   budget for the cache, e.g. 80GB (10^9 bytes) or 80GiB (2^30 bytes);
                  units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB; prints the largest batch
)";

struct Options {
  std::uint64_t layers = 1, heads = 0, kv_heads = 0, head_dim = 0, d_model = 0, tokens = 0,
                batch = 1;
  std::string dtype = "fp32";
  std::string memory_text;
  std::optional<std::uint64_t> memory;  // bytes
};

[[noreturn]] void usage_error(const std::string& what) {
  throw std::invalid_argument(what + "\n(kv_calc --help for the flags)");
}

std::uint64_t parse_count(std::string_view flag, std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    usage_error(std::string(flag) + ": " + std::string(text) + " does not fit in 64 bits");
  if (ec != std::errc() || end != text.data() + text.size())
    usage_error(std::string(flag) + ": expected a whole number, given '" + std::string(text) + "'");
  return value;
}

// "80GB" -> 80'000'000'000, "1.5GiB" -> 1'610'612'736 (rounded down to whole bytes).
std::uint64_t parse_memory(std::string_view text) {
  static const std::map<std::string, long double, std::less<>> units{
      {"B", 1.0L},         {"KB", 1e3L},          {"MB", 1e6L},           {"GB", 1e9L},
      {"TB", 1e12L},       {"KiB", 1024.0L},      {"MiB", 1048576.0L},    {"GiB", 1073741824.0L},
      {"TiB", 1099511627776.0L}};
  const std::size_t split = text.find_first_not_of("0123456789.");
  const std::string_view number = text.substr(0, split);
  std::string_view unit = split == std::string_view::npos ? "" : text.substr(split);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  const auto u = units.find(unit);
  if (number.empty() || u == units.end())
    usage_error("--memory: expected a size such as 80GB or 80GiB, given '" + std::string(text) +
                "'");
  long double value = 0;
  std::istringstream in{std::string(number)};
  in >> value;
  if (!in || !in.eof()) usage_error("--memory: '" + std::string(number) + "' is not a number");
  const long double bytes = std::floor(value * u->second);
  if (bytes >= 18446744073709551616.0L)  // 2^64
    usage_error("--memory: " + std::string(text) + " is more than 2^64 - 1 bytes");
  return static_cast<std::uint64_t>(bytes);
}

std::uint64_t element_bytes(const std::string& dtype) {
  if (dtype == "fp32" || dtype == "float32") return 4;
  if (dtype == "fp16" || dtype == "float16" || dtype == "bf16" || dtype == "bfloat16") return 2;
  if (dtype == "int8") return 1;
  usage_error("--dtype: expected fp32, fp16, bf16 or int8, given '" + dtype + "'");
}

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, std::uint64_t*, std::less<>> counts{
      {"--layers", &o.layers},     {"--heads", &o.heads},   {"--kv-heads", &o.kv_heads},
      {"--head-dim", &o.head_dim}, {"--d-model", &o.d_model}, {"--tokens", &o.tokens},
      {"--batch", &o.batch}};
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc) usage_error(std::string(flag) + " needs a value");
    const std::string_view value = argv[++i];
    if (const auto c = counts.find(flag); c != counts.end()) {
      *c->second = parse_count(flag, value);
    } else if (flag == "--dtype") {
      o.dtype = value;
    } else if (flag == "--memory") {
      o.memory_text = value;
      o.memory = parse_memory(value);
    } else {
      usage_error("unknown flag '" + std::string(flag) + "'");
    }
  }
  return o;
}

// Refuses shapes no model has, with the reason; fills in head_dim from d_model.
void check(Options& o) {
  if (o.heads == 0) usage_error("--heads: the number of query heads must be positive, given 0");
  if (o.layers == 0) usage_error("--layers: must be positive, given 0");
  if (o.tokens == 0) usage_error("--tokens: must be positive, given 0");
  if (o.batch == 0) usage_error("--batch: must be positive, given 0");
  if (o.d_model != 0 && o.head_dim != 0)
    usage_error("give --head-dim or --d-model, not both");
  if (o.d_model != 0) {
    if (o.d_model % o.heads != 0)
      usage_error("--d-model " + std::to_string(o.d_model) + " is not a multiple of --heads " +
                  std::to_string(o.heads));
    o.head_dim = o.d_model / o.heads;
  }
  if (o.head_dim == 0) usage_error("--head-dim (or --d-model): must be positive");
  if (o.kv_heads > o.heads)
    usage_error("--kv-heads " + std::to_string(o.kv_heads) + " is more than --heads " +
                std::to_string(o.heads) + ": G key/value heads are shared by H >= G query heads");
  if (o.kv_heads != 0 && o.heads % o.kv_heads != 0)
    usage_error("--heads " + std::to_string(o.heads) + " is not a multiple of --kv-heads " +
                std::to_string(o.kv_heads) + ": each KV head must serve the same number of query heads");
}

// 1234567 -> "1,234,567"
std::string grouped(std::uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// bytes / unit with three decimals, or three significant digits below 1.
std::string in_units(std::uint64_t bytes, long double unit) {
  const long double v = static_cast<long double>(bytes) / unit;
  char buf[64];
  std::snprintf(buf, sizeof buf, v >= 1.0L || v == 0.0L ? "%.3Lf" : "%.3Lg", v);
  return buf;
}

struct Row {
  std::string name;
  std::uint64_t kv_heads = 0;
  std::uint64_t per_token = 0;     // bytes of one token, all layers
  std::uint64_t per_sequence = 0;  // bytes of one sequence of `tokens` tokens
  std::uint64_t total = 0;         // bytes of the whole batch
};

int run(int argc, char** argv) {
  Options o = parse(argc, argv);
  check(o);
  const std::uint64_t elt = element_bytes(o.dtype);
  std::vector<Row> rows{{"MHA", o.heads}};
  if (o.kv_heads != 0 && o.kv_heads != o.heads && o.kv_heads != 1)
    rows.push_back({"GQA G=" + std::to_string(o.kv_heads), o.kv_heads});
  if (o.heads != 1) rows.push_back({"MQA", 1});
  for (Row& r : rows) {  // every number first: an overflow prints no half table
    r.per_token = attn::kv_cache_bytes(o.layers, 1, r.kv_heads, 1, o.head_dim, elt);
    r.per_sequence = attn::kv_cache_bytes(o.layers, 1, r.kv_heads, o.tokens, o.head_dim, elt);
    r.total = attn::kv_cache_bytes(o.layers, o.batch, r.kv_heads, o.tokens, o.head_dim, elt);
  }

  std::cout << "KV cache = 2 (K and V) x layers x batch x kv_heads x tokens x head_dim x "
               "bytes per element\n"
            << "  layers " << o.layers << ", heads " << o.heads << ", head_dim " << o.head_dim
            << ", tokens " << o.tokens << ", batch " << o.batch << ", " << o.dtype << " ("
            << elt << (elt == 1 ? " byte" : " bytes") << " per element)\n"
            << "  K and V only. KiB = 2^10 bytes, GiB = 2^30 bytes, GB = 10^9 bytes\n";
  if (o.memory)
    std::cout << "  memory budget " << o.memory_text << " = " << grouped(*o.memory) << " bytes\n";
  std::cout << '\n';
  char line[256];
  std::snprintf(line, sizeof line, "%-9s %4s %12s %26s %16s %10s %10s", "variant", "G",
                "bytes/token", "bytes", "KiB", "GiB", "GB");
  std::cout << line << (o.memory ? "  largest batch" : "") << '\n';
  for (const Row& r : rows) {
    std::snprintf(line, sizeof line, "%-9s %4llu %12s %26s %16s %10s %10s", r.name.c_str(),
                  static_cast<unsigned long long>(r.kv_heads), grouped(r.per_token).c_str(),
                  grouped(r.total).c_str(),
                  (r.total % 1024 == 0 ? grouped(r.total / 1024) : in_units(r.total, 1024.0L)).c_str(),
                  in_units(r.total, 1073741824.0L).c_str(), in_units(r.total, 1e9L).c_str());
    std::cout << line;
    if (o.memory) std::cout << "  " << grouped(*o.memory / r.per_sequence);
    std::cout << '\n';
  }
  if (o.memory)
    std::cout << "\nlargest batch = floor(budget / bytes of one sequence of " << o.tokens
              << " tokens)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "kv_calc: error: " << e.what() << '\n';
    return 2;
  }
}
