// Lesson 02 against an outside implementation: PyTorch's
// torch.nn.functional.scaled_dot_product_attention with is_causal=True and with an
// explicit boolean mask, computed in float64 on the same float32 inputs and committed
// in tests/fixtures/sdpa_torch.txt (made by tests/fixtures/make_torch_fixtures.py; no
// PyTorch is needed to run this test).
#include "causal.hpp"

#include "attn/testing.hpp"

using namespace attn;

namespace {

/// The fixture file, read once.
const Fixture& torch_fixture() {
  static const Fixture fx(fixture_path("sdpa_torch.txt"));
  return fx;
}

/// Runs causal_attention(q, k, v, q_offset) on the inputs of fixture case `name`,
/// checks that the fixture places the queries at `q_offset`, and compares with
/// PyTorch's output within the float32 bound of check.hpp.
void check_against_torch(const std::string& name, std::size_t q_offset) {
  INFO("fixture case ", name, ", q_offset ", q_offset);
  const Fixture& fx = torch_fixture();
  const Tensor4 q = fx.get<float, 4>(name + "/q");
  const Tensor4 k = fx.get<float, 4>(name + "/k");
  const Tensor4 v = fx.get<float, 4>(name + "/v");
  const auto expected = fx.get<double, 4>(name + "/out");  // (B, H, Tq, Dv)
  REQUIRE(fx.size(name + "/q_offset") == q_offset);
  ATTN_CHECK_CLOSE(causal_attention(q, k, v, q_offset), expected,
                   tol_attention(q.shape(3), k.shape(2), max_abs(q), max_abs(k), max_abs(v)));
}

}  // namespace

TEST_CASE("causal attention equals PyTorch's is_causal=True when Tq == Tk") {
  check_against_torch("causal_square", 0);  // B=2 H=2 Tq=Tk=6 D=5 Dv=3
}

TEST_CASE("causal attention with q_offset = 0 equals PyTorch's top-left is_causal=True when Tq < Tk") {
  // PyTorch's is_causal lets query i see keys j <= i whatever Tk is.
  check_against_torch("causal_topleft", 0);  // B=2 H=1 Tq=3 Tk=7 D=4 Dv=5
}

TEST_CASE("causal attention with q_offset = Tk - Tq equals PyTorch with a bottom-right mask, decode included") {
  // attn_mask(i, j) = j <= Tk - Tq + i: the queries are the last Tq positions.
  check_against_torch("bottomright_prefill", 9 - 4);  // B=1 H=3 Tq=4 Tk=9 D=Dv=6
  check_against_torch("bottomright_decode", 9 - 1);   // B=2 H=2 Tq=1 Tk=9 D=5 Dv=3
}
