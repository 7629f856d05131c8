// How fast the emulator runs blocks: a 256-thread block summing 256 floats in
// shared memory (9 barriers), and the same sum by warp shuffles (5 per warp).
// Prints microseconds per block; not a test.
#include <cstdio>
#include <vector>

#include "attn/cuda.hpp"
#include "attn/device_buffer.hpp"
#include "attn/timer.hpp"
#include "kernels.hpp"

int main() {
  const int threads = 256, blocks = 512, n = threads * blocks;
  const std::vector<float> x(static_cast<std::size_t>(n), 1.0f);
  attn::cuda::DeviceBuffer<float> dx(x), partial(static_cast<std::size_t>(blocks)), warps(static_cast<std::size_t>(n / 32));
  std::printf("%s, %d blocks of %d threads\n", attn::cuda::kTarget, blocks, threads);
  const double shared = attn::median_seconds(
      [&] { emu_test::block_sum(dx.get(), partial.get(), n, threads, true); }, 5);
  std::printf("block sum in shared memory (9 barriers): %8.1f us per block\n", shared / blocks * 1e6);
  const double shuffles = attn::median_seconds(
      [&] { emu_test::warp_sum_xor(dx.get(), warps.get(), n, threads); }, 5);
  std::printf("warp sums by __shfl_xor_sync (5 rounds): %8.1f us per block\n", shuffles / blocks * 1e6);
  const double none = attn::median_seconds(
      [&] { emu_test::block_sum(dx.get(), partial.get(), n, threads, false); }, 5);
  std::printf("block sum without barriers (wrong):      %8.1f us per block\n", none / blocks * 1e6);
}
