// Lesson 03, part 2: the argument checks of GQA attention, written once (TODO 03.2);
// the GPU attentions of lessons 08-10 call them too. `where` names the caller in every message.
#include "gqa.hpp"

#include <cstdint>

#include <xtensor/xbuilder.hpp>

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("check_gqa_arguments accepts GQA, MHA and MQA shapes, causal at every valid offset") {
  const Tensor4 q = xt::zeros<float>({2, 6, 3, 8});
  for (std::size_t g : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{6}}) {
    CAPTURE(g);
    const Tensor4 k = xt::zeros<float>({std::size_t{2}, g, std::size_t{5}, std::size_t{8}});
    const Tensor4 v = xt::zeros<float>({std::size_t{2}, g, std::size_t{5}, std::size_t{4}});  // Dv may differ
    CHECK_NOTHROW(check_gqa_arguments(q, k, v, Mask::none, 0, "here"));
    for (std::size_t offset = 0; offset <= 2; ++offset)
      CHECK_NOTHROW(check_gqa_arguments(q, k, v, Mask::causal, offset, "here"));
  }
}

TEST_CASE("check_gqa_arguments names its caller in every message") {
  const Tensor4 q = xt::zeros<float>({1, 9, 2, 4});
  const Tensor4 kv = xt::zeros<float>({1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv, kv, Mask::none, 0, "flash_attention_gpu"),
                       "flash_attention_gpu: the query heads must be a multiple of the KV heads: given "
                       "H = 9 query heads and G = 2 KV heads",
                       std::invalid_argument);
  const Tensor4 kv3 = xt::zeros<float>({1, 3, 3, 4});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv3, kv3, Mask::causal, 2, "gqa_decode_gpu"),
                       "gqa_decode_gpu: query positions past the last key: expected q_offset + Tq <= Tk = 3, "
                       "given q_offset = 2 and Tq = 2",
                       std::out_of_range);
}

TEST_CASE("check_gqa_arguments rejects H not divisible by G, naming both") {
  const Tensor4 q = xt::zeros<float>({1, 9, 2, 4});
  const Tensor4 kv = xt::zeros<float>({1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv, kv, Mask::none, 0, "gqa_attention"),
                       "gqa_attention: the query heads must be a multiple of the KV heads: given "
                       "H = 9 query heads and G = 2 KV heads",
                       std::invalid_argument);
  const Tensor4 no_heads = xt::zeros<float>({1, 0, 3, 4});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, no_heads, no_heads, Mask::none, 0, "gqa_attention"),
                       doctest::Contains("G = 0 KV heads"), std::invalid_argument);
}

TEST_CASE("check_gqa_arguments rejects mismatched batch, head dimension, KV heads and lengths") {
  const Tensor4 q = xt::zeros<float>({2, 6, 3, 8});
  const Tensor4 kv = xt::zeros<float>({2, 3, 5, 8});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, xt::zeros<float>({1, 3, 5, 8}), kv, Mask::none, 0, "gqa_attention"),
                       "gqa_attention: batch of k (B of q): expected 2, given 1",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, xt::zeros<float>({2, 3, 5, 7}), kv, Mask::none, 0, "gqa_attention"),
                       "gqa_attention: head dimension of k (D of q): expected 8, given 7",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv, xt::zeros<float>({3, 3, 5, 8}), Mask::none, 0, "gqa_attention"),
                       "gqa_attention: batch of v (B of q): expected 2, given 3",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv, xt::zeros<float>({2, 2, 5, 8}), Mask::none, 0, "gqa_attention"),
                       "gqa_attention: KV heads of v (G of k): expected 3, given 2",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv, xt::zeros<float>({2, 3, 4, 8}), Mask::causal, 0, "gqa_attention"),
                       "gqa_attention: length of v (Tk of k): expected 5, given 4",
                       std::invalid_argument);
  const Tensor4 empty = xt::zeros<float>({2, 3, 0, 8});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, empty, empty, Mask::none, 0, "gqa_attention"),
                       "gqa_attention: attention needs at least one key, given Tk = 0",
                       std::invalid_argument);
}

TEST_CASE("check_gqa_arguments rejects a query offset without a causal mask") {
  const Tensor4 q = xt::zeros<float>({1, 4, 2, 8});
  const Tensor4 kv = xt::zeros<float>({1, 2, 5, 8});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv, kv, Mask::none, 3, "gqa_attention"),
                       "gqa_attention: q_offset with Mask::none (only a causal mask uses "
                       "positions): expected 0, given 3",
                       std::invalid_argument);
}

TEST_CASE("check_gqa_arguments rejects causal queries that end past the last key") {
  const Tensor4 q = xt::zeros<float>({1, 4, 4, 8});
  const Tensor4 kv = xt::zeros<float>({1, 2, 5, 8});
  CHECK_THROWS_WITH_AS(check_gqa_arguments(q, kv, kv, Mask::causal, 2, "gqa_attention"),
                       "gqa_attention: query positions past the last key: expected q_offset + "
                       "Tq <= Tk = 5, given q_offset = 2 and Tq = 4",
                       std::out_of_range);
  const Tensor4 long_q = xt::zeros<float>({1, 4, 6, 8});
  CHECK_THROWS_AS(check_gqa_arguments(long_q, kv, kv, Mask::causal, 0, "gqa_attention"), std::out_of_range);
  // An offset so large that q_offset + Tq wraps around is still out of range.
  CHECK_THROWS_AS(check_gqa_arguments(q, kv, kv, Mask::causal, SIZE_MAX - 1, "gqa_attention"), std::out_of_range);
  // The last valid offset is accepted: the 4 queries sit at positions 1 ... 4.
  CHECK_NOTHROW(check_gqa_arguments(q, kv, kv, Mask::causal, 1, "gqa_attention"));
}
