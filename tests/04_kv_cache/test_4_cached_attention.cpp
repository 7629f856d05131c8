// Lesson 04, part 4: attention of the newest queries over the cache, read in place.
#include "kv_cache.hpp"

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"
#include "gqa.hpp"

using namespace attn;

namespace {

// Keys (or values) of all positions so far, built apart from the cache: (B, G, T, D).
Tensor4 concat_time(const Tensor4& a, const Tensor4& b) {
  Tensor4 out({a.shape(0), a.shape(1), a.shape(2) + b.shape(2), a.shape(3)});
  xt::view(out, xt::all(), xt::all(), xt::range(0, a.shape(2)), xt::all()) = a;
  xt::view(out, xt::all(), xt::all(), xt::range(a.shape(2), out.shape(2)), xt::all()) = b;
  return out;
}

}  // namespace

TEST_CASE("attend_cached_row: one query row over keys 0 ... last, rows row_stride apart, against float64") {
  // Rows of D = 3 floats, 5 apart (the padding holds 1e9, which must never be read), 6 positions.
  const std::size_t d = 3, stride = 5, positions = 6;
  std::vector<float> k(positions * stride, 1e9f), v(positions * stride, 1e9f);
  for (std::size_t j = 0; j < positions; ++j)
    for (std::size_t c = 0; c < d; ++c) {
      k[j * stride + c] = std::sin(1.0f + float(j * d + c));
      v[j * stride + c] = std::cos(2.0f + float(j * d + c));
    }
  const std::array<float, 3> q{0.7f, -1.3f, 2.1f};
  for (std::size_t last = 0; last < positions; ++last) {
    CAPTURE(last);
    std::array<float, 3> out{-7.0f, -7.0f, -7.0f};  // overwritten, not added to
    std::vector<float> weights(last + 1, 1e9f);      // scratch: whatever it held is overwritten
    attend_cached_row(q.data(), k.data(), v.data(), stride, last, d, weights.data(), out.data());
    // float64: softmax of q . k_j / sqrt(D) over j <= last, then the weighted sum.
    std::vector<double> w(last + 1);
    double m = -1e300, sum = 0;
    for (std::size_t j = 0; j <= last; ++j) {
      double s = 0;
      for (std::size_t c = 0; c < d; ++c) s += double(q[c]) * double(k[j * stride + c]);
      w[j] = s / std::sqrt(double(d));
      m = std::max(m, w[j]);
    }
    for (double& x : w) sum += x = std::exp(x - m);
    const Tolerance tol = tol_attention(d, last + 1, 2.1, 1.0, 1.0);  // |q| <= 2.1, |k|, |v| <= 1
    for (std::size_t c = 0; c < d; ++c) {
      double ref = 0;
      for (std::size_t j = 0; j <= last; ++j) ref += w[j] / sum * double(v[j * stride + c]);
      CHECK(std::abs(double(out[c]) - ref) <= tol.atol);
    }
  }
}

TEST_CASE("gqa_attention_in_place attends over views of (B, G, capacity, D) buffers in place, causally, query head h on KV head h / (H/G)") {
  // No KVCache here: two buffers of capacity 9 hold T = 6 positions, and the free
  // positions hold NaN, so reading one of them poisons the output.
  const std::size_t nb = 2, nh = 6, ng = 2, cap = 9, t = 6, d = 5;
  Tensor4 k_buffer = random_uniform<4>({nb, ng, cap, d}, 4401);
  Tensor4 v_buffer = random_uniform<4>({nb, ng, cap, d}, 4402);
  for (Tensor4* buffer : {&k_buffer, &v_buffer})
    xt::view(*buffer, xt::all(), xt::all(), xt::range(t, cap), xt::all()) =
        std::numeric_limits<float>::quiet_NaN();
  const Tensor4& kb = k_buffer;
  const Tensor4& vb = v_buffer;
  const KVView keys = xt::view(kb, xt::all(), xt::all(), xt::range(std::size_t{0}, t), xt::all());
  const KVView values = xt::view(vb, xt::all(), xt::all(), xt::range(std::size_t{0}, t), xt::all());
  const Tensor4 k_stored = keys, v_stored = values;  // copies, for the reference only
  for (const std::size_t tq : {std::size_t{1}, std::size_t{2}, t}) {
    CAPTURE(tq);
    const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 4403 + tq);
    ATTN_CHECK_CLOSE(gqa_attention_in_place(q, keys, values),
                     ref::attention(q, k_stored, v_stored, true, t - tq),
                     tol_attention(d, t, 1.0, 1.0, 1.0));
  }
  // Its checks are given code; they name it.
  CHECK_THROWS_WITH_AS(gqa_attention_in_place(Tensor4({nb, std::size_t{5}, std::size_t{1}, d}), keys, values),
                       "gqa_attention_in_place: the query heads must be a multiple of the KV heads: "
                       "given H = 5 query heads and G = 2 KV heads",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_attention_in_place(Tensor4({nb, nh, std::size_t{1}, d}), keys,
                                              xt::view(kb, xt::all(), xt::all(),
                                                       xt::range(std::size_t{0}, t - 1), xt::all())),
                       "gqa_attention_in_place: values (the shape of keys): expected shape (2, 2, "
                       "6, 5), given (2, 2, 5, 5)",
                       std::invalid_argument);
}

