/// @file core.hpp
/// @brief What every lesson shares: tensor aliases, the mask kind, the scaffold's
///        exception and the checks that turn bad input into clear errors.
#pragma once

#include <cstddef>
#include <source_location>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include <xtensor/xtensor.hpp>

namespace attn {

/// A matrix, row-major: (rows, cols).
using Tensor2 = xt::xtensor<float, 2>;
/// A batch of sequences of vectors: (B, T, C).
using Tensor3 = xt::xtensor<float, 3>;
/// Attention operand, row-major (B, H, T, D): batch, heads, time, head dimension.
using Tensor4 = xt::xtensor<float, 4>;

/// Which keys a query may attend to.
enum class Mask {
  none,   ///< every key
  causal  ///< keys at positions up to the query's own (bottom-right aligned, see lesson 02)
};

/// Thrown by every TODO body of a scaffold until the learner fills it in.
///
/// what() names the function, the TODO marker, the file and line, and the README
/// section to read. It derives from std::runtime_error, not std::logic_error (the
/// base of std::invalid_argument and std::out_of_range), so a test of an error path
/// can never pass on a scaffold.
struct NotImplemented : std::runtime_error {
  /// @param todo     the marker, e.g. "01.3" for `TODO(01.3)`
  /// @param section  the README section that teaches it, e.g. "3. Scaled dot-product attention"
  /// @param where    the throwing function's location (filled in by the default argument)
  NotImplemented(std::string_view todo, std::string_view section,
                 std::source_location where = std::source_location::current());

 private:
  static std::string describe(std::string_view todo, std::string_view section,
                              const std::source_location& where);
};

/// Marker that every NotImplemented message starts with (the runner looks for it).
inline constexpr std::string_view kNotImplementedTag = "attn::NotImplemented";

inline NotImplemented::NotImplemented(std::string_view todo, std::string_view section,
                                      std::source_location where)
    : std::runtime_error(describe(todo, section, where)) {}

inline std::string NotImplemented::describe(std::string_view todo, std::string_view section,
                                            const std::source_location& where) {
  // "attn::Tensor4 attn::f(const Tensor4&, ...)" -> "attn::f"
  std::string_view fn = where.function_name();
  fn = fn.substr(0, fn.find('('));
  if (const auto space = fn.rfind(' '); space != std::string_view::npos) fn.remove_prefix(space + 1);
  // "/home/me/attention/lessons/01_matmul_attention/attention.cpp" -> "lessons/01_..."
  std::string_view file = where.file_name();
  for (std::string_view root : {"lessons/", "solutions/"}) {
    if (const auto at = file.rfind(root); at != std::string_view::npos) {
      file.remove_prefix(at);
      break;
    }
  }
  const std::string_view lesson_dir = file.substr(0, file.rfind('/'));
  std::ostringstream out;
  out << kNotImplementedTag << ": " << fn << " is not implemented yet, TODO(" << todo << ") at "
      << file << ':' << where.line() << "\n  read: " << lesson_dir << "/README.md, section \""
      << section << "\"\n  hint: ./learn hint " << todo.substr(0, 2);
  return out.str();
}

/// Formats a shape as "(2, 3, 5)".
template <class Shape>
std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ')';
  return out.str();
}

/// Throws std::invalid_argument "<where>: <what>: expected <expected>, given <given>"
/// unless given == expected.
inline void require_equal(std::string_view where, std::string_view what, std::size_t expected,
                          std::size_t given) {
  if (expected == given) return;
  std::ostringstream out;
  out << where << ": " << what << ": expected " << expected << ", given " << given;
  throw std::invalid_argument(out.str());
}

/// Throws std::invalid_argument "<where>: <what>: expected shape <expected>, given <given>"
/// unless the shapes are equal.
template <class A, class B>
void require_shape(std::string_view where, std::string_view what, const A& expected,
                   const B& given) {
  bool same = expected.size() == given.size();
  for (std::size_t i = 0; same && i < expected.size(); ++i) same = expected[i] == given[i];
  if (same) return;
  std::ostringstream out;
  out << where << ": " << what << ": expected shape " << shape_str(expected) << ", given "
      << shape_str(given);
  throw std::invalid_argument(out.str());
}

/// Throws std::invalid_argument "<where>: <what>" unless ok. For conditions that are
/// not an equality, e.g. divisibility; say expected and given values in `what`.
inline void require(bool ok, std::string_view where, const std::string& what) {
  if (!ok) throw std::invalid_argument(std::string(where) + ": " + what);
}

/// Throws std::out_of_range "<where>: <what>" unless ok. For positions and capacities.
inline void require_in_range(bool ok, std::string_view where, const std::string& what) {
  if (!ok) throw std::out_of_range(std::string(where) + ": " + what);
}

}  // namespace attn
