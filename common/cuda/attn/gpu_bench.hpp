/// @file gpu_bench.hpp
/// @brief What the GPU benchmarks share: CUDA-event timing with the L2 cache flushed
///        before each run, the device's copy bandwidth, and validation against a
///        reference that prints the first mismatches (in the style of llm.c's dev/cuda).
///        Only on a real GPU (ATTN_CUDA_RUNTIME); the emulator has no meaningful time.
#pragma once

#include "attn/cuda.hpp"

#if ATTN_CUDA_RUNTIME
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace attn::cuda {

/// A device buffer twice the size of L2 (at least 64 MiB); writing it evicts what a
/// previous run left in L2, so every timed run starts from device memory.
class L2Flush {
 public:
  explicit L2Flush(const cudaDeviceProp& prop)
      : bytes_(std::max<std::size_t>(std::size_t(prop.l2CacheSize) * 2, std::size_t(64) << 20)) {
    ATTN_CUDA_CHECK(cudaMalloc(&buffer_, bytes_));
  }
  ~L2Flush() { cudaFree(buffer_); }
  L2Flush(const L2Flush&) = delete;
  L2Flush& operator=(const L2Flush&) = delete;
  /// Overwrites the whole buffer with a byte that changes from call to call.
  void operator()(int round) const { ATTN_CUDA_CHECK(cudaMemset(buffer_, round & 0xff, bytes_)); }

 private:
  std::size_t bytes_;
  void* buffer_ = nullptr;
};

/// Median milliseconds of `reps` runs of f() timed with CUDA events, after 5 untimed
/// warm-up runs, with L2 flushed before each timed run.
template <class F>
double median_ms(F&& f, const L2Flush& flush, int reps = 50) {
  cudaEvent_t start, stop;
  ATTN_CUDA_CHECK(cudaEventCreate(&start));
  ATTN_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 5; ++i) f();
  std::vector<float> ms(reps);
  for (int i = 0; i < reps; ++i) {
    flush(i);
    ATTN_CUDA_CHECK(cudaEventRecord(start));
    f();
    ATTN_CUDA_CHECK(cudaEventRecord(stop));
    ATTN_CUDA_CHECK(cudaEventSynchronize(stop));
    ATTN_CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  ATTN_CUDA_CHECK(cudaEventDestroy(start));
  ATTN_CUDA_CHECK(cudaEventDestroy(stop));
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[reps / 2];
}

/// The device's memory bandwidth in GB/s (10^9 bytes), measured as a 1 GiB
/// device-to-device copy that reads and writes every byte: 2 * bytes / time.
inline double copy_bandwidth_gbs(const L2Flush& flush) {
  const std::size_t bytes = std::size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  ATTN_CUDA_CHECK(cudaMalloc(&a, bytes));
  ATTN_CUDA_CHECK(cudaMalloc(&b, bytes));
  ATTN_CUDA_CHECK(cudaMemset(a, 1, bytes));
  const double ms =
      median_ms([&] { ATTN_CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); }, flush, 20);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / ms / 1e6;
}

#if defined(__CUDACC__)
/// x[i] = a pseudo-random value, uniform in [-1, 1), from a hash of (seed, i): timed
/// inputs are never zeros, which can run faster than real data and hide unwritten outputs.
template <class T>
__global__ void fill_uniform_kernel(T* x, std::size_t n, unsigned seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    unsigned long long z = (i + 1) * 0x9E3779B97F4A7C15ull + seed;  // splitmix64's finalizer
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    x[i] = static_cast<T>(static_cast<float>(z >> 40) * 0x1p-23f - 1.0f);
  }
}

/// Fills n elements of device memory with fill_uniform_kernel's values.
template <class T>
void fill_uniform(T* x, std::size_t n, unsigned seed) {
  fill_uniform_kernel<<<1024, 256>>>(x, n, seed);
  ATTN_CUDA_CHECK(cudaGetLastError());
}
#endif

/// printf's formatting into a string.
template <class... Args>
std::string formatted(const char* format, Args... args) {
  std::string text(static_cast<std::size_t>(std::snprintf(nullptr, 0, format, args...)), '\0');
  std::snprintf(text.data(), text.size() + 1, format, args...);
  return text;
}

/// Writes a benchmark's results for benchmarks/gpu_report.py, which puts them in the
/// lesson's README: {"benchmark", "device", "sms", "copy_gbs", "rows": [...]}, each row
/// a JSON object the benchmark formatted.
inline void write_results(const char* path, const char* benchmark, const cudaDeviceProp& prop, double copy_gbs,
                          const std::vector<std::string>& rows) {
  std::FILE* f = std::fopen(path, "w");
  if (f == nullptr) throw std::runtime_error(std::string("cannot write ") + path);
  std::fprintf(f, "{\"benchmark\": \"%s\", \"device\": \"%s\", \"sms\": %d, \"copy_gbs\": %.1f,\n \"rows\": [",
               benchmark, prop.name, prop.multiProcessorCount, copy_gbs);
  for (std::size_t i = 0; i < rows.size(); ++i) std::fprintf(f, "%s\n  %s", i == 0 ? "" : ",", rows[i].c_str());
  std::fprintf(f, "\n]}\n");
  std::fclose(f);
  std::printf("\nwrote %s\n", path);
}

/// True if |got[i] - ref[i]| <= atol everywhere; prints the first ten mismatches.
inline bool all_within(const std::vector<float>& got, const std::vector<double>& ref, double atol) {
  int bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::abs(got[i] - ref[i]) <= atol) continue;  // false for NaN
    if (bad < 10) std::printf("  mismatch at %zu: got %.9g, expected %.9g (tol %.3g)\n", i, got[i], ref[i], atol);
    ++bad;
  }
  return bad == 0;
}

}  // namespace attn::cuda
#endif  // ATTN_CUDA_RUNTIME
