// Lesson 09, the float32 kernel's device functions one at a time, in the order of the
// README (TODOs 09.1 to 09.8): each runs alone in a test kernel of flash_kernels.cu
// (attn::gpu::testing) and is compared with hand-computed values or a float64 loop.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "flash_kernels.hpp"

using namespace attn;
using cuda::DeviceBuffer;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kSentinel = -7.0f;  // in output memory that a function must not write

/// A device buffer's contents as a (rows, cols) tensor.
Tensor2 download(const DeviceBuffer<float>& buffer, std::size_t rows, std::size_t cols) {
  Tensor2 t({rows, cols});
  const std::vector<float> host = buffer.download();
  REQUIRE(host.size() == rows * cols);
  std::copy(host.begin(), host.end(), t.begin());
  return t;
}

std::vector<float> elements(const Tensor2& t) { return std::vector<float>(t.begin(), t.end()); }

int as_int(std::size_t n) { return static_cast<int>(n); }

/// "{5, 7, 8}": a failed check of two of them shows both (doctest prints a vector as {?}).
std::string text(const std::vector<int>& values) {
  std::string out = "{";
  for (std::size_t n = 0; n < values.size(); ++n) out += (n > 0 ? ", " : "") + std::to_string(values[n]);
  return out + "}";
}

/// expf's error, relative: CUDA's is within 2 ulp (CUDA C++ Programming Guide, the
/// single-precision mathematical functions), 2 ulp <= 4 u; glibc's is within 1 ulp.
constexpr std::size_t kExpRoundings = 4;

/// exp of a float32 difference x - y with |x - y| <= spread: the subtraction rounds by a
/// relative u, which moves the exponent by up to spread * u, and expf adds its own error.
double rtol_exp_of_difference(double spread) {
  return gamma_n(static_cast<std::size_t>(std::ceil(spread)) + kExpRoundings);
}

}  // namespace

TEST_CASE("block_heads: block y = b * H + h serves batch b and query head h, which reads KV head h / (H/G)") {
  struct Case {
    int batch, heads, kv_heads;
    std::vector<int> g;  // the KV head of query heads 0, 1, ..., by hand: repeat_interleave order
  };
  const std::vector<Case> cases = {{2, 6, 2, {0, 0, 0, 1, 1, 1}},
                                   {1, 8, 4, {0, 0, 1, 1, 2, 2, 3, 3}},
                                   {1, 4, 1, {0, 0, 0, 0}},
                                   {2, 3, 3, {0, 1, 2}}};
  for (const Case& c : cases) {
    CAPTURE(c.heads);
    CAPTURE(c.kv_heads);
    DeviceBuffer<int> bhg(static_cast<std::size_t>(3 * c.batch * c.heads));
    gpu::testing::block_heads(c.batch, c.heads, c.kv_heads, bhg.get());
    const std::vector<int> got = bhg.download();
    for (int b = 0; b < c.batch; ++b)
      for (int h = 0; h < c.heads; ++h) {
        CAPTURE(b);
        CAPTURE(h);
        const std::size_t y = static_cast<std::size_t>(b * c.heads + h);
        CHECK(got[3 * y] == b);
        CHECK(got[3 * y + 1] == h);
        CHECK(got[3 * y + 2] == c.g[static_cast<std::size_t>(h)]);
      }
  }
}

TEST_CASE("stage_query_row: each warp stores its query row times the scale, and zeros past Tq") {
  // Tq = 27: two query tiles, the second with 5 padding rows. D = 100 spans four groups
  // of 32 columns, the last one partial.
  const std::size_t tq = 27, rows = 2 * gpu::kFlashRows;
  for (const std::size_t d : {std::size_t{7}, std::size_t{100}}) {
    CAPTURE(d);
    const Tensor2 q = random_uniform<2>({tq, d}, 1001 + d);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    DeviceBuffer<float> dq(elements(q)), staged(rows * d);
    gpu::testing::stage_query_rows(dq.get(), as_int(tq), as_int(d), scale, staged.get());
    ref::Matrix want = xt::zeros<double>({rows, d});
    for (std::size_t i = 0; i < tq; ++i)
      for (std::size_t c = 0; c < d; ++c) want(i, c) = static_cast<double>(q(i, c)) * scale;
    ATTN_CHECK_CLOSE(download(staged, rows, d), want, (Tolerance{0.0, kUnitRoundoff, "one float32 product: u"}));
  }
}