TEST_CASE("cached attention equals lesson 03 gqa_attention and the float64 reference, for prefill and decode steps, G in {1, H/4, H}") {
  const std::size_t nb = 2, nh = 8, d = 16, cap = 24;
  // Tokens appended per step: a prompt of 5, decode steps of 1, a chunk of 3, more decode.
  const std::array<std::size_t, 8> steps{5, 1, 1, 3, 1, 1, 1, 1};
  for (std::size_t ng : {std::size_t{1}, nh / 4, nh}) {
    KVCache cache(nb, ng, cap, d);
    Tensor4 k_all({nb, ng, 0, d}), v_all({nb, ng, 0, d});
    std::uint64_t seed = 4000 + 100 * ng;
    for (std::size_t tn : steps) {
      const Tensor4 q = random_uniform<4>({nb, nh, tn, d}, ++seed);
      const Tensor4 k = random_uniform<4>({nb, ng, tn, d}, ++seed);
      const Tensor4 v = random_uniform<4>({nb, ng, tn, d}, ++seed);
      cache.append(k, v);
      k_all = concat_time(k_all, k);
      v_all = concat_time(v_all, v);
      const std::size_t length = k_all.shape(2), q_offset = length - tn;
      CAPTURE(ng);
      CAPTURE(length);
      CAPTURE(tn);
      const Tensor4 got = gqa_attention_cached(q, cache);
      REQUIRE(got.shape() == std::array<std::size_t, 4>{nb, nh, tn, d});
      ATTN_CHECK_CLOSE(got, ref::attention(q, k_all, v_all, true, q_offset),
                       tol_attention(d, length, 1.0, 1.0, 1.0));
      const Tensor4 uncached = gqa_attention(q, k_all, v_all, Mask::causal, q_offset);
      ATTN_CHECK_CLOSE(got, uncached, tol_relative_to_max(1e-5, uncached));
    }
  }
}

TEST_CASE("a single decode query at position length - 1 sees every cached key, its own included") {
  // q = 0 makes every score 0, so the output is the plain mean of the values the query
  // sees. Value j is j, so seeing keys 0 ... p gives p / 2 exactly, and seeing one
  // key fewer (a mask off by one) gives (p - 1) / 2.
  const std::size_t nb = 1, nh = 4, ng = 2, d = 2, cap = 8;
  KVCache cache(nb, ng, cap, d);
  for (std::size_t p = 0; p < cap; ++p) {
    Tensor4 kv({nb, ng, 1, d});
    kv.fill(static_cast<float>(p));
    cache.append(kv, kv);
    const Tensor4 q = xt::zeros<float>({nb, nh, std::size_t{1}, d});
    const Tensor4 out = gqa_attention_cached(q, cache);
    CAPTURE(p);
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t c = 0; c < d; ++c)
        CHECK(out(0, h, 0, c) == doctest::Approx(static_cast<double>(p) / 2.0).epsilon(1e-6));
  }
}

