// Lesson 10, part 4: decode_combine_kernel on hand-made partial results, chunks with
// different maxima and empty chunks, against the float64 formula.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "decode_kernels.hpp"

using namespace attn;

namespace {

constexpr float kEmpty = -std::numeric_limits<float>::infinity();

/// Runs decode_combine_kernel on hand-made chunks, row r's chunk s having the maximum
/// m[r][s] and the sum l[r][s] (o_s = a random direction times l_s), and checks it
/// against the float64 formula.
void check_combine(const std::vector<std::vector<float>>& m, const std::vector<std::vector<float>>& l,
                   std::uint64_t seed) {
  const std::size_t rows = m.size(), splits = m[0].size(), d = 40;
  const Tensor2 direction = random_uniform<2>({rows * splits, d}, seed);  // o_s / l_s
  Tensor2 o({rows * splits, d}), ml({rows * splits, 2});
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t s = 0; s < splits; ++s) {
      const std::size_t slot = r * splits + s;
      ml(slot, 0) = m[r][s];
      ml(slot, 1) = l[r][s];
      for (std::size_t c = 0; c < d; ++c) o(slot, c) = direction(slot, c) * l[r][s];  // 0 when empty
    }
  cuda::DeviceBuffer<float> d_o(std::span<const float>(o.data(), o.size()));
  cuda::DeviceBuffer<float> d_ml(std::span<const float>(ml.data(), ml.size()));
  cuda::DeviceBuffer<float> out(rows * d);
  gpu::launch_decode_combine(d_o.get(), d_ml.get(), out.get(), int(rows), int(splits), int(d));

  // out(c) = sum_s w_s o_s(c) / sum_s w_s l_s, w_s = e^(m_s - M), in float64.
  xt::xtensor<double, 2> want({rows, d});
  double x_max = 0.0, scale = 0.0;  // the largest |m_s - M|; the largest sum_s w_s |o_s(c)| / sum_s w_s l_s
  for (std::size_t r = 0; r < rows; ++r) {
    double big = -std::numeric_limits<double>::infinity(), den = 0.0;
    for (std::size_t s = 0; s < splits; ++s) big = std::max(big, double(m[r][s]));
    for (std::size_t s = 0; s < splits; ++s) {
      den += std::exp(double(m[r][s]) - big) * double(l[r][s]);
      if (m[r][s] != kEmpty) x_max = std::max(x_max, big - double(m[r][s]));
    }
    for (std::size_t c = 0; c < d; ++c) {
      double num = 0.0, a = 0.0;
      for (std::size_t s = 0; s < splits; ++s) {
        const double w = std::exp(double(m[r][s]) - big);
        num += w * double(o(r * splits + s, c));
        a += w * std::abs(double(o(r * splits + s, c)));
      }
      want(r, c) = num / den;
      scale = std::max(scale, a / den);
    }
  }
  // Each weight is off by a relative e (one rounded subtraction, expf within 2 ulp = 4u);
  // num and den add a product and a sum of `splits` terms; the division one rounding.
  const double e = (x_max + 4.0) * kUnitRoundoff;
  const Tolerance tol{(e + gamma_n(splits + 1)) * scale, e + gamma_n(splits + 2),
                      "weights e^(m_s - M) within (|m_s - M| + 4) u, sums of splits terms, a division"};
  Tensor2 got({rows, d});
  const std::vector<float> host = out.download();
  std::copy(host.begin(), host.end(), got.begin());
  ATTN_CHECK_CLOSE_NAMED("the combined output rows, at (row b H + h, column)", got, want, tol);
}

}  // namespace

TEST_CASE("decode_combine_kernel weighs chunks relative to different maxima by e^(m_s - M), and empty ones by 0") {
  // (m_s, l_s) of each chunk: maxima far apart; chunks 1 and 3 of row 1 are empty (past
  // the last key); row 2's maxima are equal. A chunk's sum is >= 1 (its maximum's term).
  check_combine({{0.5f, 3.0f, -2.0f, 1.0f}, {2.0f, kEmpty, 1.0f, kEmpty}, {-1.0f, -1.0f, -1.0f, -1.0f}},
                {{3.0f, 1.5f, 20.0f, 7.0f}, {2.5f, 0.0f, 12.0f, 0.0f}, {1.0f, 4.0f, 9.0f, 2.0f}}, 4000);
}

TEST_CASE("decode_combine_kernel with a chunk maximum 95 above chunk 0's, where e^(m_s - m_0) overflows float32") {
  // Any M gives the same quotient in exact arithmetic, but float32's e^x overflows past
  // x = 88.7: relative to chunk 0's maximum (or any M below the largest m_s), chunk 1's
  // weight is e^95 = infinity, and the output NaN. Relative to the true M, chunk 0's
  // weight e^-95 is a subnormal (0 where subnormals are flushed): far below the atol.
  check_combine({{0.0f, 95.0f, 40.0f}, {-10.0f, 100.0f, kEmpty}}, {{2.0f, 1.5f, 5.0f}, {3.0f, 2.0f, 0.0f}}, 4010);
}
