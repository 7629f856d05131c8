// Lesson 11, part 6: FlashAttention-2's backward (Dao 2023, Algorithm 2). D_i from dO and O,
// P recomputed tile by tile from Q, K and the saved L, and the result equal to central
// differences and to the naive backward.
#include "backward.hpp"

#include <array>

#include "gradient_check.hpp"

using namespace attn;
using attn::testing_grad::check_attention_grads;
using attn::testing_grad::random_inputs;
using attn::testing_grad::TiledCase;

namespace {
// O and L of the float64 reference, rounded to float32: a forward for the backward that
// does not depend on the lesson's flash forward. Rounding adds u |O| <= u max|v| to O's
// error and u |L| to L's; both are far inside eps_O and eps_P (gradcheck.hpp item 4).
FlashForward reference_forward(const Tensor4& q, const Tensor4& k, const Tensor4& v, bool causal,
                               std::size_t q_offset) {
  return {ref::attention(q, k, v, causal, q_offset), ref::attention_lse(q, k, causal, q_offset)};
}

using Case = TiledCase;
const std::array<Case, 6> kCases{Case{1, 1, 1, 5, 9, 1, 0, 4, Mask::none},    Case{2, 6, 2, 33, 33, 16, 0, 4, Mask::causal},
                                 Case{1, 4, 1, 10, 29, 5, 19, 8, Mask::causal}, Case{2, 3, 3, 17, 6, 5, 0, 4, Mask::none},
                                 Case{1, 6, 3, 1, 21, 16, 20, 8, Mask::causal},  Case{2, 2, 1, 13, 20, 5, 3, 4, Mask::causal}};
}  // namespace

TEST_CASE("flash_backward_row_terms is D_i = rowsum(dO o O), which equals rowsum(P o dP)") {
  const std::size_t tq = 6, tk = 9, d = 5;
  const Tensor4 q = random_uniform<4>({2, 3, tq, d}, 6101), k = random_uniform<4>({2, 3, tk, d}, 6102);
  const Tensor4 v = random_uniform<4>({2, 3, tk, d}, 6103), dout = random_uniform<4>({2, 3, tq, d}, 6104);
  const Tensor4 out = ref::attention(q, k, v, true, 3);
  const Tensor3 row_terms = flash_backward_row_terms(dout, out);
  REQUIRE(row_terms.shape() == std::array<std::size_t, 3>{2, 3, tq});
  const double scale = 1.0 / std::sqrt(double(d));
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t h = 0; h < 3; ++h)
      for (std::size_t i = 0; i < tq; ++i) {
        // P and dP = dO V^T of row i in float64: sum_j P_ij dP_ij = dO_i . sum_j P_ij v_j = dO_i . O_i.
        std::vector<double> p(tk, 0.0);
        double m = -1e300, total = 0.0, expected = 0.0;
        for (std::size_t j = 0; j <= 3 + i; ++j) {
          for (std::size_t c = 0; c < d; ++c) p[j] += double(q(b, h, i, c)) * double(k(b, h, j, c)) * scale;
          m = std::max(m, p[j]);
        }
        for (std::size_t j = 0; j <= 3 + i; ++j) total += (p[j] = std::exp(p[j] - m));
        for (std::size_t j = 0; j <= 3 + i; ++j)
          for (std::size_t c = 0; c < d; ++c) expected += p[j] / total * double(dout(b, h, i, c)) * double(v(b, h, j, c));
        // A float32 dot product of Dv terms |dO O| <= 1, and O rounded to float32 (u each).
        CHECK(std::abs(row_terms(b, h, i) - expected) <= tol_reduction(d, double(d)).atol + d * kUnitRoundoff + 1e-12);
      }
  CHECK_THROWS_WITH_AS(flash_backward_row_terms(dout, Tensor4({2, 3, tq, d + 1})),
                       "flash_backward_row_terms: out (the shape of dout): expected shape (2, 3, 6, 5), given (2, 3, 6, 6)",
                       std::invalid_argument);
}

TEST_CASE("one flash backward tile, with L from the reference, equals central differences of the head's attention") {
  std::uint64_t seed = 6200;
  for (const auto [tq, tk, d, offset, causal] : {std::array<std::size_t, 5>{4, 7, 5, 0, 0}, {8, 8, 16, 0, 1}, {3, 9, 1, 6, 1}}) {
    CAPTURE(tq);
    CAPTURE(tk);
    CAPTURE(d);
    CAPTURE(causal);
    const Mask mask = causal ? Mask::causal : Mask::none;
    const Tensor4 q = random_uniform<4>({1, 1, tq, d}, ++seed), k = random_uniform<4>({1, 1, tk, d}, ++seed);
    const Tensor4 v = random_uniform<4>({1, 1, tk, d}, ++seed), dout = random_uniform<4>({1, 1, tq, d}, ++seed);
    const FlashForward f = reference_forward(q, k, v, causal, offset);
    std::vector<float> lse(tq), dterm(tq);
    for (std::size_t i = 0; i < tq; ++i) {
      lse[i] = f.lse(0, 0, i);
      double s = 0.0;
      for (std::size_t c = 0; c < d; ++c) s += double(dout(0, 0, i, c)) * double(f.out(0, 0, i, c));
      dterm[i] = static_cast<float>(s);
    }
    Tensor2 dq = xt::zeros<float>({tq, d}), dk = xt::zeros<float>({tk, d}), dv = xt::zeros<float>({tk, d});
    // The whole head as one tile: P = exp(S - L) must come out normalized without any max.
    flash_backward_tile(xt::view(q, 0, 0), xt::view(k, 0, 0), xt::view(v, 0, 0), xt::view(dout, 0, 0), lse, dterm,
                        tile_visibility(0, tq, 0, tk, mask, offset), dq, dk, dv);
    auto head = [](const Tensor2& x) -> Tensor4 { return xt::reshape_view(x, {std::size_t{1}, std::size_t{1}, x.shape(0), x.shape(1)}); };
    check_attention_grads({head(dq), head(dk), head(dv)}, q, k, v, dout, mask, offset, 1, ++seed);
  }
}