TEST_CASE("a prefill of the whole prompt is causal: query row i sees keys 0 ... i") {
  // With the prompt all in the cache and Tq = length, q_offset is 0; value j is j and
  // q = 0, so row i is the mean i / 2.
  const std::size_t nb = 2, nh = 3, ng = 3, d = 1, t = 6;
  KVCache cache(nb, ng, 10, d);
  Tensor4 kv({nb, ng, t, d});
  for (std::size_t j = 0; j < t; ++j) xt::view(kv, xt::all(), xt::all(), j) = static_cast<float>(j);
  cache.append(kv, kv);
  const Tensor4 out = gqa_attention_cached(xt::zeros<float>({nb, nh, t, d}), cache);
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t h = 0; h < nh; ++h)
      for (std::size_t i = 0; i < t; ++i)
        CHECK(out(b, h, i, 0) == doctest::Approx(static_cast<double>(i) / 2.0).epsilon(1e-6));
}

TEST_CASE("cached attention reads only the stored tokens, not the free slots past length") {
  // Fill the cache with huge values, reset, store a few ordinary tokens: the stale
  // slots past length must change nothing.
  const std::size_t nb = 2, nh = 4, ng = 2, d = 8, cap = 16, t = 5;
  KVCache cache(nb, ng, cap, d);
  const Tensor4 stale = random_uniform<4>({nb, ng, cap, d}, 4501, 50.0f, 100.0f);
  cache.append(stale, stale);
  cache.reset();
  const Tensor4 k = random_uniform<4>({nb, ng, t, d}, 4502);
  const Tensor4 v = random_uniform<4>({nb, ng, t, d}, 4503);
  cache.append(k, v);
  for (std::size_t tq : {std::size_t{1}, std::size_t{2}, t}) {
    CAPTURE(tq);
    const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 4504 + tq);
    ATTN_CHECK_CLOSE(gqa_attention_cached(q, cache), ref::attention(q, k, v, true, t - tq),
                     tol_attention(d, t, 1.0, 1.0, 1.0));
  }
}

TEST_CASE("queries whose B or D differ from the cache's, or whose H is not a multiple of G, are std::invalid_argument") {
  const std::size_t nb = 2, ng = 2, d = 4;
  KVCache cache(nb, ng, 8, d);
  const Tensor4 kv = random_uniform<4>({nb, ng, 3, d}, 4601);
  cache.append(kv, kv);
  CHECK_THROWS_WITH_AS(gqa_attention_cached(random_uniform<4>({nb + 1, 4, 1, d}, 1), cache),
                       "gqa_attention_cached: batch of q (B of the cache): expected 2, given 3",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      gqa_attention_cached(random_uniform<4>({nb, 4, 1, d + 1}, 1), cache),
      "gqa_attention_cached: head dimension of q (D of the cache): expected 4, given 5",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(gqa_attention_cached(random_uniform<4>({nb, 3, 1, d}, 1), cache),
                       "gqa_attention_cached: the query heads must be a multiple of the KV heads: "
                       "given H = 3 query heads and G = 2 KV heads",
                       std::invalid_argument);
  const KVCache empty(nb, ng, 8, d);
  CHECK_THROWS_WITH_AS(gqa_attention_cached(Tensor4({nb, 2, 0, d}), empty),
                       "gqa_attention_cached: attention needs at least one key, given an empty "
                       "cache",
                       std::invalid_argument);
}

TEST_CASE("more queries than cached tokens is std::out_of_range") {
  const std::size_t nb = 1, ng = 1, d = 4;
  KVCache cache(nb, ng, 8, d);
  CHECK_THROWS_WITH_AS(gqa_attention_cached(random_uniform<4>({nb, 2, 1, d}, 1), cache),
                       "gqa_attention_cached: more queries than cached tokens: expected Tq <= "
                       "length = 0, given Tq = 1",
                       std::out_of_range);
  const Tensor4 kv = random_uniform<4>({nb, ng, 3, d}, 4701);
  cache.append(kv, kv);
  CHECK_THROWS_WITH_AS(gqa_attention_cached(random_uniform<4>({nb, 2, 4, d}, 1), cache),
                       "gqa_attention_cached: more queries than cached tokens: expected Tq <= "
                       "length = 3, given Tq = 4",
                       std::out_of_range);
}
