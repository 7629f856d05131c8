// Lesson 10, part 2: the device functions of decode_partial_kernel, each run alone by a
// small test kernel (decode_kernels.hpp, namespace attn::gpu::testing) and checked
// against float64 loops or exact values.
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "decode_kernels.hpp"

using namespace attn;

namespace {

constexpr std::size_t kKeys = gpu::kDecodeKeys;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
const Tolerance kExact{0.0, 0.0, "a copy (or one float32 product, the same on both sides) is exact"};

template <std::size_t N>
cuda::DeviceBuffer<float> to_device(const xt::xtensor<float, N>& t) {
  return cuda::DeviceBuffer<float>(std::span<const float>(t.data(), t.size()));
}

template <std::size_t N>
xt::xtensor<float, N> to_host(const cuda::DeviceBuffer<float>& buffer, const std::array<std::size_t, N>& shape) {
  xt::xtensor<float, N> t(shape);
  const std::vector<float> data = buffer.download();
  REQUIRE(data.size() == t.size());
  std::copy(data.begin(), data.end(), t.begin());
  return t;
}

/// The relative error of a float32 e^x computed from float operands, |x| <= x_max: the
/// argument x = a - b is rounded once (|dx| <= u |x|, a relative u |x| in e^x), and expf
/// is within 2 ulp = 4u (CUDA's documented bound; the emulator's std::exp is within 1).
double exp_error(double x_max) { return (x_max + 4.0) * kUnitRoundoff; }

}  // namespace

