// Lesson 02, part 3: causal attention, causality, decode and the query offset.
#include "causal.hpp"

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"

using namespace attn;

namespace {
struct Case {
  std::size_t b, h, tq, tk, d, dv, q_offset;
};

// Positions [from, to) of the time axis of a (B, H, T, D) tensor.
template <class T>
xt::xtensor<T, 4> rows(const xt::xtensor<T, 4>& x, std::size_t from, std::size_t to) {
  return xt::view(x, xt::all(), xt::all(), xt::range(from, to), xt::all());
}
}  // namespace

TEST_CASE("causal attention equals a float64 reference on odd shapes and offsets") {
  for (const Case c : {Case{1, 1, 1, 1, 1, 1, 0}, Case{2, 3, 5, 7, 4, 3, 2}, Case{1, 2, 70, 70, 64, 64, 0},
                       Case{3, 1, 1, 33, 7, 9, 32}, Case{1, 4, 13, 20, 1, 5, 7}, Case{2, 12, 1, 70, 64, 64, 69},
                       Case{1, 3, 1, 40, 7, 7, 10}, Case{2, 2, 9, 9, 7, 1, 0}}) {
    CAPTURE(c.b);
    CAPTURE(c.h);
    CAPTURE(c.tq);
    CAPTURE(c.tk);
    CAPTURE(c.d);
    CAPTURE(c.q_offset);
    const Tensor4 q = random_uniform<4>({c.b, c.h, c.tq, c.d}, 1);
    const Tensor4 k = random_uniform<4>({c.b, c.h, c.tk, c.d}, 2);
    const Tensor4 v = random_uniform<4>({c.b, c.h, c.tk, c.dv}, 3);
    ATTN_CHECK_CLOSE(causal_attention(q, k, v, c.q_offset), ref::attention(q, k, v, true, c.q_offset),
                     tol_attention(c.d, c.tk, 1.0, 1.0, 1.0));
  }
}

TEST_CASE("changing the keys and values of future positions changes no earlier output") {
  // For every offset and every key position p, change key p and its value: every query
  // row at a position before p must stay bit for bit the same (a masked key takes a
  // weight of exactly 0), and every row at p or after must change. |q.k| / sqrt(5) <= 2.3,
  // so key p keeps a weight of at least e^-4.6 / 9 in the rows that see it, and the
  // value shift of 5 moves their output far more than float32 rounding could hide.
  const std::size_t nb = 2, nh = 3, tk = 9, d = 5, dv = 4;
  const Tensor4 k = random_uniform<4>({nb, nh, tk, d}, 11);
  const Tensor4 v = random_uniform<4>({nb, nh, tk, dv}, 12);
  for (const auto [tq, q_offset] : {std::array<std::size_t, 2>{9, 0}, {4, 5}, {3, 2}, {1, 8}, {1, 4}, {1, 0}}) {
    CAPTURE(tq);
    CAPTURE(q_offset);
    const Tensor4 q = random_uniform<4>({nb, nh, tq, d}, 13 + tq);
    const Tensor4 out = causal_attention(q, k, v, q_offset);
    for (std::size_t p = 0; p < tk; ++p) {
      CAPTURE(p);
      Tensor4 k2 = k, v2 = v;
      for (std::size_t b = 0; b < nb; ++b)
        for (std::size_t h = 0; h < nh; ++h) {
          for (std::size_t c = 0; c < d; ++c) k2(b, h, p, c) = -k(b, h, p, c);
          for (std::size_t c = 0; c < dv; ++c) v2(b, h, p, c) = 5.0f + v(b, h, p, c);
        }
      const Tensor4 out2 = causal_attention(q, k2, v2, q_offset);
      for (std::size_t b = 0; b < nb; ++b)
        for (std::size_t h = 0; h < nh; ++h)
          for (std::size_t i = 0; i < tq; ++i) {
            const bool sees_p = p <= q_offset + i;
            bool changed = false;
            for (std::size_t c = 0; c < dv; ++c) changed = changed || out2(b, h, i, c) != out(b, h, i, c);
            CAPTURE(b);
            CAPTURE(h);
            CAPTURE(i);
            if (sees_p)
              CHECK_MESSAGE(changed, "query at position q_offset + i = ", q_offset + i, " ignores key ", p);
            else
              CHECK_MESSAGE(!changed, "query at position q_offset + i = ", q_offset + i,
                            " changed when future key ", p, " changed");
          }
    }
  }
}

