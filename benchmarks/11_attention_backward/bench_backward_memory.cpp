// Lesson 11: the peak extra allocation of the naive and the flash backward against T, counted
// by the replaceable operator new of tests/11_attention_backward/counting_new.hpp (bytes are
// counted, not timed: the numbers are the same on every machine with the same build).
//
//   bench_backward_memory results.json
//
// Writes {"shape": {...}, "rows": [{"t": T, "naive": bytes, "flash": bytes}, ...]} for
// B = 1, H = 9, G = 3, D = 64 (SmolLM2's heads), causal, tiles of 64 rows.
#include <cstdio>
#include <fstream>
#include <iostream>

// The lesson libraries are compiled with the tests' precompiled header, which includes
// doctest; its implementation (no main, no test) is linked here.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "attn/random.hpp"
#include "backward.hpp"
#include "counting_new.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: bench_backward_memory results.json\n";
    return 2;
  }
  using namespace attn;
  const std::size_t nb = 1, nh = 9, ng = 3, d = 64, tile = 64;
  std::ofstream out(argv[1]);
  out << "{\n  \"about\": \"peak bytes allocated by one backward call beyond those allocated before it "
         "(results included); written by benchmarks/11_attention_backward/bench_backward_memory\",\n"
      << "  \"shape\": {\"B\": " << nb << ", \"H\": " << nh << ", \"G\": " << ng << ", \"D\": " << d
      << ", \"tile\": " << tile << ", \"mask\": \"causal\"},\n  \"rows\": [";
  bool first = true;
  for (std::size_t t = 64; t <= 2048; t *= 2) {
    const Tensor4 q = random_uniform<4>({nb, nh, t, d}, 1), k = random_uniform<4>({nb, ng, t, d}, 2);
    const Tensor4 v = random_uniform<4>({nb, ng, t, d}, 3), dout = random_uniform<4>({nb, nh, t, d}, 4);
    const FlashForward f = flash_attention_forward(q, k, v, Mask::causal, 0, tile);
    const std::size_t flash = counting::peak_extra_bytes(
        [&] { flash_attention_backward(q, k, v, f, dout, Mask::causal, 0, tile); });
    const std::size_t naive =
        counting::peak_extra_bytes([&] { gqa_attention_backward(q, k, v, dout, Mask::causal, 0); });
    out << (first ? "\n" : ",\n") << "    {\"t\": " << t << ", \"naive\": " << naive
        << ", \"flash\": " << flash << "}";
    first = false;
    std::cerr << "T = " << t << ": naive " << naive << " bytes, flash " << flash << " bytes\n";
  }
  out << "\n  ]\n}\n";
  return 0;
}