TEST_CASE("stage_group_query: warp w of KV head g stages query head g (H/G) + w, times the scale") {
  const std::size_t nb = 2, nh = 6, ng = 2, d = 33, group = nh / ng;
  const Tensor4 q = random_uniform<4>({nb, nh, 1, d}, 2000);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const auto dq = to_device(q);
  cuda::DeviceBuffer<float> staged(nb * ng * group * d);
  cuda::DeviceBuffer<int> heads(nb * ng * group);
  gpu::testing::stage_group_query(dq.get(), staged.get(), heads.get(), int(nb), int(nh), int(ng), int(d), scale);
  const auto got = to_host<3>(staged, {nb * ng, group, d});
  const std::vector<int> got_heads = heads.download();
  xt::xtensor<float, 3> want({nb * ng, group, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g)
      for (std::size_t w = 0; w < group; ++w) {
        const std::size_t h = g * group + w;  // repeat_interleave order
        CHECK_MESSAGE(got_heads[(b * ng + g) * group + w] == int(h), "the head returned by warp ", w, " of b = ", b,
                      ", g = ", g, " must be g (H/G) + w = ", h);
        for (std::size_t c = 0; c < d; ++c) want(b * ng + g, w, c) = q(b, h, 0, c) * scale;
      }
  ATTN_CHECK_CLOSE_NAMED("the staged queries q_tile[w][c] = q(b, g (H/G) + w, 0, c) / sqrt(D), "
                         "at (block b G + g, warp w, column c)",
                         got, want, kExact);
}

TEST_CASE("load_kv_tile: the block copies 32 keys and values of the chunk, zeros past its end") {
  const std::size_t rows = 100, d = 40, group = 3;  // 96 threads for 32 x 40 elements
  const Tensor2 k = random_uniform<2>({rows, d}, 2010), v = random_uniform<2>({rows, d}, 2011);
  const auto dk = to_device(k), dv = to_device(v);
  for (const auto& [k0, k_end] : {std::pair<std::size_t, std::size_t>{32, 50}, {64, 100}, {0, 1}}) {
    CAPTURE(k0);
    CAPTURE(k_end);
    cuda::DeviceBuffer<float> k_out(kKeys * d), v_out(kKeys * d);
    gpu::testing::load_kv_tile(dk.get(), dv.get(), k_out.get(), v_out.get(), int(group), int(k0), int(k_end),
                               int(d));
    Tensor2 want_k = xt::zeros<float>({kKeys, d}), want_v = want_k;
    for (std::size_t j = 0; j < kKeys && k0 + j < k_end; ++j) {
      xt::view(want_k, j) = xt::view(k, k0 + j);
      xt::view(want_v, j) = xt::view(v, k0 + j);
    }
    ATTN_CHECK_CLOSE_NAMED("k_tile after the load (keys k0 + j, zeros from k_end on), at (j, column)",
                           to_host<2>(k_out, {kKeys, d}), want_k, kExact);
    ATTN_CHECK_CLOSE_NAMED("v_tile after the load (values k0 + j, zeros from k_end on), at (j, column)",
                           to_host<2>(v_out, {kKeys, d}), want_v, kExact);
  }
}

TEST_CASE("tile_score: lane j scores key k0 + j against its warp's query row, -infinity past the chunk") {
  const std::size_t group = 4, d = 65;
  const Tensor2 q_rows = random_uniform<2>({group, d}, 2020), k_rows = random_uniform<2>({kKeys, d}, 2021);
  const auto dq = to_device(q_rows), dk = to_device(k_rows);
  for (const std::size_t valid : {std::size_t{20}, kKeys}) {
    CAPTURE(valid);
    const std::size_t k0 = 32;
    cuda::DeviceBuffer<float> scores(group * kKeys);
    gpu::testing::tile_scores(dq.get(), dk.get(), scores.get(), int(group), int(k0), int(k0 + valid), int(d));
    const auto got = to_host<2>(scores, {group, kKeys});
    xt::xtensor<double, 2> want({group, valid});
    double scale = 0.0;  // the largest sum of |q_c k_c|
    for (std::size_t w = 0; w < group; ++w)
      for (std::size_t j = 0; j < valid; ++j) {
        double s = 0.0, a = 0.0;
        for (std::size_t c = 0; c < d; ++c) {
          s += double(q_rows(w, c)) * double(k_rows(j, c));
          a += std::abs(double(q_rows(w, c)) * double(k_rows(j, c)));
        }
        want(w, j) = s;
        scale = std::max(scale, a);
      }
    const Tensor2 inside = xt::view(got, xt::all(), xt::range(std::size_t{0}, valid));
    ATTN_CHECK_CLOSE_NAMED("the scores of the keys before k_end, at (warp, lane)", inside, want,
                           tol_reduction(d, scale));
    for (std::size_t w = 0; w < group; ++w)
      for (std::size_t j = valid; j < kKeys; ++j)
        CHECK_MESSAGE(got(w, j) == kNegInf, "the score of warp ", w, ", lane ", j,
                      " (a key at or past k_end) must be -infinity, got ", got(w, j));
  }
}

TEST_CASE("online_softmax_update: m, l and p of a row after each tile, and alpha = e^(m_old - m_new)") {
  // Row 0: every tile raises the maximum (alpha < 1); row 1: only the first tile sets it
  // (alpha = 1 afterwards); row 2: random, its last tile ends after 10 keys (-infinity).
  const std::size_t group = 3, tiles = 4;
  xt::xtensor<float, 3> scores = random_uniform<3>({tiles, group, kKeys}, 2030, -2.0f, 2.0f);
  for (std::size_t t = 0; t < tiles; ++t) {
    xt::view(scores, t, 0) += 1.5f * static_cast<float>(t);
    xt::view(scores, t, 1) -= 1.5f * static_cast<float>(t);
  }
  for (std::size_t j = 10; j < kKeys; ++j) scores(tiles - 1, 2, j) = kNegInf;
  const auto ds = to_device(scores);
  cuda::DeviceBuffer<float> alpha(tiles * group), m(tiles * group), l(tiles * group), p(tiles * group * kKeys);
  gpu::testing::online_softmax_rows(ds.get(), alpha.get(), m.get(), l.get(), p.get(), int(group), int(tiles));

  // The same recurrence in float64, on the same float32 scores.
  xt::xtensor<double, 2> want_alpha({tiles, group}), want_m({tiles, group}), want_l({tiles, group});
  xt::xtensor<double, 3> want_p({tiles, group, kKeys});
  double x_max = 0.0;  // the largest |argument| of an exp
  for (std::size_t w = 0; w < group; ++w) {
    double m_old = -std::numeric_limits<double>::infinity(), l_old = 0.0;
    for (std::size_t t = 0; t < tiles; ++t) {
      double m_new = m_old, sum = 0.0;
      for (std::size_t j = 0; j < kKeys; ++j) m_new = std::max(m_new, double(scores(t, w, j)));
      for (std::size_t j = 0; j < kKeys; ++j) {
        const double x = double(scores(t, w, j)) - m_new;
        want_p(t, w, j) = std::exp(x);
        sum += want_p(t, w, j);
        if (std::isfinite(x)) x_max = std::max(x_max, std::abs(x));
      }
      want_alpha(t, w) = std::exp(m_old - m_new);  // 0 on the first tile
      if (t > 0) x_max = std::max(x_max, std::abs(m_old - m_new));
      want_l(t, w) = l_old * want_alpha(t, w) + sum;
      want_m(t, w) = m_new;
      m_old = m_new, l_old = want_l(t, w);
    }
  }
  // Each exp is off by a relative e; l after tile t sums positive terms, each tile adding
  // its p's error, alpha's error and a 34-term sum (32 p, the rescaled l, one addition).
  const double e = exp_error(x_max);
  const double l_rel = double(tiles) * (e + gamma_n(kKeys + 2));
  const auto got_m = to_host<2>(m, {tiles, group}), got_alpha = to_host<2>(alpha, {tiles, group});
  const auto got_l = to_host<2>(l, {tiles, group});
  const auto got_p = to_host<3>(p, {tiles, group, kKeys});
  // Tile by tile, each quantity before those computed from it (m, alpha, p, then l); the
  // first wrong one stops the test, so the report names where the recurrence goes wrong.
  for (std::size_t t = 0; t < tiles; ++t) {
    const std::string tile = " tile " + std::to_string(t) + " (of 0.." + std::to_string(tiles - 1) + ")";
    ATTN_REQUIRE_CLOSE_NAMED("m after" + tile + ", at (warp)", xt::view(got_m, t), xt::view(want_m, t),
                             (Tolerance{0.0, 0.0, "a maximum is exact"}));
    ATTN_REQUIRE_CLOSE_NAMED("alpha = e^(m_old - m_new) of" + tile + " (0 on tile 0), at (warp)",
                             xt::view(got_alpha, t), xt::view(want_alpha, t), (Tolerance{0.0, e, "one exp"}));
    ATTN_REQUIRE_CLOSE_NAMED("p = e^(s - m_new) of" + tile + ", at (warp, lane)", xt::view(got_p, t),
                             xt::view(want_p, t), (Tolerance{0.0, e, "one exp"}));
    ATTN_REQUIRE_CLOSE_NAMED("l = alpha l + sum of p after" + tile + ", at (warp)", xt::view(got_l, t),
                             xt::view(want_l, t),
                             (Tolerance{0.0, l_rel, "tiles * (exp error + gamma_34): positive sums"}));
  }
}

TEST_CASE("accumulate_pv: o = alpha o + p V over one tile, for every column a lane holds") {
  const std::size_t group = 3, d = 70;  // columns lane, lane + 32 and lane + 64 (< 70)
  const Tensor2 o_in = random_uniform<2>({group, d}, 2040, -3.0f, 3.0f);
  const xt::xtensor<float, 1> alpha = {0.0f, 0.375f, 1.0f};  // 0: the first tile of a chunk
  const Tensor2 p = random_uniform<2>({group, kKeys}, 2041, 0.0f, 1.0f);
  const Tensor2 v = random_uniform<2>({kKeys, d}, 2042);
  const auto d_o = to_device(o_in), d_alpha = to_device(alpha), d_p = to_device(p), d_v = to_device(v);
  cuda::DeviceBuffer<float> o_out(group * d);
  gpu::testing::accumulate_pv(d_o.get(), d_alpha.get(), d_p.get(), d_v.get(), o_out.get(), int(group), int(d));
  xt::xtensor<double, 2> want({group, d});
  double scale = 0.0;  // the largest |alpha o| + sum_j |p_j v_jc|
  for (std::size_t w = 0; w < group; ++w)
    for (std::size_t c = 0; c < d; ++c) {
      double s = double(alpha(w)) * double(o_in(w, c)), a = std::abs(s);
      for (std::size_t j = 0; j < kKeys; ++j) {
        s += double(p(w, j)) * double(v(j, c));
        a += std::abs(double(p(w, j)) * double(v(j, c)));
      }
      want(w, c) = s;
      scale = std::max(scale, a);
    }
  ATTN_CHECK_CLOSE_NAMED("o = alpha o + p V, alpha = 0, 0.375 and 1 in warps 0, 1 and 2, at (warp, column)",
                         to_host<2>(o_out, {group, d}), want, tol_reduction(kKeys + 1, scale));
}

TEST_CASE("store_chunk_partial: o, m and l of chunk s of head bh land in slot bh * splits + s") {
  const std::size_t rows = 3, splits = 2, d = 40;
  constexpr float kUntouched = -7.0f;
  const Tensor2 o = random_uniform<2>({rows * splits, d}, 2050);
  const Tensor2 ml = random_uniform<2>({rows * splits, 2}, 2051, 0.5f, 4.0f);
  const auto d_o = to_device(o), d_ml = to_device(ml);
  cuda::DeviceBuffer<float> partial_o(std::vector<float>(rows * splits * d, kUntouched));
  cuda::DeviceBuffer<float> partial_ml(std::vector<float>(rows * splits * 2, kUntouched));
  gpu::testing::store_chunk_partial(d_o.get(), d_ml.get(), partial_o.get(), partial_ml.get(), int(rows),
                                    int(splits), int(d));
  ATTN_CHECK_CLOSE_NAMED("partial_o, the chunk's o not divided by l, at (slot bh * splits + s, column)",
                         to_host<2>(partial_o, {rows * splits, d}), o, kExact);
  ATTN_CHECK_CLOSE_NAMED("partial_ml, at (slot bh * splits + s, 0 for m or 1 for l)",
                         to_host<2>(partial_ml, {rows * splits, 2}), ml, kExact);
}
