// Lesson 01 against an outside implementation: PyTorch's
// torch.nn.functional.scaled_dot_product_attention, computed in float64 on the same
// float32 inputs and committed in tests/fixtures/sdpa_torch.txt (made by
// tests/fixtures/make_torch_fixtures.py; no PyTorch is needed to run this test).
#include "attention.hpp"

#include "attn/testing.hpp"

using namespace attn;

namespace {

/// The fixture file, read once.
const Fixture& torch_fixture() {
  static const Fixture fx(fixture_path("sdpa_torch.txt"));
  return fx;
}

/// Runs scaled_dot_product_attention on the inputs of fixture case `name` and
/// compares with PyTorch's output, within the float32 bound of check.hpp.
void check_against_torch(const std::string& name) {
  INFO("fixture case ", name);
  const Fixture& fx = torch_fixture();
  const Tensor4 q = fx.get<float, 4>(name + "/q");
  const Tensor4 k = fx.get<float, 4>(name + "/k");
  const Tensor4 v = fx.get<float, 4>(name + "/v");
  const auto expected = fx.get<double, 4>(name + "/out");  // (B, H, Tq, Dv)
  REQUIRE(fx.size(name + "/q_offset") == 0);                // no mask in these cases
  ATTN_CHECK_CLOSE(scaled_dot_product_attention(q, k, v), expected,
                   tol_attention(q.shape(3), k.shape(2), max_abs(q), max_abs(k), max_abs(v)));
}

}  // namespace

TEST_CASE("attention equals PyTorch's scaled_dot_product_attention with Tq != Tk and Dv != D") {
  check_against_torch("sdpa_odd");   // B=2 H=3 Tq=5 Tk=7 D=5 Dv=3
  check_against_torch("sdpa_wide");  // B=1 H=2 Tq=3 Tk=11 D=9 Dv=4, inputs in [-3, 3)
}

TEST_CASE("attention equals PyTorch's scaled_dot_product_attention on six heads") {
  // The GQA fixture with as many key/value heads as query heads is plain multi-head attention.
  check_against_torch("gqa_none_G6");  // B=1 H=6 Tq=3 Tk=5 D=3
}
