// Lesson 09, the tensor-core kernel's device functions one at a time, in the order of
// the README (TODOs 09.10 to 09.14): each runs alone in a test kernel of
// flash_kernels.cu (attn::gpu::testing), against a float64 loop on the same
// half-rounded inputs or hand-computed values.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/cuda_fp16.hpp"
#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "flash_kernels.hpp"
#include "half_rounding.hpp"

using namespace attn;
using cuda::DeviceBuffer;
using testing_fp16::round_to_half;
using testing_fp16::tol_tensor_core_sum;

namespace {

constexpr std::size_t kRows = 16;  // a warp's rows
constexpr std::size_t kKeys = gpu::kFlashTcKeys;
constexpr float kSentinel = -7.0f;  // in output memory that a function must not write

Tensor2 download(const DeviceBuffer<float>& buffer, std::size_t rows, std::size_t cols) {
  Tensor2 t({rows, cols});
  const std::vector<float> host = buffer.download();
  REQUIRE(host.size() == rows * cols);
  std::copy(host.begin(), host.end(), t.begin());
  return t;
}

std::vector<float> elements(const Tensor2& t) { return std::vector<float>(t.begin(), t.end()); }

/// t's elements as halves (the device's operands), and the same values as floats.
std::vector<__half> halves(const Tensor2& t) {
  std::vector<__half> h(t.size());
  std::transform(t.begin(), t.end(), h.begin(), [](float x) { return __float2half(x); });
  return h;
}
Tensor2 rounded(const Tensor2& t) {
  Tensor2 r = t;
  std::transform(r.begin(), r.end(), r.begin(), round_to_half);
  return r;
}

int as_int(std::size_t n) { return static_cast<int>(n); }

/// expf's error, relative: CUDA's is within 2 ulp (CUDA C++ Programming Guide, the
/// single-precision mathematical functions), 2 ulp <= 4 u; glibc's is within 1 ulp.
/// Of a float32 difference |x - y| <= spread, the rounding of the difference moves the
/// exponent by up to spread * u.
double rtol_exp_of_difference(double spread) { return gamma_n(static_cast<std::size_t>(std::ceil(spread)) + 4); }

}  // namespace

TEST_CASE("stage_queries: each warp's fragments hold its 16 query rows, zeros past Tq, and k_s is free afterwards") {
  // The fragments are read back through the tensor cores, times the identity (exact).
  // Right after the call the test kernel writes NaN over k_s, as the first key tile would.
  const std::size_t tq = 70, rows = gpu::kFlashTcRows;
  for (const std::size_t d : {std::size_t{48}, std::size_t{128}}) {
    const Tensor2 q = random_uniform<2>({tq, d}, 1101 + d);
    const DeviceBuffer<__half> dq(halves(q));
    for (const std::size_t i0 : {std::size_t{0}, std::size_t{64}}) {  // 64 rows; 6 rows and 58 of padding
      CAPTURE(d);
      CAPTURE(i0);
      DeviceBuffer<float> out(rows * d);
      gpu::testing::stage_queries(dq.get(), as_int(i0), as_int(tq), as_int(d), out.get());
      Tensor2 want = xt::zeros<float>({rows, d});
      for (std::size_t r = 0; r < rows && i0 + r < tq; ++r)
        for (std::size_t c = 0; c < d; ++c) want(r, c) = round_to_half(q(i0 + r, c));
      ATTN_CHECK_CLOSE(download(out, rows, d), want, (Tolerance{0.0, 0.0, "halves times the identity are exact"}));
    }
  }
}