TEST_CASE("flash_attention_backward, given O and L of the float64 reference, equals central differences, tiles of 4 and 8, GQA, causal at several offsets") {
  std::uint64_t seed = 6300;
  for (const Case& c : kCases) {
    const std::string where = c.describe();
    CAPTURE(where);
    const bool causal = c.mask == Mask::causal;
    const auto [q, k, v] = random_inputs(c, seed);
    const Tensor4 dout = random_uniform<4>({c.b, c.h, c.tq, c.d}, ++seed);
    const AttentionGrads g =
        flash_attention_backward(q, k, v, reference_forward(q, k, v, causal, c.offset), dout, c.mask, c.offset, c.tile);
    check_attention_grads(g, q, k, v, dout, c.mask, c.offset, c.key_tiles(), ++seed);
  }
}

TEST_CASE("the flash backward on the flash forward equals the naive backward") {
  std::uint64_t seed = 6400;
  for (const Case& c : kCases) {
    const std::string where = c.describe();
    CAPTURE(where);
    const bool causal = c.mask == Mask::causal;
    const auto [q, k, v] = random_inputs(c, seed);
    const Tensor4 dout = random_uniform<4>({c.b, c.h, c.tq, c.d}, ++seed);
    const AttentionGrads naive = gqa_attention_backward(q, k, v, dout, c.mask, c.offset);
    const FlashForward f = flash_attention_forward(q, k, v, c.mask, c.offset, c.tile);
    const AttentionGrads flash = flash_attention_backward(q, k, v, f, dout, c.mask, c.offset, c.tile);
    // Each is within its bound of the exact gradient, so within the sum of both of each other.
    const AttentionScales s = measure_attention(q, k, v, dout, causal, c.offset);
    const AttentionGradTolerance a = tol_attention_backward(s, 1), b = tol_attention_backward(s, c.key_tiles());
    ATTN_CHECK_CLOSE(flash.dq, naive.dq, (Tolerance{a.dq.atol + b.dq.atol, 0.0, "naive + flash bounds of dQ"}));
    ATTN_CHECK_CLOSE(flash.dk, naive.dk, (Tolerance{a.dk.atol + b.dk.atol, 0.0, "naive + flash bounds of dK"}));
    ATTN_CHECK_CLOSE(flash.dv, naive.dv, (Tolerance{a.dv.atol + b.dv.atol, 0.0, "naive + flash bounds of dV"}));
  }
}

TEST_CASE("flash_attention_backward refuses a tile of 0 and an O or L of the wrong shape") {
  const Tensor4 q = random_uniform<4>({1, 2, 3, 4}, 6501), kv = random_uniform<4>({1, 1, 5, 4}, 6502);
  const Tensor4 dout = random_uniform<4>({1, 2, 3, 4}, 6503);
  const FlashForward f = reference_forward(q, kv, kv, true, 2);
  CHECK(flash_attention_backward(q, kv, kv, f, dout, Mask::causal, 2, 2).dk.shape() == kv.shape());
  CHECK_THROWS_WITH_AS(flash_attention_backward(q, kv, kv, f, dout, Mask::causal, 2, 0),
                       "flash_attention_backward: a tile needs at least 1 row, given tile = 0", std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_backward(q, kv, kv, FlashForward{f.out, Tensor3({1, 2, 4})}, dout, Mask::causal, 2, 2),
                       "flash_attention_backward: the forward's L (B, H, Tq): expected shape (1, 2, 3), given (1, 2, 4)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_backward(q, kv, kv, FlashForward{Tensor4({1, 2, 3, 5}), f.lse}, dout, Mask::causal, 2, 2),
                       "flash_attention_backward: the forward's O (B, H, Tq, Dv): expected shape (1, 2, 3, 4), given (1, 2, 3, 5)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(flash_attention_backward(q, kv, kv, f, dout, Mask::causal, 3, 2),
                       "flash_attention_backward: query positions past the last key: expected q_offset + Tq <= Tk = 5, "
                       "given q_offset = 3 and Tq = 3",
                       std::out_of_range);
}
