/// @file rope_reference.hpp
/// @brief The channel order of the two pairings, and float64 dot products and norms of
///        rows; the float64 rotary embedding itself, ref::rope, is in common/attn/reference.hpp
///        (lesson 11's tests use it too).
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "attn/core.hpp"
#include "attn/reference.hpp"

namespace attn::ref {

/// Channel j of a head in the adjacent layout holds channel adjacent_source(j, D) of the
/// half-split layout: pair (2i, 2i + 1) <- (i, i + D/2).
inline std::size_t adjacent_source(std::size_t j, std::size_t d) { return (j % 2) * (d / 2) + j / 2; }

// ref::rope, the float64 rotation itself, is in common/attn/reference.hpp.

/// x with the channels of every head reordered from the half-split to the adjacent layout.
template <class T>
xt::xtensor<T, 4> to_adjacent_layout(const xt::xtensor<T, 4>& x) {
  xt::xtensor<T, 4> y(x.shape());
  const std::size_t d = x.shape(3);
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t h = 0; h < x.shape(1); ++h)
      for (std::size_t t = 0; t < x.shape(2); ++t)
        for (std::size_t j = 0; j < d; ++j) y(b, h, t, j) = x(b, h, t, adjacent_source(j, d));
  return y;
}

/// Dot product of row t of head h with row u of head g, accumulated in float64.
template <class A, class B>
double dot(const A& q, std::size_t h, std::size_t t, const B& k, std::size_t g, std::size_t u,
           std::size_t b = 0) {
  double s = 0.0;
  for (std::size_t i = 0; i < q.shape(3); ++i)
    s += static_cast<double>(q(b, h, t, i)) * static_cast<double>(k(b, g, u, i));
  return s;
}

/// Euclidean norm of row t of head h, in float64.
template <class A>
double norm(const A& x, std::size_t h, std::size_t t, std::size_t b = 0) {
  return std::sqrt(dot(x, h, t, x, h, t, b));
}

}  // namespace attn::ref