TEST_CASE("warp_scores: the tensor cores give the warp's 16 x 64 scores Q K^T, read from the key tile as it lies") {
  for (const std::size_t d : {std::size_t{16}, std::size_t{80}, std::size_t{128}}) {
    CAPTURE(d);
    const Tensor2 q = random_uniform<2>({kRows, d}, 1111 + d), k = random_uniform<2>({kKeys, d}, 1112 + d);
    const Tensor2 qh = rounded(q), kh = rounded(k);
    DeviceBuffer<__half> dq(halves(q)), dk(halves(k));
    DeviceBuffer<float> s(kRows * kKeys);
    gpu::testing::warp_scores(dq.get(), dk.get(), as_int(d), s.get());
    ref::Matrix want({kRows, kKeys});
    double scale = 0.0;
    for (std::size_t r = 0; r < kRows; ++r)
      for (std::size_t j = 0; j < kKeys; ++j) {
        double dot = 0.0, magnitude = 0.0;
        for (std::size_t c = 0; c < d; ++c) {
          dot += static_cast<double>(qh(r, c)) * kh(j, c);
          magnitude += std::abs(static_cast<double>(qh(r, c)) * kh(j, c));
        }
        want(r, j) = dot;
        scale = std::max(scale, magnitude);
      }
    ATTN_CHECK_CLOSE(download(s, kRows, kKeys), want, tol_tensor_core_sum(d, scale));
  }
}

TEST_CASE("warp_online_softmax: two lanes per row update m and l, write p rounded to half, and rescale the row's output") {
  // Two tiles of 64 scores; scale 0.5 keeps s * scale exact, in [-2, 3]. Row r sees the
  // keys below 5 + 9 r: rows 0 to 6 see part of the first tile and none of the second
  // (alpha = 1 there), rows 7 to 15 all of the first and part or all of the second,
  // where the odd rows' scores are larger (alpha < 1).
  const std::size_t tiles = 2, d = 48;
  const float scale = 0.5f;
  Tensor2 s = random_uniform<2>({tiles * kRows, kKeys}, 1121, -4.0f, 4.0f);
  for (std::size_t r = 1; r < kRows; r += 2) xt::view(s, kRows + r) += 2.0f;
  std::vector<int> row_end(kRows);
  for (std::size_t r = 0; r < kRows; ++r) row_end[r] = 5 + 9 * as_int(r);
  DeviceBuffer<float> ds(elements(s)), p(tiles * kRows * kKeys), o(tiles * kRows * d), m(tiles * 32), l(tiles * 32);
  DeviceBuffer<int> d_row_end(row_end);
  gpu::testing::warp_online_softmax(ds.get(), as_int(tiles), d_row_end.get(), scale, as_int(d), p.get(), o.get(),
                                    m.get(), l.get());
  const Tensor2 p_got = download(p, tiles * kRows, kKeys), o_got = download(o, tiles * kRows, d);
  const Tensor2 m_got = download(m, tiles, 32), l_got = download(l, tiles, 32);

  ref::Matrix p_want({tiles * kRows, kKeys}), o_want({tiles * kRows, d}), m_want({tiles, 32}), l_want({tiles, 32});
  for (std::size_t r = 0; r < kRows; ++r) {
    double m_run = -std::numeric_limits<double>::infinity(), l_run = 0.0;
    for (std::size_t t = 0; t < tiles; ++t) {
      const auto visible = [&](std::size_t j) { return as_int(t * kKeys + j) < row_end[r]; };
      double m_new = m_run;
      for (std::size_t j = 0; j < kKeys; ++j)
        if (visible(j)) m_new = std::max(m_new, static_cast<double>(s(t * kRows + r, j)) * scale);
      const double alpha = std::exp(m_run - m_new);  // 0 on the first tile
      double sum = 0.0;  // of the kernel's own rounded p: l must sum the weights the tensor cores use
      for (std::size_t j = 0; j < kKeys; ++j) {
        p_want(t * kRows + r, j) = visible(j) ? std::exp(static_cast<double>(s(t * kRows + r, j)) * scale - m_new) : 0.0;
        sum += p_got(t * kRows + r, j);
      }
      l_run = alpha * l_run + sum;
      m_run = m_new;
      for (std::size_t c = 0; c < d; ++c) o_want(t * kRows + r, c) = alpha;  // the rows held ones before the call
      for (const std::size_t lane : {2 * r, 2 * r + 1}) {
        m_want(t, lane) = m_run;
        l_want(t, lane) = l_run;
      }
    }
  }
  // Exponents are float32 differences of numbers in [-2, 3]: at most 5 apart.
  const double rtol_exp = rtol_exp_of_difference(5.0);
  // p: expf's error, then the rounding to half, a relative 2^-11 (2^-25 absolute below 2^-14).
  const Tolerance tol_p{0x1p-25, 0x1p-11 + 2.0 * rtol_exp, "expf, then rounded to half: 2^-11 + 2 e"};
  // l: per tile, a 32-term float32 sum in each lane, the other lane's sum added, alpha's
  // error, and two roundings (l alpha and the addition).
  const Tolerance tol_l{0.0, static_cast<double>(tiles) * (gamma_n(kKeys / 2 + 3) + rtol_exp),
                        "per tile gamma_{32 + 3} + the exp's error"};
  ATTN_CHECK_CLOSE(m_got, m_want, (Tolerance{0.0, 0.0, "a maximum of exact products is exact"}));
  ATTN_CHECK_CLOSE(p_got, p_want, tol_p);
  ATTN_CHECK_CLOSE(o_got, o_want, (Tolerance{0.0, rtol_exp, "alpha: expf of a rounded difference"}));
  ATTN_CHECK_CLOSE(l_got, l_want, tol_l);
}

