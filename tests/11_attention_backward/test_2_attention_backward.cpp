// Lesson 11, part 2: the backward of one head's attention and of multi-head attention,
// unmasked and causal at several query offsets, against central differences of the float64
// reference attention (common/attn/reference.hpp), within common/attn/gradcheck.hpp's bound.
#include "backward.hpp"

#include <array>

#include "gradient_check.hpp"

using namespace attn;
using attn::testing_grad::check_attention_grads;

namespace {
// One head as a (1, 1, T, D) tensor, and back.
Tensor4 as_head(const Tensor2& x) { return xt::reshape_view(x, {std::size_t{1}, std::size_t{1}, x.shape(0), x.shape(1)}); }
Tensor4 as_head4(const Tensor2& x) { return as_head(x); }
}  // namespace

TEST_CASE("one head's backward equals central differences, unmasked and causal at several offsets, Tq != Tk") {
  struct Case {
    std::size_t tq, tk, d, dv, offset;
    Mask mask;
  };
  std::uint64_t seed = 2100;
  for (const Case& c : {Case{1, 1, 1, 1, 0, Mask::none}, Case{3, 7, 5, 5, 0, Mask::none},
                        Case{7, 3, 16, 4, 0, Mask::none}, Case{5, 9, 5, 5, 4, Mask::causal},
                        Case{6, 6, 16, 16, 0, Mask::causal}, Case{1, 13, 1, 3, 12, Mask::causal},
                        Case{4, 11, 5, 2, 2, Mask::causal}}) {
    CAPTURE(c.tq);
    CAPTURE(c.tk);
    CAPTURE(c.d);
    CAPTURE(c.offset);
    CAPTURE(c.mask == Mask::causal);
    const Tensor2 q = random_uniform<2>({c.tq, c.d}, ++seed), k = random_uniform<2>({c.tk, c.d}, ++seed);
    const Tensor2 v = random_uniform<2>({c.tk, c.dv}, ++seed), dout = random_uniform<2>({c.tq, c.dv}, ++seed);
    const HeadGrads g = attention_head_backward(q, k, v, dout, c.mask, c.offset);
    check_attention_grads({as_head(g.dq), as_head(g.dk), as_head(g.dv)}, as_head(q), as_head(k), as_head(v),
                          as_head4(dout), c.mask, c.offset, 1, ++seed);
  }
}

TEST_CASE("attention_backward equals central differences for B 1-2, H up to 6, D in 1, 5, 16, causal at several offsets") {
  struct Case {
    std::size_t b, h, tq, tk, d, offset;
    Mask mask;
  };
  std::uint64_t seed = 2200;
  for (const Case& c : {Case{1, 1, 5, 8, 1, 0, Mask::none}, Case{2, 3, 9, 4, 5, 0, Mask::none},
                        Case{2, 6, 33, 33, 16, 0, Mask::causal}, Case{1, 4, 10, 33, 5, 23, Mask::causal},
                        Case{2, 2, 17, 29, 16, 5, Mask::causal}, Case{1, 5, 1, 21, 1, 20, Mask::causal}}) {
    CAPTURE(c.b);
    CAPTURE(c.h);
    CAPTURE(c.tq);
    CAPTURE(c.tk);
    CAPTURE(c.d);
    CAPTURE(c.offset);
    CAPTURE(c.mask == Mask::causal);
    const Tensor4 q = random_uniform<4>({c.b, c.h, c.tq, c.d}, ++seed);
    const Tensor4 k = random_uniform<4>({c.b, c.h, c.tk, c.d}, ++seed);
    const Tensor4 v = random_uniform<4>({c.b, c.h, c.tk, c.d}, ++seed);
    const Tensor4 dout = random_uniform<4>({c.b, c.h, c.tq, c.d}, ++seed);
    check_attention_grads(attention_backward(q, k, v, dout, c.mask, c.offset), q, k, v, dout, c.mask,
                          c.offset, 1, ++seed);
  }
}

