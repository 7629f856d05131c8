// Lesson 04, part 3: what a cache costs, in bytes, exactly.
#include "kv_cache.hpp"

#include <cstdint>
#include <limits>
#include <stdexcept>

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("kv_cache_bytes is 2 x layers x batch x kv_heads x tokens x head_dim x element bytes") {
  // Written out by hand.
  CHECK(kv_cache_bytes(1, 1, 1, 1, 1, 1) == 2);
  CHECK(kv_cache_bytes(3, 5, 7, 11, 13, 2) == 2ull * 3 * 5 * 7 * 11 * 13 * 2);
  // The toy case of the README: d_model 512, 8 heads of 64, 256 tokens, float32, one layer.
  CHECK(kv_cache_bytes(1, 1, 8, 256, 64, 4) == 1024ull * 1024);  // MHA: 1024 KiB
  CHECK(kv_cache_bytes(1, 1, 2, 256, 64, 4) == 256ull * 1024);   // G = 2: 256 KiB
  CHECK(kv_cache_bytes(1, 1, 1, 256, 64, 4) == 128ull * 1024);   // MQA: 128 KiB
  // The production case: 32 layers, 32 heads of 128, 8192 tokens, fp16, one sequence.
  CHECK(kv_cache_bytes(32, 1, 32, 8192, 128, 2) == 4ull << 30);   // MHA: 4 GiB
  CHECK(kv_cache_bytes(32, 1, 8, 8192, 128, 2) == 1ull << 30);    // G = 8: 1 GiB
  CHECK(kv_cache_bytes(32, 1, 1, 8192, 128, 2) == 128ull << 20);  // MQA: 128 MiB
  // Any size 0 gives 0 bytes, even when the others alone would overflow.
  CHECK(kv_cache_bytes(32, 0, 8, 8192, 128, 2) == 0);
  CHECK(kv_cache_bytes(1ull << 40, 1ull << 40, 0, 1, 1, 1) == 0);
}

TEST_CASE("kv_cache_bytes refuses a product past 2^64 - 1 with std::overflow_error") {
  // 2 x 2^62 = 2^63 fits; 2 x 2^63 = 2^64 does not.
  CHECK(kv_cache_bytes(1ull << 62, 1, 1, 1, 1, 1) == 1ull << 63);
  CHECK_THROWS_AS(kv_cache_bytes(1ull << 63, 1, 1, 1, 1, 1), std::overflow_error);
  // The overflow may hide in any factor, or only in the last multiplication.
  CHECK_THROWS_AS(kv_cache_bytes(1, 1, 1, 1, 1, 1ull << 63), std::overflow_error);
  CHECK_THROWS_AS(kv_cache_bytes(1ull << 20, 1ull << 20, 1ull << 20, 1ull << 4, 1, 1),
                  std::overflow_error);  // 2^65
  CHECK(kv_cache_bytes(1ull << 20, 1ull << 20, 1ull << 20, 1ull << 2, 1, 1) == 1ull << 63);
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  CHECK_THROWS_WITH_AS(kv_cache_bytes(max, 1, 1, 1, 1, 1),
                       "kv_cache_bytes: 2 x 18446744073709551615 layers x 1 batch x 1 kv_heads x "
                       "1 tokens x 1 head_dim x 1 bytes does not fit in 64 bits (at most "
                       "18446744073709551615)",
                       std::overflow_error);
  // A product that wraps around to a small number must not slip through:
  // 2 x 2^32 x 2^32 = 2^65 wraps to 0 in 64-bit arithmetic.
  CHECK_THROWS_AS(kv_cache_bytes(1ull << 32, 1ull << 32, 1, 1, 1, 1), std::overflow_error);
}

TEST_CASE("bytes_allocated is 2 B G capacity D sizeof(float) and bytes_used is 2 B G length D sizeof(float), exactly") {
  const std::size_t nb = 3, ng = 2, cap = 11, d = 5;
  KVCache cache(nb, ng, cap, d);
  const std::size_t allocated = 2 * nb * ng * cap * d * sizeof(float);
  CHECK(cache.bytes_allocated() == allocated);
  CHECK(cache.bytes_used() == 0);
  std::size_t length = 0;
  for (std::size_t tn : {4, 1, 6}) {
    const Tensor4 x = random_uniform<4>({nb, ng, tn, d}, 40 + tn);
    cache.append(x, x);
    length += tn;
    CHECK(cache.bytes_used() == 2 * nb * ng * length * d * sizeof(float));
    CHECK(cache.bytes_allocated() == allocated);  // never grows
  }
  CHECK(cache.bytes_used() == cache.bytes_allocated());  // full
  cache.reset();
  CHECK(cache.bytes_used() == 0);
  CHECK(cache.bytes_allocated() == allocated);  // reset keeps the buffers
}