TEST_CASE("warp_accumulate_pv: the tensor cores add the tile's P V to the warp's running output in shared memory") {
  for (const std::size_t d : {std::size_t{16}, std::size_t{80}}) {
    CAPTURE(d);
    const Tensor2 p = random_uniform<2>({kRows, kKeys}, 1131 + d, 0.0f, 1.0f);
    const Tensor2 v = random_uniform<2>({kKeys, d}, 1132 + d), o = random_uniform<2>({kRows, d}, 1133 + d);
    const Tensor2 ph = rounded(p), vh = rounded(v);
    DeviceBuffer<__half> dp(halves(p)), dv(halves(v));
    DeviceBuffer<float> dout(elements(o));
    gpu::testing::warp_accumulate_pv(dp.get(), dv.get(), dout.get(), as_int(d));
    ref::Matrix want({kRows, d});
    double scale = 0.0;
    for (std::size_t r = 0; r < kRows; ++r)
      for (std::size_t c = 0; c < d; ++c) {
        double sum = o(r, c), magnitude = std::abs(sum);
        for (std::size_t j = 0; j < kKeys; ++j) {
          sum += static_cast<double>(ph(r, j)) * vh(j, c);
          magnitude += std::abs(static_cast<double>(ph(r, j)) * vh(j, c));
        }
        want(r, c) = sum;
        scale = std::max(scale, magnitude);
      }
    ATTN_CHECK_CLOSE(download(dout, kRows, d), want, tol_tensor_core_sum(kKeys + 1, scale));
  }
}

TEST_CASE("warp_write_output: the warp's rows o / l below Tq, l of row r taken from lane 2 r") {
  const std::size_t d = 48, tq = 27, height = 32;
  const Tensor2 o = random_uniform<2>({kRows, d}, 1141);
  const Tensor2 l = random_uniform<2>({1, kRows}, 1142, 1.0f, 3.0f);
  const DeviceBuffer<float> d_o(elements(o)), d_l(elements(l));
  for (const std::size_t row0 : {std::size_t{0}, std::size_t{16}, std::size_t{32}}) {  // all, 11, no rows below Tq
    CAPTURE(row0);
    DeviceBuffer<float> out(std::vector<float>(height * d, kSentinel));
    gpu::testing::warp_write_output(d_o.get(), d_l.get(), as_int(row0), as_int(tq), as_int(d), out.get());
    ref::Matrix want = xt::ones<double>({height, d}) * kSentinel;
    for (std::size_t r = 0; r < kRows && row0 + r < std::min(tq, height); ++r)
      for (std::size_t c = 0; c < d; ++c) want(row0 + r, c) = static_cast<double>(o(r, c)) / l(0, r);
    INFO("rows row0 to row0 + 15 below Tq = ", tq, " expect o / l; every other element holds the sentinel ",
         kSentinel, ", which marks memory warp_write_output must not write (rows past Tq, rows outside row0 to row0 + 15)");
    ATTN_CHECK_CLOSE(download(out, height, d), want, (Tolerance{0.0, kUnitRoundoff, "one float32 division: u"}));
  }
}
