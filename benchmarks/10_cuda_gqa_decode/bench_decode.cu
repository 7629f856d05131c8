// Lesson 10's benchmark: GQA decode attention over the compact cache, on a GPU.
//
//   cmake --preset solutions -DATTN_CUDA_GPU=ON
//   cmake --build --preset solutions --target bench_decode && build/solutions/benchmarks/10_cuda_gqa_decode/bench_decode [results.json]
//
// Versions (one kernel, two caches):
//   1. decode_partial_kernel + decode_combine_kernel on the GQA cache (B, G, T, D), several splits
//   2. the same kernels on the MHA-expanded cache (B, H, T, D): G = H, H/G times the bytes
// Baseline, in the same run: lesson 08's unfused attention on cuBLAS (attn/cublas_attention.hpp),
// float32, on both caches: per (batch, KV head) one GEMM for the scores of its H/G query
// heads, a softmax kernel, one GEMM for the output.
//
// Each configuration is validated first against a float64 loop on a small problem, then
// timed with CUDA events: 5 warm-up runs, the median of 50, the L2 cache flushed before
// each run. Prints the cache bytes read per step over the time (GB/s), that as a
// percentage of the device-to-device copy bandwidth measured by the same program, and
// the speedup of GQA over the MHA-expanded cache. On the CPU emulator it prints that it
// is skipped and exits 0.
#include <cstdio>

#include "attn/cuda.hpp"

#if ATTN_CUDA_RUNTIME
#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "attn/check.hpp"
#include "attn/cublas_attention.hpp"
#include "attn/gpu_bench.hpp"
#include "decode_kernels.hpp"

namespace {

struct Problem {
  int b, h, g, t, d, splits;
};

std::vector<float> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return x;
}

/// Decode attention in float64 loops: q (B, H, 1, D) over all T keys of k, v (B, G, T, D).
std::vector<double> reference(const std::vector<float>& q, const std::vector<float>& k,
                              const std::vector<float>& v, const Problem& p) {
  std::vector<double> out(q.size(), 0.0), s(p.t);
  for (int b = 0; b < p.b; ++b)
    for (int h = 0; h < p.h; ++h) {
      const int g = h / (p.h / p.g);
      const float* kh = &k[(std::size_t(b) * p.g + g) * p.t * p.d];
      const float* vh = &v[(std::size_t(b) * p.g + g) * p.t * p.d];
      const float* qh = &q[(std::size_t(b) * p.h + h) * p.d];
      double m = -INFINITY, l = 0.0;
      for (int j = 0; j < p.t; ++j) {
        double dot = 0.0;
        for (int c = 0; c < p.d; ++c) dot += double(qh[c]) * kh[std::size_t(j) * p.d + c];
        s[j] = dot / std::sqrt(double(p.d));
        m = std::max(m, s[j]);
      }
      double* oh = &out[(std::size_t(b) * p.h + h) * p.d];
      for (int j = 0; j < p.t; ++j) {
        const double e = std::exp(s[j] - m);
        l += e;
        for (int c = 0; c < p.d; ++c) oh[c] += e * vh[std::size_t(j) * p.d + c];
      }
      for (int c = 0; c < p.d; ++c) oh[c] /= l;
    }
  return out;
}

struct Device {
  float *q, *k, *v, *partial_o, *partial_ml, *out;
  explicit Device(const Problem& p) {
    const std::size_t nq = std::size_t(p.b) * p.h * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
    ATTN_CUDA_CHECK(cudaMalloc(&q, nq * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&out, nq * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&k, nk * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&v, nk * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&partial_o, nq * p.splits * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&partial_ml, std::size_t(p.b) * p.h * p.splits * 2 * sizeof(float)));
  }
  ~Device() {
    for (float* x : {q, k, v, partial_o, partial_ml, out}) cudaFree(x);
  }
  void run(const Problem& p, attn::cuda::CublasAttention* baseline = nullptr) const {
    if (baseline != nullptr) return baseline->run(q, k, v, out, false);
    attn::gpu::launch_gqa_decode(q, k, v, partial_o, partial_ml, out, p.b, p.h, p.g, p.t, p.t, p.d,
                                 1.0f / std::sqrt(float(p.d)), p.splits);
  }
};

bool validate(const Problem& p, bool baseline = false) {
  const std::size_t nq = std::size_t(p.b) * p.h * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
  const auto q = random_vector(nq, 1), k = random_vector(nk, 2), v = random_vector(nk, 3);
  const Device dev(p);
  ATTN_CUDA_CHECK(cudaMemcpy(dev.q, q.data(), nq * sizeof(float), cudaMemcpyHostToDevice));
  ATTN_CUDA_CHECK(cudaMemcpy(dev.k, k.data(), nk * sizeof(float), cudaMemcpyHostToDevice));
  ATTN_CUDA_CHECK(cudaMemcpy(dev.v, v.data(), nk * sizeof(float), cudaMemcpyHostToDevice));
  ATTN_CUDA_CHECK(cudaMemset(dev.out, 0xff, nq * sizeof(float)));  // NaN: an output never written fails
  std::optional<attn::cuda::CublasAttention> cublas;
  if (baseline) cublas.emplace(p.b, p.h, p.g, 1, p.t, p.d, false);
  dev.run(p, baseline ? &*cublas : nullptr);
  std::vector<float> got(nq);
  ATTN_CUDA_CHECK(cudaMemcpy(got.data(), dev.out, nq * sizeof(float), cudaMemcpyDeviceToHost));
  const auto ref = reference(q, k, v, p);
  const std::size_t tiles = (p.t + attn::gpu::kDecodeKeys - 1) / attn::gpu::kDecodeKeys;
  const double atol = attn::tol_attention(p.d, p.t + 2 * tiles + p.splits + 2, 1.0, 1.0, 1.0).atol;
  return attn::cuda::all_within(got, ref, atol);
}


}  // namespace