TEST_CASE("keys that no query may see get exactly zero dK and dV, and changing them changes no gradient") {
  // Tq = 4 queries at positions 3 ... 6 of Tk = 11 keys: keys 7 ... 10 are in every query's future.
  const std::size_t tq = 4, tk = 11, d = 5, offset = 3;
  const Tensor4 q = random_uniform<4>({2, 3, tq, d}, 2301), dout = random_uniform<4>({2, 3, tq, d}, 2302);
  Tensor4 k = random_uniform<4>({2, 3, tk, d}, 2303), v = random_uniform<4>({2, 3, tk, d}, 2304);
  const AttentionGrads g = attention_backward(q, k, v, dout, Mask::causal, offset);
  for (std::size_t b = 0; b < 2; ++b)
    for (std::size_t h = 0; h < 3; ++h)
      for (std::size_t j = 0; j < tk; ++j)
        for (std::size_t c = 0; c < d; ++c) {
          const bool seen = j <= offset + tq - 1;
          if (!seen) {
            CHECK(g.dk(b, h, j, c) == 0.0f);
            CHECK(g.dv(b, h, j, c) == 0.0f);
          }
          if (seen && j == offset + tq - 1) CHECK(g.dv(b, h, j, c) != 0.0f);  // the last query's own key
        }
  xt::view(k, xt::all(), xt::all(), xt::range(offset + tq, tk)) *= -7.0f;
  xt::view(v, xt::all(), xt::all(), xt::range(offset + tq, tk)) += 3.0f;
  const AttentionGrads moved = attention_backward(q, k, v, dout, Mask::causal, offset);
  CHECK(moved.dq == g.dq);
  CHECK(xt::view(moved.dk, xt::all(), xt::all(), xt::range(0, offset + tq)) ==
        xt::view(g.dk, xt::all(), xt::all(), xt::range(0, offset + tq)));
}

TEST_CASE("attention_backward and attention_head_backward refuse what lesson 03 refuses, in their own names") {
  const Tensor4 q = random_uniform<4>({1, 2, 3, 4}, 2401), kv = random_uniform<4>({1, 2, 5, 4}, 2402);
  const Tensor4 dout = random_uniform<4>({1, 2, 3, 4}, 2403);
  CHECK(attention_backward(q, kv, kv, dout, Mask::causal, 2).dq.shape() == q.shape());
  CHECK_THROWS_WITH_AS(attention_backward(q, Tensor4({1, 1, 5, 4}), Tensor4({1, 1, 5, 4}), dout, Mask::none, 0),
                       "attention_backward: KV heads of k (H of q: multi-head attention): expected 2, given 1",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(attention_backward(q, kv, kv, Tensor4({1, 2, 3, 5}), Mask::none, 0),
                       "attention_backward: dout (B, H, Tq, Dv): expected shape (1, 2, 3, 4), given (1, 2, 3, 5)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(attention_backward(q, kv, kv, dout, Mask::causal, 3),
                       "attention_backward: query positions past the last key: expected q_offset + Tq <= Tk = 5, "
                       "given q_offset = 3 and Tq = 3",
                       std::out_of_range);
  CHECK_THROWS_WITH_AS(attention_backward(q, Tensor4({1, 2, 5, 3}), kv, dout, Mask::none, 0),
                       "attention_backward: head dimension of k (D of q): expected 4, given 3", std::invalid_argument);
  CHECK_THROWS_WITH_AS(attention_head_backward(Tensor2({3, 4}), Tensor2({5, 4}), Tensor2({6, 4}), Tensor2({3, 4}),
                                               Mask::none, 0),
                       "attention_head_backward: length of v (Tk of k): expected 5, given 6", std::invalid_argument);
  CHECK_THROWS_WITH_AS(attention_head_backward(Tensor2({3, 4}), Tensor2({5, 4}), Tensor2({5, 2}), Tensor2({3, 4}),
                                               Mask::none, 0),
                       "attention_head_backward: dout (Tq, Dv): expected shape (3, 2), given (3, 4)",
                       std::invalid_argument);
}
