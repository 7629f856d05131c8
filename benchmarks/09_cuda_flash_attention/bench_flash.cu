// Lesson 09's benchmark: the fused float32 attention kernel on a GPU.
//
//   cmake --preset solutions -DATTN_CUDA_GPU=ON
//   cmake --build --preset solutions --target bench_flash && build/solutions/benchmarks/09_cuda_flash_attention/bench_flash
//
// Versions (one so far):
//   1. flash_attention_kernel, float32, one warp per query row, 16 rows x 32 keys per tile (lesson 09)
//
// Each version is validated first against a float64 loop on a small problem (tolerance
// tol_attention of common/attn/check.hpp, grown by 2 per key tile), then timed with CUDA
// events: 5 warm-up runs, the median of 50, the L2 cache flushed before each run.
// Prints TFLOP/s (4 B H Tq Tk D flops without the mask; only the visible pairs with it).
// On the CPU emulator it prints that it is skipped and exits 0: timings there would
// measure the emulator.
#include <cstdio>

#include "attn/cuda.hpp"

#if ATTN_CUDA_RUNTIME
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "attn/check.hpp"
#include "attn/gpu_bench.hpp"
#include "flash_kernels.hpp"

namespace {

struct Problem {
  int b, h, g, t, d;
  bool causal;
};

std::vector<float> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return x;
}

/// Attention in float64 loops: q (B, H, T, D), k, v (B, G, T, D), causal at q_offset 0.
std::vector<double> reference(const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, const Problem& p) {
  std::vector<double> out(q.size());
  std::vector<double> s(p.t);
  for (int b = 0; b < p.b; ++b)
    for (int h = 0; h < p.h; ++h) {
      const int g = h / (p.h / p.g);
      const float* kh = &k[(std::size_t(b) * p.g + g) * p.t * p.d];
      const float* vh = &v[(std::size_t(b) * p.g + g) * p.t * p.d];
      for (int i = 0; i < p.t; ++i) {
        const float* qi = &q[((std::size_t(b) * p.h + h) * p.t + i) * p.d];
        const int visible = p.causal ? i + 1 : p.t;
        double m = -INFINITY, l = 0.0;
        for (int j = 0; j < visible; ++j) {
          double dot = 0.0;
          for (int c = 0; c < p.d; ++c) dot += double(qi[c]) * kh[std::size_t(j) * p.d + c];
          s[j] = dot / std::sqrt(double(p.d));
          m = std::max(m, s[j]);
        }
        double* oi = &out[((std::size_t(b) * p.h + h) * p.t + i) * p.d];
        for (int c = 0; c < p.d; ++c) oi[c] = 0.0;
        for (int j = 0; j < visible; ++j) {
          const double e = std::exp(s[j] - m);
          l += e;
          for (int c = 0; c < p.d; ++c) oi[c] += e * vh[std::size_t(j) * p.d + c];
        }
        for (int c = 0; c < p.d; ++c) oi[c] /= l;
      }
    }
  return out;
}

struct Device {
  float *q, *k, *v, *out;
  explicit Device(const Problem& p) {
    const std::size_t nq = std::size_t(p.b) * p.h * p.t * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
    ATTN_CUDA_CHECK(cudaMalloc(&q, nq * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&out, nq * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&k, nk * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&v, nk * sizeof(float)));
  }
  ~Device() {
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(out);
  }
  void run(const Problem& p) const {
    attn::gpu::launch_flash_attention(q, k, v, out, p.b, p.h, p.g, p.t, p.t, p.d,
                                      1.0f / std::sqrt(float(p.d)), p.causal, 0);
  }
};

bool validate(const Problem& p) {
  const std::size_t nq = std::size_t(p.b) * p.h * p.t * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
  const auto q = random_vector(nq, 1), k = random_vector(nk, 2), v = random_vector(nk, 3);
  const Device dev(p);
  ATTN_CUDA_CHECK(cudaMemcpy(dev.q, q.data(), nq * sizeof(float), cudaMemcpyHostToDevice));
  ATTN_CUDA_CHECK(cudaMemcpy(dev.k, k.data(), nk * sizeof(float), cudaMemcpyHostToDevice));
  ATTN_CUDA_CHECK(cudaMemcpy(dev.v, v.data(), nk * sizeof(float), cudaMemcpyHostToDevice));
  dev.run(p);
  std::vector<float> got(nq);
  ATTN_CUDA_CHECK(cudaMemcpy(got.data(), dev.out, nq * sizeof(float), cudaMemcpyDeviceToHost));
  const auto ref = reference(q, k, v, p);
  const std::size_t tiles = (p.t + attn::gpu::kFlashKeys - 1) / attn::gpu::kFlashKeys;
  const double atol = attn::tol_attention(p.d, p.t + 2 * tiles, 1.0, 1.0, 1.0).atol;
  return attn::cuda::all_within(got, ref, atol);
}


}  // namespace

int main() {
  cudaDeviceProp prop{};
  ATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const attn::cuda::L2Flush flush(prop);

  // Copy bandwidth: a large device-to-device copy reads and writes every byte.
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", attn::cuda::copy_bandwidth_gbs(flush));

  // Validate every configuration that is timed, on a small problem of the same kind.
  for (const int d : {64, 128})
    for (const bool causal : {false, true}) {
      const Problem small{1, 4, 2, 301, d, causal};
      if (!validate(small)) {
        std::printf("validation FAILED for D=%d causal=%d\n", d, int(causal));
        return 1;
      }
    }
  std::printf("validation: ok (float64 reference, D = 64 and 128, causal and not)\n\n");

  std::printf("%-40s %10s %10s\n", "kernel / problem", "ms", "TFLOP/s");
  for (const int d : {64, 128})
    for (const bool causal : {false, true}) {
      const Problem p{4, 32, 8, 4096, d, causal};
      const Device dev(p);
      ATTN_CUDA_CHECK(cudaMemset(dev.q, 0, std::size_t(p.b) * p.h * p.t * p.d * sizeof(float)));
      ATTN_CUDA_CHECK(cudaMemset(dev.k, 0, std::size_t(p.b) * p.g * p.t * p.d * sizeof(float)));
      ATTN_CUDA_CHECK(cudaMemset(dev.v, 0, std::size_t(p.b) * p.g * p.t * p.d * sizeof(float)));
      const double ms = attn::cuda::median_ms([&] { dev.run(p); }, flush);
      const double pairs = causal ? double(p.t) * (p.t + 1) / 2 : double(p.t) * p.t;
      const double flops = 4.0 * p.b * p.h * pairs * p.d;
      char name[64];
      std::snprintf(name, sizeof name, "flash f32 B=%d H=%d G=%d T=%d D=%d%s", p.b, p.h, p.g, p.t, p.d,
                    causal ? " causal" : "");
      std::printf("%-40s %10.3f %10.2f\n", name, ms, flops / ms / 1e9);
    }
  return 0;
}

#else

int main() {
  std::printf(
      "bench_flash: skipped: this build runs the kernels on the %s, whose timings would measure the "
      "emulator, not a GPU. Configure with -DATTN_CUDA_GPU=ON on a machine with an NVIDIA GPU.\n",
      attn::cuda::kTarget);
  return 0;
}

#endif
