// Lesson 09's benchmark: the fused attention kernels on a GPU.
//
//   cmake --preset solutions -DATTN_CUDA_GPU=ON
//   cmake --build --preset solutions --target bench_flash && build/solutions/benchmarks/09_cuda_flash_attention/bench_flash [results.json]
//
// Versions:
//   1. flash_attention_kernel, float32, one warp per query row, 16 rows x 32 keys per tile (lesson 09)
//   2. flash_attention_fp16_kernel, q, k, v in half, both products on the tensor cores
//      (wmma), 64 rows x 64 keys per tile, softmax and output in float32 (lesson 09, section 14)
// Baselines, in the same run (attn/cublas_attention.hpp):
//   3. cuBLAS f32: the unfused attention of lesson 08 on a library: S = Q K^T as batched
//      GEMMs that read each K/V head once per group, a softmax kernel, O = P V.
//   4. cuBLAS fp16: the same with half inputs and P, float32 S, accumulation and output.
//   The baselines compute the whole T x T square even when causal; their TFLOP/s count
//   the same useful flops as the fused kernels', so the columns compare times.
//
// Each version is validated first against a float64 loop on a small problem (tolerance
// tol_attention of common/attn/check.hpp, grown by 2 per key tile; for half precision the
// reference takes the half-rounded inputs and the bound grows by 2 * 2^-11), then timed with CUDA
// events: 5 warm-up runs, the median of 50, the L2 cache flushed before each run.
// Prints TFLOP/s (4 B H Tq Tk D flops without the mask; only the visible pairs with it).
// On the CPU emulator it prints that it is skipped and exits 0: timings there would
// measure the emulator.
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
#include "attn/cuda_fp16.hpp"
#include "attn/gpu_bench.hpp"
#include "flash_kernels.hpp"

namespace {

struct Problem {
  int b, h, g, t, d;
  bool causal;
};

enum class Version { f32, fp16, cublas_f32, cublas_fp16 };

bool is_half(Version v) { return v == Version::fp16 || v == Version::cublas_fp16; }
bool is_baseline(Version v) { return v == Version::cublas_f32 || v == Version::cublas_fp16; }

/// Every element rounded to half and back: the inputs the half-precision kernel sees.
std::vector<float> rounded_to_half(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = __half2float(__float2half(x[i]));
  return r;
}

std::vector<__half> to_half(const std::vector<float>& x) {
  std::vector<__half> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = __float2half(x[i]);
  return r;
}

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
  __half *qh, *kh, *vh;
  explicit Device(const Problem& p) {
    const std::size_t nq = std::size_t(p.b) * p.h * p.t * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
    ATTN_CUDA_CHECK(cudaMalloc(&q, nq * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&out, nq * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&k, nk * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&v, nk * sizeof(float)));
    ATTN_CUDA_CHECK(cudaMalloc(&qh, nq * sizeof(__half)));
    ATTN_CUDA_CHECK(cudaMalloc(&kh, nk * sizeof(__half)));
    ATTN_CUDA_CHECK(cudaMalloc(&vh, nk * sizeof(__half)));
  }
  ~Device() {
    for (void* p : {static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(v), static_cast<void*>(out),
                    static_cast<void*>(qh), static_cast<void*>(kh), static_cast<void*>(vh)})
      cudaFree(p);
  }
  void upload(const Problem& p, const std::vector<float>& hq, const std::vector<float>& hk,
              const std::vector<float>& hv) const {
    const std::size_t nq = std::size_t(p.b) * p.h * p.t * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
    ATTN_CUDA_CHECK(cudaMemcpy(q, hq.data(), nq * sizeof(float), cudaMemcpyHostToDevice));
    ATTN_CUDA_CHECK(cudaMemcpy(k, hk.data(), nk * sizeof(float), cudaMemcpyHostToDevice));
    ATTN_CUDA_CHECK(cudaMemcpy(v, hv.data(), nk * sizeof(float), cudaMemcpyHostToDevice));
    ATTN_CUDA_CHECK(cudaMemcpy(qh, to_half(hq).data(), nq * sizeof(__half), cudaMemcpyHostToDevice));
    ATTN_CUDA_CHECK(cudaMemcpy(kh, to_half(hk).data(), nk * sizeof(__half), cudaMemcpyHostToDevice));
    ATTN_CUDA_CHECK(cudaMemcpy(vh, to_half(hv).data(), nk * sizeof(__half), cudaMemcpyHostToDevice));
  }
  /// Runs one version; the cuBLAS ones need `baseline`, made for this problem and precision.
  void run(const Problem& p, Version version, attn::cuda::CublasAttention* baseline = nullptr) const {
    const float scale = 1.0f / std::sqrt(float(p.d));
    switch (version) {
      case Version::f32:
        attn::gpu::launch_flash_attention(q, k, v, out, p.b, p.h, p.g, p.t, p.t, p.d, scale, p.causal, 0);
        break;
      case Version::fp16:
        attn::gpu::launch_flash_attention_fp16(qh, kh, vh, out, p.b, p.h, p.g, p.t, p.t, p.d, scale, p.causal, 0);
        break;
      case Version::cublas_f32: baseline->run(q, k, v, out, p.causal); break;
      case Version::cublas_fp16: baseline->run(qh, kh, vh, out, p.causal); break;
    }
  }
};