TEST_CASE("the decode query at position p against p + 1 keys equals row p of full causal attention") {
  const std::size_t nb = 2, nh = 3, t = 11, d = 7, dv = 6;
  const Tensor4 q = random_uniform<4>({nb, nh, t, d}, 21);
  const Tensor4 k = random_uniform<4>({nb, nh, t, d}, 22);
  const Tensor4 v = random_uniform<4>({nb, nh, t, dv}, 23);
  const Tensor4 full = causal_attention(q, k, v, 0);
  const auto full_ref = ref::attention(q, k, v, true, 0);
  for (std::size_t p = 0; p < t; ++p) {
    CAPTURE(p);
    // The cache holds the keys of positions 0 ... p, the newest one included.
    const Tensor4 step = causal_attention(rows(q, p, p + 1), rows(k, 0, p + 1), rows(v, 0, p + 1), p);
    const Tolerance tol = tol_attention(d, p + 1, 1.0, 1.0, 1.0);
    ATTN_CHECK_CLOSE(step, rows(full_ref, p, p + 1), tol);
    // Two float32 computations, each within tol of the reference.
    ATTN_CHECK_CLOSE(step, rows(full, p, p + 1), (Tolerance{2 * tol.atol, 0.0, "twice " + tol.why}));
  }
}

TEST_CASE("a decode query at position p sees keys 0 ... p even when later keys are present") {
  // One query at position 3 among 8 keys: it must not read keys 4 ... 7.
  const Tensor4 q = random_uniform<4>({1, 2, 8, 5}, 31);
  const Tensor4 k = random_uniform<4>({1, 2, 8, 5}, 32);
  const Tensor4 v = random_uniform<4>({1, 2, 8, 4}, 33);
  const auto full_ref = ref::attention(q, k, v, true, 0);
  for (std::size_t p : {0, 3, 6}) {
    CAPTURE(p);
    ATTN_CHECK_CLOSE(causal_attention(rows(q, p, p + 1), k, v, p), rows(full_ref, p, p + 1),
                     tol_attention(5, 8, 1.0, 1.0, 1.0));
  }
}

TEST_CASE("prefill of the last Tq rows with q_offset = Tk - Tq equals the last Tq rows of full causal attention") {
  const std::size_t nb = 2, nh = 2, tk = 13, d = 8, dv = 3;
  const Tensor4 q = random_uniform<4>({nb, nh, tk, d}, 41);
  const Tensor4 k = random_uniform<4>({nb, nh, tk, d}, 42);
  const Tensor4 v = random_uniform<4>({nb, nh, tk, dv}, 43);
  const auto full_ref = ref::attention(q, k, v, true, 0);
  for (std::size_t tq : {1, 2, 5, 12, 13}) {
    CAPTURE(tq);
    const Tensor4 last = causal_attention(rows(q, tk - tq, tk), k, v, tk - tq);
    ATTN_CHECK_CLOSE(last, rows(full_ref, tk - tq, tk), tol_attention(d, tk, 1.0, 1.0, 1.0));
  }
}

