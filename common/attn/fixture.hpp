/// @file fixture.hpp
/// @brief Reader for golden fixtures: small text files of named tensors produced by
///        an outside tool (its script is committed beside the file).
///
/// Format, one tensor after another:
/// ```
/// # comment
/// tensor <name> <rank> <dim0> ... <dimN-1>
/// <dim0 * ... * dimN-1 numbers, whitespace-separated, row-major>
/// ```
/// A scalar has rank 0 and one number.
#pragma once

#include <array>
#include <cstddef>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

namespace attn {

/// The tensors of one fixture file, by name (format at the top of this file).
class Fixture {
 public:
  /// Reads every tensor of the file; throws std::runtime_error naming the file and
  /// what is wrong if it is missing or malformed.
  explicit Fixture(const std::string& path) : path_(path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("fixture " + path + ": cannot open");
    std::string word;
    while (in >> word) {
      if (word[0] == '#') {
        std::getline(in, word);
        continue;
      }
      if (word != "tensor") fail("expected 'tensor', got '" + word + "'");
      Entry e;
      std::string name;
      std::size_t rank = 0, count = 1;
      if (!(in >> name >> rank) || rank > 8) fail("bad tensor header");
      e.shape.resize(rank);
      for (auto& d : e.shape) {
        if (!(in >> d) || d > (1u << 24)) fail("bad dimension of " + name);
        count *= d;
      }
      if (count > (1u << 24)) fail(name + " is too large");
      e.values.resize(count);
      for (auto& x : e.values)
        if (!(in >> x)) fail("too few numbers for " + name);
      entries_[name] = std::move(e);
    }
  }

  /// True if the file holds a tensor called `name`.
  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  /// The tensor `name` as xt::xtensor<T, N>; throws if it is absent or of another rank.
  template <class T, std::size_t N>
  xt::xtensor<T, N> get(const std::string& name) const {
    const Entry& e = entry(name);
    if (e.shape.size() != N)
      fail(name + " has rank " + std::to_string(e.shape.size()) + ", expected " +
           std::to_string(N));
    std::array<std::size_t, N> shape{};
    for (std::size_t i = 0; i < N; ++i) shape[i] = e.shape[i];
    xt::xtensor<T, N> t(shape);
    std::size_t i = 0;
    for (auto& x : t) x = static_cast<T>(e.values[i++]);
    return t;
  }

  /// A rank-0 entry as an integer (a size, an offset, a flag).
  std::size_t size(const std::string& name) const {
    const Entry& e = entry(name);
    if (!e.shape.empty()) fail(name + " is not a scalar");
    return static_cast<std::size_t>(e.values[0]);
  }

  /// Names of all tensors, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : entries_) out.push_back(name);
    return out;
  }

 private:
  struct Entry {
    std::vector<std::size_t> shape;
    std::vector<double> values;
  };
  const Entry& entry(const std::string& name) const {
    const auto it = entries_.find(name);
    if (it == entries_.end()) fail("no tensor named " + name);
    return it->second;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("fixture " + path_ + ": " + what);
  }
  std::string path_;
  std::map<std::string, Entry> entries_;
};

}  // namespace attn