TEST_CASE("causal_key_range: a block reads the keys its last row sees, each row masks its own") {
  struct Case {
    int rows, tq, tk, q_offset;
    bool causal;
    std::vector<int> kv_end, row_end;  // by hand
  };
  // Rows of 2: row i at position 3 + i sees keys 0 .. 3 + i; the last block has one row.
  // Then the kernel's 16-row tiles at offset 0, and one decode query at the last position.
  const std::vector<Case> cases = {
      {2, 5, 9, 3, true, {5, 7, 8}, {4, 5, 6, 7, 8}},
      {2, 5, 9, 0, false, {9, 9, 9}, {9, 9, 9, 9, 9}},
      {16, 21, 90, 0, true, {16, 21}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}},
      {16, 1, 97, 96, true, {97}, {97}}};
  for (const Case& c : cases) {
    CAPTURE(c.rows);
    CAPTURE(c.tq);
    CAPTURE(c.q_offset);
    CAPTURE(c.causal);
    DeviceBuffer<int> kv_end(c.kv_end.size()), row_end(c.row_end.size());
    gpu::testing::causal_key_range(c.rows, c.tq, c.tk, c.causal, c.q_offset, kv_end.get(), row_end.get());
    INFO("kv_end: one value per block of ", c.rows, " rows; row_end: one per query row (got == expected)");
    CHECK(text(kv_end.download()) == text(c.kv_end));
    CHECK(text(row_end.download()) == text(c.row_end));
  }
}

TEST_CASE("load_kv_tile: the block copies a tile of keys and values, zeros from kv_end on, reading none of those") {
  const std::size_t tk = 45, keys = gpu::kFlashKeys;
  for (const std::size_t d : {std::size_t{33}, std::size_t{128}}) {
    Tensor2 k = random_uniform<2>({tk, d}, 1011 + d), v = random_uniform<2>({tk, d}, 1012 + d);
    // Keys 40..44 lie past kv_end = 40 of the second case: NaN shows if they are read.
    const std::size_t kv_end2 = 40;
    xt::view(k, xt::range(kv_end2, tk)) = std::numeric_limits<float>::quiet_NaN();
    xt::view(v, xt::range(kv_end2, tk)) = std::numeric_limits<float>::quiet_NaN();
    const DeviceBuffer<float> dk(elements(k)), dv(elements(v));
    for (const auto& [k0, kv_end] : {std::pair<std::size_t, std::size_t>{0, kv_end2}, {32, kv_end2}}) {
      CAPTURE(d);
      CAPTURE(k0);
      DeviceBuffer<float> k_tile(keys * d), v_tile(keys * d);
      gpu::testing::load_kv_tile(dk.get(), dv.get(), as_int(k0), as_int(kv_end), as_int(d), k_tile.get(),
                                 v_tile.get());
      Tensor2 k_want = xt::zeros<float>({keys, d}), v_want = xt::zeros<float>({keys, d});
      for (std::size_t j = 0; k0 + j < kv_end && j < keys; ++j) {
        xt::view(k_want, j) = xt::view(k, k0 + j);
        xt::view(v_want, j) = xt::view(v, k0 + j);
      }
      const Tolerance exact{0.0, 0.0, "a copy is exact"};
      INFO("rows (keys) of the tile, from k0; expected zeros from kv_end = ", kv_end,
           " on. NaN in a row: it was left unwritten (the test fills the shared tiles with NaN first) "
           "or read from a key at or past kv_end (NaN there in k and v, which the function must not read)");
      ATTN_CHECK_CLOSE(download(k_tile, keys, d), k_want, exact);
      ATTN_CHECK_CLOSE(download(v_tile, keys, d), v_want, exact);
    }
  }
}

