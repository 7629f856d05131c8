/// @file reference.hpp
/// @brief Independent float64 references in plain loops, for the tests.
///
/// Written as directly as the math, with no xtensor expression and no code shared
/// with the lessons, so that a test compares two independent computations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>

#include <xtensor/xtensor.hpp>

#include "attn/core.hpp"

namespace attn::ref {

using Matrix = xt::xtensor<double, 2>;  ///< float64 (rows, cols)
using Array4 = xt::xtensor<double, 4>;  ///< float64 (B, H, T, D)

/// C = A B in float64: (M,K) x (K,N) -> (M,N).
inline Matrix matmul(const Tensor2& a, const Tensor2& b) {
  const std::size_t m = a.shape(0), kk = a.shape(1), n = b.shape(1);
  if (b.shape(0) != kk) throw std::invalid_argument("ref::matmul: inner dimensions differ");
  Matrix c({m, n});
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (std::size_t k = 0; k < kk; ++k) s += double(a(i, k)) * double(b(k, j));
      c(i, j) = s;
    }
  return c;
}

/// Softmax of each row in float64, shifted by the row maximum.
inline Matrix softmax_rows(const Tensor2& x) {
  Matrix y({x.shape(0), x.shape(1)});
  for (std::size_t i = 0; i < x.shape(0); ++i) {
    double m = -std::numeric_limits<double>::infinity(), s = 0.0;
    for (std::size_t j = 0; j < x.shape(1); ++j) m = std::max(m, double(x(i, j)));
    for (std::size_t j = 0; j < x.shape(1); ++j) s += std::exp(double(x(i, j)) - m);
    for (std::size_t j = 0; j < x.shape(1); ++j) y(i, j) = std::exp(double(x(i, j)) - m) / s;
  }
  return y;
}

/// Attention in float64. q (B,H,Tq,D), k (B,G,Tk,D), v (B,G,Tk,Dv) with G dividing H;
/// query head h reads key/value head h / (H/G). With `causal`, query row i sits at
/// position q_offset + i and sees keys j <= q_offset + i.
inline Array4 attention(const Tensor4& q, const Tensor4& k, const Tensor4& v, bool causal,
                        std::size_t q_offset) {
  const std::size_t nb = q.shape(0), nh = q.shape(1), tq = q.shape(2), d = q.shape(3);
  const std::size_t ng = k.shape(1), tk = k.shape(2), dv = v.shape(3);
  if (ng == 0 || nh % ng != 0 || k.shape(3) != d || v.shape(2) != tk || k.shape(0) != nb ||
      v.shape(0) != nb || v.shape(1) != ng || (causal && q_offset + tq > tk))
    throw std::invalid_argument("ref::attention: inconsistent shapes");
  const std::size_t group = nh / ng;
  const double scale = 1.0 / std::sqrt(double(d));
  Array4 out({nb, nh, tq, dv});
  std::vector<double> w(tk);
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h) {
      const std::size_t g = h / group;
      for (std::size_t i = 0; i < tq; ++i) {
        const std::size_t visible = causal ? q_offset + i + 1 : tk;
        double m = -std::numeric_limits<double>::infinity();
        for (std::size_t j = 0; j < visible; ++j) {
          double s = 0.0;
          for (std::size_t c = 0; c < d; ++c) s += double(q(b, h, i, c)) * double(k(b, g, j, c));
          w[j] = s * scale;
          m = std::max(m, w[j]);
        }
        double total = 0.0;
        for (std::size_t j = 0; j < visible; ++j) total += (w[j] = std::exp(w[j] - m));
        for (std::size_t c = 0; c < dv; ++c) {
          double o = 0.0;
          for (std::size_t j = 0; j < visible; ++j) o += w[j] * double(v(b, g, j, c));
          out(b, h, i, c) = o / total;
        }
      }
    }
  return out;
}

}  // namespace attn::ref
