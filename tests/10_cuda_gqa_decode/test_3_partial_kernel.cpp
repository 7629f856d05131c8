// Lesson 10, part 3: decode_partial_kernel, the pieces in order, on device buffers: the
// unnormalized output, maximum and sum of every chunk against float64 loops over the
// chunk's keys.
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "decode_kernels.hpp"

using namespace attn;

namespace {

struct Case {
  std::size_t b, h, g, t, capacity, d, splits;
};

/// Float64 partial results of every (b, h, chunk): m, l = sum_j e^(s_j - m) and
/// o = sum_j e^(s_j - m) v_j over the chunk's keys, s_j = q . k_j / sqrt(D).
struct Partials {
  xt::xtensor<double, 3> m, l;  // (B H, splits, 1)
  xt::xtensor<double, 3> o;     // (B H, splits, D)
};

Partials reference(const Case& c, const Tensor4& q, const Tensor4& k, const Tensor4& v, std::size_t chunk) {
  Partials r{xt::xtensor<double, 3>({c.b * c.h, c.splits, 1}), xt::xtensor<double, 3>({c.b * c.h, c.splits, 1}),
             xt::zeros<double>({c.b * c.h, c.splits, c.d})};
  const double scale = 1.0 / std::sqrt(double(c.d));
  for (std::size_t b = 0; b < c.b; ++b)
    for (std::size_t h = 0; h < c.h; ++h)
      for (std::size_t s = 0; s < c.splits; ++s) {
        const std::size_t bh = b * c.h + h, g = h / (c.h / c.g), begin = s * chunk;
        const std::size_t end = std::min(c.t, begin + chunk);
        std::vector<double> score;
        for (std::size_t j = begin; j < end; ++j) {
          double x = 0.0;
          for (std::size_t i = 0; i < c.d; ++i) x += double(q(b, h, 0, i)) * double(k(b, g, j, i));
          score.push_back(x * scale);
        }
        double m = -std::numeric_limits<double>::infinity(), l = 0.0;
        for (const double x : score) m = std::max(m, x);
        for (std::size_t j = begin; j < end; ++j) {
          const double p = std::exp(score[j - begin] - m);
          l += p;
          for (std::size_t i = 0; i < c.d; ++i) r.o(bh, s, i) += p * double(v(b, g, j, i));
        }
        r.m(bh, s, 0) = m;
        r.l(bh, s, 0) = l;
      }
  return r;
}

}  // namespace

TEST_CASE("decode_partial_kernel: each chunk's o, m and l equal float64 sums over its keys") {
  // G = 2 groups of 3 heads, D = 33 over 77 of 80 positions; MHA with more splits than
  // key tiles (empty chunks); MQA with a group of 8 warps.
  for (const Case& c : {Case{2, 6, 2, 77, 80, 33, 1}, Case{2, 6, 2, 77, 80, 33, 3}, Case{1, 4, 4, 40, 41, 64, 4},
                        Case{1, 8, 1, 100, 100, 128, 2}}) {
    CAPTURE(c.h);
    CAPTURE(c.g);
    CAPTURE(c.t);
    CAPTURE(c.d);
    CAPTURE(c.splits);
    const Tensor4 q = random_uniform<4>({c.b, c.h, 1, c.d}, 3000 + c.splits);
    const Tensor4 k = random_uniform<4>({c.b, c.g, c.capacity, c.d}, 3100 + c.t);
    const Tensor4 v = random_uniform<4>({c.b, c.g, c.capacity, c.d}, 3200 + c.t);
    cuda::DeviceBuffer<float> dq(std::span<const float>(q.data(), q.size()));
    cuda::DeviceBuffer<float> dk(std::span<const float>(k.data(), k.size()));
    cuda::DeviceBuffer<float> dv(std::span<const float>(v.data(), v.size()));
    cuda::DeviceBuffer<float> partial_o(c.b * c.h * c.splits * c.d), partial_ml(c.b * c.h * c.splits * 2);
    gpu::launch_decode_partial(dq.get(), dk.get(), dv.get(), partial_o.get(), partial_ml.get(), int(c.b),
                               int(c.h), int(c.g), int(c.t), int(c.capacity), int(c.d),
                               1.0f / std::sqrt(static_cast<float>(c.d)), int(c.splits));
    // Chunks of whole tiles, as launch_decode_partial cuts them.
    const std::size_t keys = gpu::kDecodeKeys;
    const std::size_t chunk = ((c.t + c.splits - 1) / c.splits + keys - 1) / keys * keys;
    const Partials want = reference(c, q, k, v, chunk);
    const std::vector<float> o = partial_o.download(), ml = partial_ml.download();

    // A score is off by at most ds = gamma_{D+1} sqrt(D) Q K (check.hpp, tol_attention), so
    // m by ds and each e^(s_j - m) by a relative 2 ds + gamma (the exp, the rescaling by
    // alpha, an exp and a product, once per tile, the sum of the chunk's n keys).
    const std::size_t n = std::min(chunk, c.t), tiles = chunk / keys;
    const double ds = gamma_n(c.d + 1) * std::sqrt(double(c.d));
    const double rel = 2.0 * ds + gamma_n(n + 2 * tiles + 3);
    double l_max = 0.0;
    for (const double l : want.l) l_max = std::max(l_max, l);
    for (std::size_t bh = 0; bh < c.b * c.h; ++bh)
      for (std::size_t s = 0; s < c.splits; ++s) {
        CAPTURE(bh);
        CAPTURE(s);
        const std::size_t slot = bh * c.splits + s;
        xt::xtensor<float, 1> got_o(std::array<std::size_t, 1>{c.d});
        std::copy_n(o.begin() + std::ptrdiff_t(slot * c.d), c.d, got_o.begin());
        const xt::xtensor<double, 1> want_o = xt::view(want.o, bh, s);
        if (s * chunk >= c.t) {  // an empty chunk: weight 0 in the combine
          CHECK_MESSAGE(ml[2 * slot] == -std::numeric_limits<float>::infinity(),
                        "an empty chunk's m must be -infinity, got ", ml[2 * slot]);
          CHECK_MESSAGE(ml[2 * slot + 1] == 0.0f, "an empty chunk's l must be 0, got ", ml[2 * slot + 1]);
          ATTN_CHECK_CLOSE_NAMED("an empty chunk's o, at (column)", got_o, want_o,
                                 (Tolerance{0.0, 0.0, "an empty chunk's o is 0"}));
          continue;
        }
        CHECK_MESSAGE(std::abs(double(ml[2 * slot]) - want.m(bh, s, 0)) <= ds, "the chunk's m: got ", ml[2 * slot],
                      ", expected ", want.m(bh, s, 0), " within ds = ", ds);
        CHECK_MESSAGE(std::abs(double(ml[2 * slot + 1]) - want.l(bh, s, 0)) <= rel * want.l(bh, s, 0),
                      "the chunk's l: got ", ml[2 * slot + 1], ", expected ", want.l(bh, s, 0), " within a relative ",
                      rel);
        ATTN_CHECK_CLOSE_NAMED("the chunk's o (not divided by l), at (column)", got_o, want_o,
                               (Tolerance{rel * l_max, 0.0, "(2 ds + gamma_{n + 2 tiles + 3}) max l V"}));
      }
  }
}
