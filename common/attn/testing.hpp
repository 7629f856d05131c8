/// @file testing.hpp
/// @brief What the lessons' tests share: doctest, the closeness check as a
///        doctest assertion, references, random tensors and fixtures.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "attn/check.hpp"
#include "attn/core.hpp"
#include "attn/fixture.hpp"
#include "attn/random.hpp"
#include "attn/reference.hpp"

/// Folder of the committed golden fixtures (set by the build).
#ifndef ATTN_FIXTURE_DIR
#error "ATTN_FIXTURE_DIR must be defined by the build"
#endif

/// CHECK that `got` is within `tol` of `ref` elementwise; on failure prints the
/// first mismatches, the worst element and where the tolerance came from.
#define ATTN_CHECK_CLOSE(got, ref, tol)                        \
  do {                                                          \
    const auto attn_report_ = ::attn::compare((got), (ref), (tol)); \
    CHECK_MESSAGE(attn_report_.ok, attn_report_.text);         \
  } while (false)

/// REQUIRE variant of ATTN_CHECK_CLOSE: stops the test case on failure.
#define ATTN_REQUIRE_CLOSE(got, ref, tol)                      \
  do {                                                          \
    const auto attn_report_ = ::attn::compare((got), (ref), (tol)); \
    REQUIRE_MESSAGE(attn_report_.ok, attn_report_.text);       \
  } while (false)

/// ATTN_CHECK_CLOSE whose report starts with `what`, the name of the quantity checked
/// (a std::string or a string literal): for a test that checks several.
#define ATTN_CHECK_CLOSE_NAMED(what, got, ref, tol)                      \
  do {                                                                    \
    const auto attn_report_ = ::attn::compare((got), (ref), (tol), (what)); \
    CHECK_MESSAGE(attn_report_.ok, attn_report_.text);                   \
  } while (false)

/// REQUIRE variant of ATTN_CHECK_CLOSE_NAMED.
#define ATTN_REQUIRE_CLOSE_NAMED(what, got, ref, tol)                    \
  do {                                                                    \
    const auto attn_report_ = ::attn::compare((got), (ref), (tol), (what)); \
    REQUIRE_MESSAGE(attn_report_.ok, attn_report_.text);                 \
  } while (false)

namespace attn {

/// Path of a committed fixture file, e.g. fixture_path("sdpa_torch.txt").
inline std::string fixture_path(const std::string& file) {
  // Appended step by step: GCC 12 at -O2 warns (-Warray-bounds, a false positive)
  // on std::string(literal) + "/" + file.
  std::string path = ATTN_FIXTURE_DIR;
  path += '/';
  path += file;
  return path;
}

/// True if every element is finite (no NaN, no infinity).
template <class E>
bool all_finite(const E& e) {
  for (auto x : e)
    if (!std::isfinite(static_cast<double>(x))) return false;
  return true;
}

/// Largest absolute value of the elements.
template <class E>
double max_abs(const E& e) {
  double m = 0.0;
  for (auto x : e) m = std::max(m, std::abs(static_cast<double>(x)));
  return m;
}

}  // namespace attn
