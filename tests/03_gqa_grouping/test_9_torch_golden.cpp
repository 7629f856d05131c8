// Lesson 03 against an outside implementation: PyTorch's
// torch.nn.functional.scaled_dot_product_attention with enable_gqa=True, H = 6 query
// heads over G = 1, 2, 3, 6 key/value heads, computed in float64 on the same float32
// inputs and committed in tests/fixtures/sdpa_torch.txt (made by
// tests/fixtures/make_torch_fixtures.py; no PyTorch is needed to run this test).
#include "gqa.hpp"

#include "attn/testing.hpp"

using namespace attn;

namespace {

/// The fixture file, read once.
const Fixture& torch_fixture() {
  static const Fixture fx(fixture_path("sdpa_torch.txt"));
  return fx;
}

/// Runs gqa_attention(q, k, v, mask, q_offset) on the inputs of fixture case `name`,
/// with q_offset read from the fixture, and compares with PyTorch's output within
/// the float32 bound of check.hpp. Returns the offset used.
std::size_t check_against_torch(const std::string& name, Mask mask) {
  INFO("fixture case ", name);
  const Fixture& fx = torch_fixture();
  const Tensor4 q = fx.get<float, 4>(name + "/q");  // (B, 6, Tq, D)
  const Tensor4 k = fx.get<float, 4>(name + "/k");  // (B, G, Tk, D)
  const Tensor4 v = fx.get<float, 4>(name + "/v");  // (B, G, Tk, Dv)
  const auto expected = fx.get<double, 4>(name + "/out");
  const std::size_t q_offset = fx.size(name + "/q_offset");
  REQUIRE(q.shape(1) == 6);
  ATTN_CHECK_CLOSE(gqa_attention(q, k, v, mask, q_offset), expected,
                   tol_attention(q.shape(3), k.shape(2), max_abs(q), max_abs(k), max_abs(v)));
  return q_offset;
}

}  // namespace

TEST_CASE("GQA equals PyTorch's enable_gqa=True without a mask, H = 6 and G = 1, 2, 3, 6") {
  for (const char* g : {"1", "2", "3", "6"}) CHECK(check_against_torch(std::string("gqa_none_G") + g, Mask::none) == 0);
}

TEST_CASE("causal GQA equals PyTorch's enable_gqa=True, is_causal=True when Tq == Tk, G = 1, 2, 3, 6") {
  for (const char* g : {"1", "2", "3", "6"})
    CHECK(check_against_torch(std::string("gqa_causal_G") + g, Mask::causal) == 0);
}

TEST_CASE("causal GQA with q_offset = Tk - Tq equals PyTorch's enable_gqa=True with a bottom-right mask, G = 1, 2, 3, 6") {
  // Tk = 5 and Tq = 2 (Tq = 1, decode, for G = 3): the queries are the last positions.
  for (const char* g : {"1", "2", "3", "6"}) {
    const std::size_t offset = check_against_torch(std::string("gqa_bottomright_G") + g, Mask::causal);
    CHECK((offset == 3 || offset == 4));
  }
}