TEST_CASE("tile_score: lane j scores key k0 + j against its warp's row, -infinity from the row's row_end on") {
  const std::size_t rows = gpu::kFlashRows, keys = gpu::kFlashKeys;
  const int k0 = 64;
  std::vector<int> row_end(rows);  // rows 0 and 1 see none of the tile's keys, rows 12 to 15 all of them
  for (std::size_t r = 0; r < rows; ++r) row_end[r] = 60 + 3 * as_int(r);
  for (const std::size_t d : {std::size_t{7}, std::size_t{128}}) {
    CAPTURE(d);
    const Tensor2 q = random_uniform<2>({rows, d}, 1021 + d), k = random_uniform<2>({keys, d}, 1022 + d);
    DeviceBuffer<float> dq(elements(q)), dk(elements(k)), s(rows * keys);
    DeviceBuffer<int> d_row_end(row_end);
    gpu::testing::tile_score(dq.get(), dk.get(), k0, d_row_end.get(), as_int(d), s.get());
    Tensor2 got = download(s, rows, keys);
    ref::Matrix want({rows, keys});
    double scale = 0.0;  // the largest sum of |q_c k_c|
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t j = 0; j < keys; ++j) {
        double dot = 0.0, magnitude = 0.0;
        for (std::size_t c = 0; c < d; ++c) {
          dot += static_cast<double>(q(r, c)) * k(j, c);
          magnitude += std::abs(static_cast<double>(q(r, c)) * k(j, c));
        }
        const bool hidden = k0 + as_int(j) >= row_end[r];
        want(r, j) = hidden ? -kInf : dot;
        scale = std::max(scale, magnitude);
      }
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t j = 0; j < keys; ++j) {
        CAPTURE(r);
        CAPTURE(j);
        CHECK((want(r, j) == -kInf) == (got(r, j) == -std::numeric_limits<float>::infinity()));
        if (want(r, j) == -kInf) want(r, j) = got(r, j) = 0.0f;  // compared above
      }
    ATTN_CHECK_CLOSE(got, want, tol_reduction(d, scale));  // a float32 dot product of D terms
  }
}

TEST_CASE("online_softmax_update: the running maximum and sum after each tile, and alpha = exp(m_old - m_new)") {
  // Four tiles of 32 scores in [-2, 4]: the first with hidden keys (-infinity), the second
  // and fourth raising the maximum, the third hidden from the row entirely (alpha = 1, p = 0).
  const std::size_t tiles = 4, lanes = 32;
  Tensor2 s = random_uniform<2>({tiles, lanes}, 1031, -2.0f, 2.0f);
  xt::view(s, 0, xt::range(20, 32)) = -std::numeric_limits<float>::infinity();
  xt::view(s, 1) += 1.0f;
  xt::view(s, 2) = -std::numeric_limits<float>::infinity();
  xt::view(s, 3) += 2.0f;
  DeviceBuffer<float> ds(elements(s)), p(tiles * lanes), alpha(tiles * lanes), m(tiles * lanes),
      l(tiles * lanes);
  gpu::testing::online_softmax_update(ds.get(), as_int(tiles), p.get(), alpha.get(), m.get(), l.get());

  ref::Matrix p_want({tiles, lanes}), alpha_want({tiles, lanes}), m_want({tiles, lanes}), l_want({tiles, lanes});
  double m_run = -kInf;
  std::vector<double> seen;  // every visible score so far
  for (std::size_t t = 0; t < tiles; ++t) {
    double m_new = m_run;
    for (std::size_t j = 0; j < lanes; ++j) m_new = std::max(m_new, static_cast<double>(s(t, j)));
    double l_new = 0.0;
    for (std::size_t j = 0; j < lanes; ++j)
      if (std::isfinite(s(t, j))) seen.push_back(s(t, j));
    for (const double x : seen) l_new += std::exp(x - m_new);
    for (std::size_t j = 0; j < lanes; ++j) {
      p_want(t, j) = std::exp(static_cast<double>(s(t, j)) - m_new);  // 0 for a hidden key
      alpha_want(t, j) = std::exp(m_run - m_new);                     // 0 on the first tile
      m_want(t, j) = m_new;
      l_want(t, j) = l_new;
    }
    m_run = m_new;
  }
  // Every exponent is a float32 difference of two numbers in [-2, 4], at most 6 apart.
  const double rtol_exp = rtol_exp_of_difference(6.0);
  // l: each tile adds its 32 p (a 32-term float32 sum) and rescales what it held by alpha;
  // per tile, a term's error grows by its p's or alpha's exp and two roundings.
  const double rtol_l = gamma_n(lanes + 2 * tiles) + static_cast<double>(tiles) * rtol_exp;
  ATTN_CHECK_CLOSE(download(m, tiles, lanes), m_want, (Tolerance{0.0, 0.0, "a maximum is exact"}));
  ATTN_CHECK_CLOSE(download(p, tiles, lanes), p_want, (Tolerance{0.0, rtol_exp, "expf of a rounded difference"}));
  ATTN_CHECK_CLOSE(download(alpha, tiles, lanes), alpha_want,
                   (Tolerance{0.0, rtol_exp, "expf of a rounded difference"}));
  ATTN_CHECK_CLOSE(download(l, tiles, lanes), l_want,
                   (Tolerance{0.0, rtol_l, "gamma_{32 + 2 tiles} + tiles * the exp's error"}));
}

