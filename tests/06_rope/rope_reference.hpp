/// @file rope_reference.hpp
/// @brief A float64 rotary embedding in plain loops, written from the formula and
///        sharing no code with the lesson, and the channel order of the two pairings.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "attn/core.hpp"

namespace attn::ref {

/// Channel j of a head in the adjacent layout holds channel adjacent_source(j, D) of the
/// half-split layout: pair (2i, 2i + 1) <- (i, i + D/2).
inline std::size_t adjacent_source(std::size_t j, std::size_t d) { return (j % 2) * (d / 2) + j / 2; }

/// RoPE in float64: row t of x at position first_position + t, pair i turned by
/// p theta^(-2i/D); pairs (2i, 2i+1) if adjacent, else (i, i + D/2).
template <class T>
xt::xtensor<double, 4> rope(const xt::xtensor<T, 4>& x, std::size_t first_position, bool adjacent,
                            double theta = 10000.0) {
  const std::size_t nb = x.shape(0), nh = x.shape(1), nt = x.shape(2), d = x.shape(3);
  xt::xtensor<double, 4> y({nb, nh, nt, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t t = 0; t < nt; ++t)
        for (std::size_t i = 0; i < d / 2; ++i) {
          const double angle = static_cast<double>(first_position + t) *
                               std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
          const std::size_t a = adjacent ? 2 * i : i, c = adjacent ? 2 * i + 1 : i + d / 2;
          const double xa = static_cast<double>(x(b, h, t, a)), xb = static_cast<double>(x(b, h, t, c));
          y(b, h, t, a) = xa * std::cos(angle) - xb * std::sin(angle);
          y(b, h, t, c) = xa * std::sin(angle) + xb * std::cos(angle);
        }
  return y;
}

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