int run(const char* json_path) {
  cudaDeviceProp prop{};
  ATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const attn::cuda::L2Flush flush(prop);

  const double copy_gbs = attn::cuda::copy_bandwidth_gbs(flush);
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copy_gbs);

  for (const int splits : {1, 3})
    for (const int g : {8, 32}) {
      const Problem small{2, 32, g, 301, 128, splits};
      if (!validate(small)) {
        std::printf("validation FAILED for G=%d splits=%d\n", g, splits);
        return 1;
      }
    }
  for (const int g : {8, 32})
    if (!validate(Problem{2, 32, g, 301, 128, 1}, true)) {
      std::printf("validation FAILED for the cuBLAS baseline, G=%d\n", g);
      return 1;
    }
  std::printf("validation: ok (float64 reference, G = 8 and 32, 1 and 3 splits, and the cuBLAS baseline)\n\n");

  std::vector<std::string> rows;  // for the results file
  const auto row = [&](const char* kernel, const Problem& p, double ms, double gbs) {
    rows.push_back(attn::cuda::formatted(
        "{\"kernel\": \"%s\", \"b\": %d, \"h\": %d, \"g\": %d, \"t\": %d, \"d\": %d, \"splits\": %d, "
        "\"ms\": %.4f, \"gbs\": %.1f}",
        kernel, p.b, p.h, p.g, p.t, p.d, p.splits, ms, gbs));
  };
  std::printf("%-44s %9s %9s %11s\n", "kernel / problem", "ms", "GB/s", "% of copy");
  double best_gqa = 1e30, best_mha = 1e30;
  for (const int g : {8, 32})
    for (const int splits : {1, 2, 4, 8}) {
      const Problem p{32, 32, g, 4096, 128, splits};
      const Device dev(p);
      const std::size_t nk = std::size_t(p.b) * p.g * p.t * p.d;
      attn::cuda::fill_uniform(dev.q, std::size_t(p.b) * p.h * p.d, 21);  // random data, never zeros
      attn::cuda::fill_uniform(dev.k, nk, 22);
      attn::cuda::fill_uniform(dev.v, nk, 23);
      const double ms = attn::cuda::median_ms([&] { dev.run(p); }, flush);
      const double gbs = 2.0 * double(nk) * sizeof(float) / ms / 1e6;  // K and V, each read once
      (g == p.h ? best_mha : best_gqa) = std::min(g == p.h ? best_mha : best_gqa, ms);
      char name[80];
      std::snprintf(name, sizeof name, "%s B=%d T=%d H=%d G=%d D=%d splits=%d", g == p.h ? "MHA-expanded" : "GQA",
                    p.b, p.t, p.h, p.g, p.d, p.splits);
      std::printf("%-44s %9.3f %9.0f %10.1f%%\n", name, ms, gbs, 100.0 * gbs / copy_gbs);
      row("gqa_decode", p, ms, gbs);
    }
  for (const int g : {8, 32}) {
    const Problem p{32, 32, g, 4096, 128, 1};
    const Device dev(p);
    const std::size_t nk = std::size_t(p.b) * p.g * p.t * p.d;
    attn::cuda::fill_uniform(dev.q, std::size_t(p.b) * p.h * p.d, 21);
    attn::cuda::fill_uniform(dev.k, nk, 22);
    attn::cuda::fill_uniform(dev.v, nk, 23);
    attn::cuda::CublasAttention cublas(p.b, p.h, p.g, 1, p.t, p.d, false);
    const double ms = attn::cuda::median_ms([&] { dev.run(p, &cublas); }, flush);
    const double gbs = 2.0 * double(nk) * sizeof(float) / ms / 1e6;
    char name[80];
    std::snprintf(name, sizeof name, "cuBLAS %s B=%d T=%d H=%d G=%d D=%d", g == p.h ? "MHA-expanded" : "GQA", p.b,
                  p.t, p.h, p.g, p.d);
    std::printf("%-44s %9.3f %9.0f %10.1f%%\n", name, ms, gbs, 100.0 * gbs / copy_gbs);
    row("cublas_f32", p, ms, gbs);
  }
  std::printf("\nGQA (G=8) over the MHA-expanded cache (G=32), best split each: %.2fx faster\n", best_mha / best_gqa);
  if (json_path != nullptr) attn::cuda::write_results(json_path, "bench_decode", prop, copy_gbs, rows);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc > 1 ? argv[1] : nullptr);
  } catch (const std::exception& e) {  // a CUDA or cuBLAS error, with the call that failed
    std::fprintf(stderr, "%s: %s\n", "bench_decode", e.what());
    return 1;
  }
}

#else

int main() {
  std::printf(
      "bench_decode: skipped: this build runs the kernels on the %s, whose timings would measure the "
      "emulator, not a GPU. Configure with -DATTN_CUDA_GPU=ON on a machine with an NVIDIA GPU.\n",
      attn::cuda::kTarget);
  return 0;
}

#endif