TEST_CASE("a chunk of queries at q_offset against the keys up to its end equals those rows of full attention") {
  // Chunked prefill: rows [a, a + n) with the keys [0, a + n) seen so far.
  const std::size_t nb = 1, nh = 3, t = 12, d = 4, dv = 4;
  const Tensor4 q = random_uniform<4>({nb, nh, t, d}, 51);
  const Tensor4 k = random_uniform<4>({nb, nh, t, d}, 52);
  const Tensor4 v = random_uniform<4>({nb, nh, t, dv}, 53);
  const auto full_ref = ref::attention(q, k, v, true, 0);
  for (const auto [a, n] : {std::array<std::size_t, 2>{0, 4}, {4, 4}, {8, 4}, {3, 7}}) {
    CAPTURE(a);
    CAPTURE(n);
    const Tensor4 chunk = causal_attention(rows(q, a, a + n), rows(k, 0, a + n), rows(v, 0, a + n), a);
    ATTN_CHECK_CLOSE(chunk, rows(full_ref, a, a + n), tol_attention(d, a + n, 1.0, 1.0, 1.0));
  }
}

TEST_CASE("the query at position 0 returns the value of key 0 exactly") {
  const Tensor4 q = random_uniform<4>({2, 2, 4, 6}, 61);
  const Tensor4 k = random_uniform<4>({2, 2, 4, 6}, 62);
  const Tensor4 v = random_uniform<4>({2, 2, 4, 3}, 63);
  const Tensor4 out = causal_attention(q, k, v, 0);
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t h = 0; h < 2; ++h)
      for (std::size_t c = 0; c < 3; ++c) CHECK(out(b, h, 0, c) == v(b, h, 0, c));  // weight 1 on key 0
}

TEST_CASE("causal attention is finite and correct at scores of 1e4") {
  // D = 1, |q| and |k| up to 100: scores q k / sqrt(1) up to 1e4 overflow exp in float32.
  const Tensor4 q = random_uniform<4>({1, 2, 6, 1}, 71, -100.0f, 100.0f);
  const Tensor4 k = random_uniform<4>({1, 2, 9, 1}, 72, -100.0f, 100.0f);
  const Tensor4 v = random_uniform<4>({1, 2, 9, 3}, 73);
  const Tensor4 out = causal_attention(q, k, v, 3);
  REQUIRE(all_finite(out));
  ATTN_CHECK_CLOSE(out, ref::attention(q, k, v, true, 3), tol_attention(1, 9, 100.0, 100.0, 1.0));
}

TEST_CASE("causal attention rejects mismatched shapes, naming expected and given") {
  const Tensor4 q = xt::zeros<float>({2, 3, 4, 8});
  CHECK_THROWS_WITH_AS(causal_attention(q, xt::zeros<float>({2, 3, 5, 7}), xt::zeros<float>({2, 3, 5, 8}), 0),
                       doctest::Contains("expected 8, given 7"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(causal_attention(q, xt::zeros<float>({1, 3, 5, 8}), xt::zeros<float>({1, 3, 5, 8}), 0),
                       doctest::Contains("expected 2, given 1"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(causal_attention(q, xt::zeros<float>({2, 3, 5, 8}), xt::zeros<float>({2, 3, 6, 8}), 0),
                       doctest::Contains("expected 5, given 6"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(causal_attention(q, xt::zeros<float>({2, 2, 5, 8}), xt::zeros<float>({2, 2, 5, 8}), 0),
                       doctest::Contains("expected 3, given 2"), std::invalid_argument);
}

TEST_CASE("causal attention rejects queries placed past the last key as out_of_range") {
  const Tensor4 k = xt::zeros<float>({1, 2, 5, 4});
  const Tensor4 v = xt::zeros<float>({1, 2, 5, 4});
  CHECK_THROWS_WITH_AS(causal_attention(xt::zeros<float>({1, 2, 3, 4}), k, v, 3),
                       doctest::Contains("expected q_offset + Tq <= Tk = 5, given q_offset = 3 and Tq = 3"),
                       std::out_of_range);
  // The decode pitfall: q_offset set to the number of keys instead of the newest position.
  CHECK_THROWS_WITH_AS(causal_attention(xt::zeros<float>({1, 2, 1, 4}), k, v, 5),
                       doctest::Contains("given q_offset = 5 and Tq = 1"), std::out_of_range);
  // More queries than keys cannot all sit at or before the last key.
  CHECK_THROWS_AS(causal_attention(xt::zeros<float>({1, 2, 6, 4}), k, v, 0), std::out_of_range);
}
