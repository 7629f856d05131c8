// Lesson 06 against an outside implementation: Hugging Face transformers' Llama rotary
// embedding (LlamaRotaryEmbedding + apply_rotary_pos_emb, half-split pairs), run on
// float64 inputs and committed in tests/fixtures/rope_hf.txt (made by
// tests/fixtures/make_rope_fixtures.py; transformers is not needed to run this test).
// transformers forms its angles in float32, so the tolerance adds that error
// (tests/06_rope/rope_check.hpp).
#include "rope.hpp"

#include "attn/testing.hpp"
#include "rope_check.hpp"
#include "rope_reference.hpp"

using namespace attn;

namespace {

const Fixture& hf_fixture() {
  static const Fixture fx(fixture_path("rope_hf.txt"));
  return fx;
}

const char* const kCases[] = {"rope_d8_p0", "rope_d8_p13", "rope_d6_p29", "rope_d16_p100_theta5e5"};

/// Rows of x as one projection of a single head: (B*H*T, D).
Tensor2 as_rows(const Tensor4& x) {
  return xt::reshape_view(x, {x.shape(0) * x.shape(1) * x.shape(2), x.shape(3)});
}

}  // namespace

TEST_CASE("half-split RoPE equals transformers' Llama rotary embedding, D = 6, 8, 16, positions 0 to 101") {
  const Fixture& fx = hf_fixture();
  for (const char* name : kCases) {
    INFO("fixture case ", name);
    const std::size_t first = fx.size(std::string(name) + "/first_position");
    const std::size_t last = fx.size(std::string(name) + "/max_position");
    const double theta = fx.get<double, 0>(std::string(name) + "/theta")();
    for (const char* which : {"q", "k"}) {
      CAPTURE(which);
      const Tensor4 x = fx.get<float, 4>(std::string(name) + "/" + which);
      const auto expected = fx.get<double, 4>(std::string(name) + "/" + which + "_rope");
      ATTN_CHECK_CLOSE(apply_rope(x, first, RopePairing::half_split, theta), expected,
                       tol_rope_hf(max_abs(x), last, theta));
    }
  }
}

TEST_CASE("adjacent RoPE on channels permuted by half_split_to_adjacent equals transformers' output, permuted") {
  const Fixture& fx = hf_fixture();
  for (const char* name : kCases) {
    INFO("fixture case ", name);
    const std::size_t first = fx.size(std::string(name) + "/first_position");
    const std::size_t last = fx.size(std::string(name) + "/max_position");
    const double theta = fx.get<double, 0>(std::string(name) + "/theta")();
    for (const char* which : {"q", "k"}) {
      CAPTURE(which);
      const Tensor4 x = fx.get<float, 4>(std::string(name) + "/" + which);
      const auto expected = fx.get<double, 4>(std::string(name) + "/" + which + "_rope");
      // Each row of x is the output of a projection of one head: permute its columns.
      const Tensor2 rows = half_split_to_adjacent(as_rows(x), 1);
      const Tensor4 permuted = xt::reshape_view(rows, x.shape());
      ATTN_CHECK_CLOSE(apply_rope(permuted, first, RopePairing::adjacent, theta),
                       ref::to_adjacent_layout(expected), tol_rope_hf(max_abs(x), last, theta));
    }
  }
}