bool validate(const Problem& p, Version version) {
  const std::size_t nq = std::size_t(p.b) * p.h * p.t * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
  const auto q = random_vector(nq, 1), k = random_vector(nk, 2), v = random_vector(nk, 3);
  const Device dev(p);
  dev.upload(p, q, k, v);
  ATTN_CUDA_CHECK(cudaMemset(dev.out, 0xff, nq * sizeof(float)));  // NaN: an output never written fails
  const bool baseline = is_baseline(version);
  std::optional<attn::cuda::CublasAttention> cublas;
  if (baseline) cublas.emplace(p.b, p.h, p.g, p.t, p.t, p.d, is_half(version));
  dev.run(p, version, baseline ? &*cublas : nullptr);
  std::vector<float> got(nq);
  ATTN_CUDA_CHECK(cudaMemcpy(got.data(), dev.out, nq * sizeof(float), cudaMemcpyDeviceToHost));
  const bool half = is_half(version);
  const auto ref = half ? reference(rounded_to_half(q), rounded_to_half(k), rounded_to_half(v), p)
                        : reference(q, k, v, p);
  const int keys = half ? attn::gpu::kFlashTcKeys : attn::gpu::kFlashKeys;
  const std::size_t tiles = (p.t + keys - 1) / keys;
  const double atol = attn::tol_attention(p.d, p.t + 2 * tiles, 1.0, 1.0, 1.0).atol + (half ? 2.0 * 0x1p-11 : 0.0);
  return attn::cuda::all_within(got, ref, atol);
}

const char* version_name(Version version) {
  switch (version) {
    case Version::f32: return "flash f32";
    case Version::fp16: return "flash fp16 wmma";
    case Version::cublas_f32: return "cuBLAS f32 (unfused)";
    case Version::cublas_fp16: return "cuBLAS fp16 (unfused)";
  }
  return "?";
}

constexpr Version kVersions[] = {Version::f32, Version::fp16, Version::cublas_f32, Version::cublas_fp16};

}  // namespace

int run(const char* json_path) {
  cudaDeviceProp prop{};
  ATTN_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  const attn::cuda::L2Flush flush(prop);

  // Copy bandwidth: a large device-to-device copy reads and writes every byte.
  const double copy_gbs = attn::cuda::copy_bandwidth_gbs(flush);
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", copy_gbs);

  // Validate every configuration that is timed, on a small problem of the same kind.
  for (const Version version : kVersions)
    for (const int d : {64, 128})
      for (const bool causal : {false, true}) {
        const Problem small{1, 4, 2, 301, d, causal};
        if (!validate(small, version)) {
          std::printf("validation FAILED for %s D=%d causal=%d\n", version_name(version), d, int(causal));
          return 1;
        }
      }
  std::printf("validation: ok (float64 reference, every version, D = 64 and 128, causal and not)\n\n");

  std::vector<std::string> rows;  // for the results file
  std::printf("%-48s %10s %10s\n", "kernel / problem", "ms", "TFLOP/s");
  for (const int d : {64, 128})
    for (const bool causal : {false, true}) {
      const Problem p{4, 32, 8, 4096, d, causal};
      const Device dev(p);
      const std::size_t nq = std::size_t(p.b) * p.h * p.t * p.d, nk = std::size_t(p.b) * p.g * p.t * p.d;
      attn::cuda::fill_uniform(dev.q, nq, 11);  // random data: zeros can run faster than real inputs
      attn::cuda::fill_uniform(dev.k, nk, 12);
      attn::cuda::fill_uniform(dev.v, nk, 13);
      attn::cuda::fill_uniform(dev.qh, nq, 11);
      attn::cuda::fill_uniform(dev.kh, nk, 12);
      attn::cuda::fill_uniform(dev.vh, nk, 13);
      const double pairs = causal ? double(p.t) * (p.t + 1) / 2 : double(p.t) * p.t;
      const double flops = 4.0 * p.b * p.h * pairs * p.d;
      for (const Version version : kVersions) {
        const bool baseline = is_baseline(version);
        // The baselines' (B, H, T, T) float scores: 8 GiB at B = 4, H = 32, T = 4096.
        std::optional<attn::cuda::CublasAttention> cublas;
        if (baseline) cublas.emplace(p.b, p.h, p.g, p.t, p.t, p.d, is_half(version));
        const double ms = attn::cuda::median_ms([&] { dev.run(p, version, baseline ? &*cublas : nullptr); }, flush);
        char name[96];
        std::snprintf(name, sizeof name, "%s B=%d H=%d G=%d T=%d D=%d%s", version_name(version), p.b, p.h, p.g,
                      p.t, p.d, causal ? " causal" : "");
        std::printf("%-48s %10.3f %10.2f\n", name, ms, flops / ms / 1e9);
        rows.push_back(attn::cuda::formatted(
            "{\"kernel\": \"%s\", \"b\": %d, \"h\": %d, \"g\": %d, \"t\": %d, \"d\": %d, \"causal\": %s, "
            "\"ms\": %.4f, \"tflops\": %.3f}",
            version_name(version), p.b, p.h, p.g, p.t, p.d, causal ? "true" : "false", ms, flops / ms / 1e9));
      }
    }
  if (json_path != nullptr) attn::cuda::write_results(json_path, "bench_flash", prop, copy_gbs, rows);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc > 1 ? argv[1] : nullptr);
  } catch (const std::exception& e) {  // a CUDA or cuBLAS error, with the call that failed
    std::fprintf(stderr, "%s: %s\n", "bench_flash", e.what());
    return 1;
  }
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
