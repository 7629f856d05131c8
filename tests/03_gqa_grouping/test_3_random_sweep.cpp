// Lesson 03, part 3: gqa_attention against an independent float64 reference over many
// odd shapes: every divisor G of every H up to 12, causal and not, decode and prefill.
#include "gqa.hpp"

#include "attn/testing.hpp"

using namespace attn;

namespace {
struct Case {
  std::size_t b, h, g, tq, tk, d, offset;
  Mask mask;
};

// A whole number in [lo, hi], drawn from the project's deterministic generator.
std::size_t draw(Rng& rng, std::size_t lo, std::size_t hi) {
  return lo + static_cast<std::size_t>(rng.next() % (hi - lo + 1));
}

// For every H in 1..12 and every divisor G of H: one unmasked case, one causal prefill
// chunk at a random offset, one decode step (Tq = 1 at position Tk - 1). Sizes are drawn
// at random; D cycles through 1, 7 and 64. The largest shape is added once.
std::vector<Case> sweep_cases() {
  Rng rng(2023);
  const std::array<std::size_t, 3> dims{1, 7, 64};
  std::vector<Case> cases;
  std::size_t n = 0;
  for (std::size_t h = 1; h <= 12; ++h)
    for (std::size_t g = 1; g <= h; ++g) {
      if (h % g != 0) continue;
      const std::size_t tk = draw(rng, 1, 70);
      const std::size_t tq = draw(rng, 1, tk);
      cases.push_back({draw(rng, 1, 3), h, g, draw(rng, 1, 70), draw(rng, 1, 70), dims[n++ % 3], 0,
                       Mask::none});
      cases.push_back({draw(rng, 1, 3), h, g, tq, tk, dims[n++ % 3], draw(rng, 0, tk - tq),
                       Mask::causal});
      cases.push_back({draw(rng, 1, 3), h, g, 1, tk, dims[n++ % 3], tk - 1, Mask::causal});
    }
  cases.push_back({3, 12, 4, 70, 70, 64, 0, Mask::causal});
  cases.push_back({3, 12, 3, 70, 70, 64, 0, Mask::none});
  return cases;
}
}  // namespace

TEST_CASE("gqa_attention equals a float64 reference for every divisor G of H up to 12, "
          "causal and not, decode and prefill offsets") {
  std::uint64_t seed = 1;
  for (const Case& c : sweep_cases()) {
    CAPTURE(c.b);
    CAPTURE(c.h);
    CAPTURE(c.g);
    CAPTURE(c.tq);
    CAPTURE(c.tk);
    CAPTURE(c.d);
    CAPTURE(c.offset);
    CAPTURE(c.mask == Mask::causal);
    const Tensor4 q = random_uniform<4>({c.b, c.h, c.tq, c.d}, seed++);
    const Tensor4 k = random_uniform<4>({c.b, c.g, c.tk, c.d}, seed++);
    const Tensor4 v = random_uniform<4>({c.b, c.g, c.tk, c.d}, seed++);
    const auto expected = ref::attention(q, k, v, c.mask == Mask::causal, c.offset);
    const Tensor4 got = gqa_attention(q, k, v, c.mask, c.offset);
    ATTN_REQUIRE_CLOSE(got, expected, tol_relative_to_max(1e-5, expected));
  }
}