TEST_CASE("accumulate_pv: o = alpha o + the tile's probabilities times its values, column lane + 32 r in lane") {
  const std::size_t keys = gpu::kFlashKeys;
  for (const std::size_t d : {std::size_t{7}, std::size_t{100}}) {
    CAPTURE(d);
    const Tensor2 p = random_uniform<2>({1, keys}, 1041 + d, 0.0f, 1.0f);
    const Tensor2 v = random_uniform<2>({keys, d}, 1042 + d), o = random_uniform<2>({1, d}, 1043 + d);
    const float alpha = 0.375f;
    DeviceBuffer<float> dp(elements(p)), dv(elements(v)), dout(elements(o));
    gpu::testing::accumulate_pv(dp.get(), alpha, dv.get(), dout.get(), as_int(d));
    ref::Matrix want({1, d});
    double scale = 0.0;  // the largest sum of the terms' magnitudes
    for (std::size_t c = 0; c < d; ++c) {
      double sum = static_cast<double>(alpha) * o(0, c), magnitude = std::abs(sum);
      for (std::size_t j = 0; j < keys; ++j) {
        sum += static_cast<double>(p(0, j)) * v(j, c);
        magnitude += std::abs(static_cast<double>(p(0, j)) * v(j, c));
      }
      want(0, c) = sum;
      scale = std::max(scale, magnitude);
    }
    ATTN_CHECK_CLOSE(download(dout, 1, d), want, tol_reduction(keys + 1, scale));  // alpha o and 32 products
  }
}

TEST_CASE("write_output: the row's output o / l, and nothing past column D") {
  const std::size_t width = gpu::kFlashMaxHeadDim;
  for (const std::size_t d : {std::size_t{7}, std::size_t{100}, std::size_t{128}}) {
    CAPTURE(d);
    const Tensor2 o = random_uniform<2>({1, d}, 1051 + d);
    const float l = 3.7f;
    DeviceBuffer<float> dout(elements(o)), out(std::vector<float>(width, kSentinel));
    gpu::testing::write_output(dout.get(), l, as_int(d), out.get());
    ref::Matrix want = xt::ones<double>({std::size_t{1}, width}) * kSentinel;
    for (std::size_t c = 0; c < d; ++c) want(0, c) = static_cast<double>(o(0, c)) / l;
    INFO("columns 0 to D - 1 expect o / l; columns D to ", width - 1, " hold the sentinel ", kSentinel,
         ", which marks memory write_output must not write. The test gives each lane NaN for its o[r] "
         "past column D, so NaN there means a column at or past D was written");
    ATTN_CHECK_CLOSE(download(out, 1, width), want, (Tolerance{0.0, kUnitRoundoff, "one float32 division: u"}));
  }
}
