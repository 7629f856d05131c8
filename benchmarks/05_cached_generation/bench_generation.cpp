// Lesson 05 benchmark: cached against uncached greedy generation, per-token decode time,
// KV bytes per token, and the memory bandwidth that decode attention reaches.
//
//   benchmarks/05_cached_generation/run.sh      builds this, runs it, draws the plots and
//                                               writes the README's numbers
//   bench_generation OUT.json [--quick] [--bandwidth-only]
//                                               writes the measurements as JSON; --quick
//                                               for a smoke test of a few seconds
//
// Single-threaded (the lessons' code uses one thread). Timings are medians of repeated
// runs after an untimed warm-up; the repeat counts are written into the JSON.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <time.h>
#include <immintrin.h>
#include <unistd.h>
#include <xtensor/xview.hpp>

// The lesson libraries are compiled with the tests' precompiled header, which includes
// doctest; its implementation (no main, no test) is linked here.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "attn/random.hpp"
#include "attn/timer.hpp"
#include "decoder.hpp"
#include "gqa.hpp"
#include "kv_cache.hpp"

using namespace attn;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr double kGiB = 1073741824.0;

// ---------------------------------------------------------------------------
// The machine

struct CacheSize {
  std::size_t bytes = 0;
  std::string source;
};

// Last-level cache of the CPU this runs on: sysfs (Linux), else sysconf, else 32 MiB.
CacheSize last_level_cache() {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    std::ifstream level_file(dir + "/level"), size_file(dir + "/size");
    int level = 0;
    std::string size;
    if (!(level_file >> level) || !(size_file >> size) || level != 3) continue;
    std::size_t value = std::strtoull(size.c_str(), nullptr, 10);
    if (size.back() == 'K') value *= 1024;
    if (size.back() == 'M') value *= kMiB;
    if (value > 0) return {value, dir + "/size"};
  }
#ifdef _SC_LEVEL3_CACHE_SIZE
  const long conf = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (conf > 0) return {static_cast<std::size_t>(conf), "sysconf(_SC_LEVEL3_CACHE_SIZE)"};
#endif
  return {32 * kMiB, "default (no sysfs entry, no sysconf value)"};
}

std::string cpu_model() {
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  while (std::getline(info, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

double load_average() {
  std::ifstream f("/proc/loadavg");
  double one = -1.0;
  f >> one;
  return one;
}

// Memory bandwidth: copies of a buffer of `bytes`, counting bytes read plus bytes written.
double copy_bandwidth(std::size_t bytes, std::size_t repeats) {
  std::vector<char> src(bytes), dst(bytes);
  for (std::size_t i = 0; i < bytes; i += 4096) src[i] = static_cast<char>(i);  // touch every page
  std::memset(dst.data(), 1, bytes);
  const double s = median_seconds([&] { std::memcpy(dst.data(), src.data(), bytes); }, repeats);
  if (dst[bytes / 2] != src[bytes / 2]) std::abort();
  return 2.0 * static_cast<double>(bytes) / s;
}

// ---------------------------------------------------------------------------
// Generation

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Median wall time and median CPU time of this thread over `repeats` runs after `warmup`
// untimed ones. On a shared machine, CPU time well below wall time means the run waited
// for a processor; CPU time still includes waiting for memory.
template <class Fn>
std::pair<double, double> median_wall_and_cpu(Fn&& fn, std::size_t repeats,
                                              std::size_t warmup = 1) {
  for (std::size_t i = 0; i < warmup; ++i) fn();
  std::vector<double> wall, cpu;
  for (std::size_t i = 0; i < repeats; ++i) {
    const double c0 = thread_cpu_seconds();
    Timer t;
    fn();
    wall.push_back(t.seconds());
    cpu.push_back(thread_cpu_seconds() - c0);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[repeats / 2], cpu[repeats / 2]};
}


struct GenRow {
  std::size_t kv_heads = 0, new_tokens = 0, uncached_runs = 0, cached_runs = 0;
  double uncached_s = 0, cached_s = 0, uncached_cpu_s = 0, cached_cpu_s = 0;
  bool same_tokens = false;
};

std::size_t uncached_repeats(std::size_t n, bool quick) {
  if (quick) return 1;
  return n <= 16 ? 5 : n <= 64 ? 3 : 1;
}

// The decode step's thread CPU time at each context length: prefill of the prompt, then
// n steps.
std::vector<double> decode_step_seconds(const Decoder& model, const Tokens& prompt,
                                        std::size_t n, std::size_t repeats) {
  std::vector<std::vector<double>> samples(n);
  for (std::size_t r = 0; r < repeats; ++r) {
    MultiLayerKVCache cache = model.make_cache(prompt.shape(0));
    TokenColumn next = greedy_next(model.prefill(prompt, cache));
    for (std::size_t i = 0; i < n; ++i) {
      const double c0 = thread_cpu_seconds();
      const Tensor2 logits = model.decode_step(next, cache);
      samples[i].push_back(thread_cpu_seconds() - c0);
      next = greedy_next(logits);
    }
  }
  std::vector<double> median(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::sort(samples[i].begin(), samples[i].end());
    median[i] = samples[i][samples[i].size() / 2];
  }
  return median;
}

// Largest |cached - uncached| over the logits of prefill and of every decode step, relative
// to max |uncached|, for the benchmark model itself.
double max_logit_difference(const Decoder& model, const Tokens& prompt, std::size_t n) {
  MultiLayerKVCache cache = model.make_cache(prompt.shape(0));
  double worst = 0.0;
  auto compare = [&](const auto& got, const auto& ref) {
    double m = 0.0, d = 0.0;
    auto g = got.cbegin();
    for (auto r = ref.cbegin(); r != ref.cend(); ++r, ++g) {
      m = std::max(m, std::abs(double(*r)));
      d = std::max(d, std::abs(double(*g) - double(*r)));
    }
    worst = std::max(worst, d / m);
  };
  compare(model.prefill(prompt, cache), model.forward(prompt));
  Tokens seq = prompt;
  const Tokens generated = model.generate_uncached(prompt, n);
  for (std::size_t i = 0; i < n; ++i) {
    const TokenColumn token = xt::view(generated, xt::all(), i);
    Tokens longer({seq.shape(0), seq.shape(1) + 1});
    xt::view(longer, xt::all(), xt::range(0, seq.shape(1))) = seq;
    xt::view(longer, xt::all(), seq.shape(1)) = token;
    seq = longer;
    const Tensor3 full = model.forward(seq);
    const Tensor2 ref = xt::view(full, xt::all(), seq.shape(1) - 1, xt::all());
    compare(model.decode_step(token, cache), ref);
  }
  return worst;
}

// ---------------------------------------------------------------------------
// Decode attention against memory bandwidth

// Decode attention (one query per head) that reads each key and value row once for the
// whole query group, in two passes over the cache:
//   1. per KV head g, scores s_rj = q_r . k_j / sqrt(D) of the group's H/G queries and
//      their running maxima (reads K once);
//   2. weights exp(s_rj - m_r), their sums and sum_j w_rj v_j (reads V once; the exps
//      overlap with the loads).
// This is what lesson 10's GPU kernel does per block. The multiply-adds go through
// madd(); the AVX2 + FMA build of it is chosen at run time where the CPU has them.
template <bool kFma>
[[gnu::always_inline]] inline float madd(float a, float b, float c) {
  if constexpr (kFma) return std::fma(a, b, c);
  else return c + a * b;
}

template <bool kFma>
[[gnu::always_inline]] inline Tensor4 group_streaming_kernel(const Tensor4& q, const KVCache& cache) {
  const std::size_t nb = q.shape(0), nh = q.shape(1), d = q.shape(3);
  const std::size_t ng = cache.kv_heads(), t = cache.length(), group = nh / ng;
  const KVView keys = cache.keys(), values = cache.values();
  const auto row_stride = static_cast<std::size_t>(keys.strides()[2]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  constexpr std::size_t kLanes = 16;  // D is a multiple of it here
  Tensor4 out = xt::zeros<float>({nb, nh, std::size_t{1}, d});
  std::vector<float> s(group * t), m(group), sum(group);  // scores (group, T)
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g) {
      const float* k_bg = &keys(b, g, 0, 0);
      const float* v_bg = &values(b, g, 0, 0);
      const float* q_g = &q(b, g * group, 0, 0);  // the group's H/G queries, D apart
      std::fill(m.begin(), m.end(), -INFINITY);
      for (std::size_t j = 0; j < t; ++j) {
        const float* k_row = k_bg + j * row_stride;  // read once for every query of the group
        for (std::size_t r = 0; r < group; ++r) {
          float acc[kLanes] = {};  // sixteen independent partial sums (vector registers)
          const float* q_row = q_g + r * d;
          for (std::size_t c = 0; c < d; c += kLanes)
            for (std::size_t l = 0; l < kLanes; ++l)
              acc[l] = madd<kFma>(q_row[c + l], k_row[c + l], acc[l]);
          for (std::size_t l = 0; l < 8; ++l) acc[l] += acc[l + 8];  // a tree, not a chain
          for (std::size_t l = 0; l < 4; ++l) acc[l] += acc[l + 4];
          for (std::size_t l = 0; l < 2; ++l) acc[l] += acc[l + 2];
          const float score = (acc[0] + acc[1]) * scale;
          s[r * t + j] = score;
          m[r] = std::max(m[r], score);
        }
      }
      std::fill(sum.begin(), sum.end(), 0.0f);
      float* o_g = &out(b, g * group, 0, 0);
      for (std::size_t j = 0; j < t; ++j) {
        const float* v_row = v_bg + j * row_stride;  // read once for every query of the group
        for (std::size_t r = 0; r < group; ++r) {
          const float w = std::exp(s[r * t + j] - m[r]);
          sum[r] += w;
          float* o_row = o_g + r * d;  // stays in L1: H/G rows of D floats
          for (std::size_t c = 0; c < d; c += kLanes) {
            float o[kLanes];  // loaded, updated and stored as whole vectors
            for (std::size_t l = 0; l < kLanes; ++l) o[l] = o_row[c + l];
            for (std::size_t l = 0; l < kLanes; ++l) o[l] = madd<kFma>(w, v_row[c + l], o[l]);
            for (std::size_t l = 0; l < kLanes; ++l) o_row[c + l] = o[l];
          }
        }
      }
      for (std::size_t r = 0; r < group; ++r)
        for (std::size_t c = 0; c < d; ++c) o_g[r * d + c] /= sum[r];
    }
  return out;
}

Tensor4 group_streaming_baseline(const Tensor4& q, const KVCache& cache) {
  return group_streaming_kernel<false>(q, cache);
}

// exp(x) of eight floats with x <= 0: x = n ln 2 + r with |r| <= ln(2)/2, so
// exp(x) = 2^n exp(r), exp(r) by its Taylor polynomial of degree 6 (relative error below
// r^7/7! < 2e-7), 2^n written into the exponent bits. x is clamped at -87 (exp(-87) is
// still a normal float), far below where a softmax weight matters.
[[gnu::target("avx2,fma")]] inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693147182f), x);
  __m256 p = _mm256_set1_ps(1.0f / 720.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

// The same two passes with AVX2 and FMA intrinsics: eight floats per instruction, and
// the exps of a block of keys computed, eight at a time, before the block's values are summed.
[[gnu::target("avx2,fma")]] Tensor4 group_streaming_avx2(const Tensor4& q, const KVCache& cache) {
  const std::size_t nb = q.shape(0), nh = q.shape(1), d = q.shape(3);
  const std::size_t ng = cache.kv_heads(), t = cache.length(), group = nh / ng;
  const KVView keys = cache.keys(), values = cache.values();
  const auto row_stride = static_cast<std::size_t>(keys.strides()[2]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  constexpr std::size_t kBlock = 64;  // keys per block of exps
  Tensor4 out = xt::zeros<float>({nb, nh, std::size_t{1}, d});
  std::vector<float> s(group * t), m(group), sum(group), w(group * kBlock);
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g) {
      const float* k_bg = &keys(b, g, 0, 0);
      const float* v_bg = &values(b, g, 0, 0);
      const float* q_g = &q(b, g * group, 0, 0);
      std::fill(m.begin(), m.end(), -INFINITY);
      for (std::size_t j = 0; j < t; ++j) {
        const float* k_row = k_bg + j * row_stride;
        for (std::size_t r = 0; r < group; ++r) {
          const float* q_row = q_g + r * d;
          __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
          for (std::size_t c = 0; c < d; c += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q_row + c), _mm256_loadu_ps(k_row + c), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q_row + c + 8), _mm256_loadu_ps(k_row + c + 8), acc1);
          }
          const __m256 acc = _mm256_add_ps(acc0, acc1);
          __m128 x = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
          x = _mm_add_ps(x, _mm_movehl_ps(x, x));
          x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
          const float score = _mm_cvtss_f32(x) * scale;
          s[r * t + j] = score;
          m[r] = std::max(m[r], score);
        }
      }
      std::fill(sum.begin(), sum.end(), 0.0f);
      float* o_g = &out(b, g * group, 0, 0);
      for (std::size_t j0 = 0; j0 < t; j0 += kBlock) {
        const std::size_t n = std::min(kBlock, t - j0);
        for (std::size_t r = 0; r < group; ++r) {
          const float* sr = s.data() + r * t + j0;
          float* wr = w.data() + r * kBlock;
          std::size_t jj = 0;
          __m256 total = _mm256_setzero_ps();
          for (; jj + 8 <= n; jj += 8) {
            const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(sr + jj), _mm256_set1_ps(m[r])));
            _mm256_storeu_ps(wr + jj, e);
            total = _mm256_add_ps(total, e);
          }
          float lanes[8];
          _mm256_storeu_ps(lanes, total);
          for (float x : lanes) sum[r] += x;
          for (; jj < n; ++jj) sum[r] += wr[jj] = std::exp(sr[jj] - m[r]);
        }
        for (std::size_t jj = 0; jj < n; ++jj) {
          const float* v_row = v_bg + (j0 + jj) * row_stride;
          for (std::size_t r = 0; r < group; ++r) {
            const __m256 wr = _mm256_set1_ps(w[r * kBlock + jj]);
            float* o_row = o_g + r * d;
            for (std::size_t c = 0; c < d; c += 8)
              _mm256_storeu_ps(o_row + c, _mm256_fmadd_ps(wr, _mm256_loadu_ps(v_row + c),
                                                          _mm256_loadu_ps(o_row + c)));
          }
        }
      }
      for (std::size_t r = 0; r < group; ++r)
        for (std::size_t c = 0; c < d; ++c) o_g[r * d + c] /= sum[r];
    }
  return out;
}

bool have_avx2_fma() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

Tensor4 group_streaming_decode(const Tensor4& q, const KVCache& cache) {
  static const bool avx2 = have_avx2_fma();
  return avx2 ? group_streaming_avx2(q, cache) : group_streaming_baseline(q, cache);
}

struct BandwidthRow {
  std::string path;
  std::size_t kv_heads = 0;
  double kv_bytes = 0, seconds = 0, cpu_seconds = 0;
};

// A cache of `tokens` positions filled with random keys and values, G KV heads.
KVCache filled_cache(std::size_t nb, std::size_t ng, std::size_t tokens, std::size_t d,
                     std::uint64_t seed) {
  KVCache cache(nb, ng, tokens, d);
  const std::size_t chunk = 4096;
  for (std::size_t t = 0; t < tokens; t += chunk) {
    const std::size_t n = std::min(chunk, tokens - t);
    cache.append(random_uniform<4>({nb, ng, n, d}, seed + 2 * t),
                 random_uniform<4>({nb, ng, n, d}, seed + 2 * t + 1));
  }
  return cache;
}

// The same cache with every KV head repeated H/G times (repeat_interleave order): MHA.
KVCache expanded_cache(const KVCache& gqa, std::size_t nh) {
  const std::size_t nb = gqa.batch(), ng = gqa.kv_heads(), d = gqa.head_dim();
  const std::size_t tokens = gqa.length(), chunk = 4096;
  KVCache mha(nb, nh, tokens, d);
  for (std::size_t t = 0; t < tokens; t += chunk) {
    const std::size_t n = std::min(chunk, tokens - t);
    const auto part = [&](const KVView& x) {
      return repeat_kv(Tensor4(xt::view(x, xt::all(), xt::all(), xt::range(t, t + n))), nh / ng);
    };
    mha.append(part(gqa.keys()), part(gqa.values()));
  }
  return mha;
}

// ---------------------------------------------------------------------------
// JSON output, by hand: numbers and strings only

std::string num(double x) {
  std::ostringstream out;
  out.precision(6);
  out << x;
  return out.str();
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT.json [--quick] [--bandwidth-only]\n", argv[0]);
    return 2;
  }
  const std::string out_path = argv[1];
  bool quick = false, bandwidth_only = false;
  for (int i = 2; i < argc; ++i) {
    quick = quick || std::string(argv[i]) == "--quick";
    bandwidth_only = bandwidth_only || std::string(argv[i]) == "--bandwidth-only";
  }
  const double load_start = load_average();
  Timer total;

  // The toy model: d_model 512, 8 query heads of 64, 2 layers, a 64-token prompt.
  DecoderConfig config;
  config.vocab = 256;
  config.d_model = 512;
  config.n_heads = 8;
  config.n_layers = 2;
  config.d_ff = 512;
  config.seed = 2024;
  const std::size_t prompt_len = 64;
  const std::vector<std::size_t> new_tokens =
      quick ? std::vector<std::size_t>{4, 8} : std::vector<std::size_t>{16, 64, 128, 256};
  const std::size_t n_max = new_tokens.back();
  config.max_seq_len = prompt_len + n_max;
  const std::vector<std::size_t> kv_heads{8, 2, 1};
  const std::size_t cached_runs = quick ? 1 : 11, decode_series_runs = quick ? 1 : 5;

  Tokens prompt({1, prompt_len});
  {
    Rng rng(7);
    for (auto& id : prompt) id = static_cast<std::size_t>(rng.next() % config.vocab);
  }

  std::vector<GenRow> rows;
  std::vector<std::vector<double>> decode_series;
  std::vector<double> kv_bytes_per_token;
  double worst_logit_diff = 0.0;
  for (std::size_t ng : kv_heads) {
    if (bandwidth_only) break;
    config.n_kv_heads = ng;
    const Decoder model(config);
    MultiLayerKVCache cache = model.make_cache(1);
    kv_bytes_per_token.push_back(2.0 * double(config.n_layers) * double(ng) *
                                 double(model.head_dim()) * sizeof(float));
    // Warm-up: a short generation on each path (pages in the weights, fills the caches).
    (void)model.generate_uncached(prompt, 2);
    (void)model.generate_cached(prompt, 2, cache);
    for (std::size_t n : new_tokens) {
      GenRow row;
      row.kv_heads = ng;
      row.new_tokens = n;
      row.uncached_runs = uncached_repeats(n, quick);
      row.cached_runs = cached_runs;
      Tokens uncached_tokens, cached_tokens;
      std::tie(row.uncached_s, row.uncached_cpu_s) = median_wall_and_cpu(
          [&] { uncached_tokens = model.generate_uncached(prompt, n); }, row.uncached_runs, 0);
      std::tie(row.cached_s, row.cached_cpu_s) = median_wall_and_cpu(
          [&] {
            cache.reset();
            cached_tokens = model.generate_cached(prompt, n, cache);
          },
          row.cached_runs, 1);
      row.same_tokens = uncached_tokens == cached_tokens;
      std::fprintf(stderr,
                   "G=%zu n=%3zu  uncached %8.3f s (cpu %8.3f)  cached %7.4f s (cpu %7.4f)  "
                   "speedup %6.1f (cpu %6.1f)  %s\n",
                   ng, n, row.uncached_s, row.uncached_cpu_s, row.cached_s, row.cached_cpu_s,
                   row.uncached_s / row.cached_s, row.uncached_cpu_s / row.cached_cpu_s,
                   row.same_tokens ? "same tokens" : "TOKENS DIFFER");
      rows.push_back(row);
    }
    decode_series.push_back(decode_step_seconds(model, prompt, n_max, decode_series_runs));
    worst_logit_diff = std::max(worst_logit_diff, max_logit_difference(model, prompt, quick ? 4 : 32));
  }

  // Decode attention at a context whose K/V is at least 4x the last-level cache.
  const CacheSize llc = last_level_cache();
  const std::size_t nb = 1, nh = 8, ng = 2, d = 128;
  const std::size_t bytes_per_token = 2 * nb * ng * d * sizeof(float);
  const std::size_t min_bytes = (quick ? 1 : 4) * llc.bytes;
  std::size_t context = 4096;
  while (context * bytes_per_token < min_bytes) context *= 2;
  const std::size_t copy_bytes = quick ? 64 * kMiB : std::size_t{1} << 30;
  const double copy_bw = copy_bandwidth(copy_bytes, quick ? 3 : 5);
  std::fprintf(stderr, "copy bandwidth %.2f GiB/s (read + written), L3 %zu MiB (%s), context %zu\n",
               copy_bw / kGiB, llc.bytes / kMiB, llc.source.c_str(), context);
  std::vector<BandwidthRow> bw_rows;
  {
    const KVCache gqa = filled_cache(nb, ng, context, d, 99);
    const KVCache mha = expanded_cache(gqa, nh);
    const Tensor4 q = random_uniform<4>({nb, nh, std::size_t{1}, d}, 98);
    // Both paths give the attention of lesson 04 on both caches (checked, not timed).
    const Tensor4 reference = gqa_attention_cached(q, gqa);
    for (const KVCache* c : {&gqa, &mha}) {
      const Tensor4 got = group_streaming_decode(q, *c);
      double diff = 0.0;
      for (std::size_t i = 0; i < got.size(); ++i)
        diff = std::max(diff, std::abs(double(got.data()[i]) - double(reference.data()[i])));
      // The outputs are convex combinations of values in [-1, 1]: an absolute bound.
      if (!(diff <= 1e-5)) {
        std::fprintf(stderr, "group_streaming_decode differs from gqa_attention_cached: %g\n", diff);
        return 1;
      }
    }
    const std::size_t reps = quick ? 3 : 9;
    for (const KVCache* c : {&gqa, &mha}) {
      const double bytes = double(c->bytes_used());
      Tensor4 sink;
      const auto lesson = median_wall_and_cpu([&] { sink = gqa_attention_cached(q, *c); }, reps);
      bw_rows.push_back({"gqa_attention_cached", c->kv_heads(), bytes, lesson.first, lesson.second});
      const auto group = median_wall_and_cpu([&] { sink = group_streaming_decode(q, *c); }, reps);
      bw_rows.push_back({"group_streaming", c->kv_heads(), bytes, group.first, group.second});
    }
  }
  for (const auto& r : bw_rows)
    std::fprintf(stderr, "%-22s G=%zu  %7.1f MiB  %8.2f ms (cpu %8.2f ms)  %6.2f GiB/s  %5.1f%% of copy\n",
                 r.path.c_str(), r.kv_heads, r.kv_bytes / double(kMiB), r.seconds * 1e3,
                 r.cpu_seconds * 1e3,
                 r.kv_bytes / r.seconds / kGiB, 100.0 * r.kv_bytes / r.seconds / copy_bw);

  // ---- JSON
  std::ostringstream j;
  j << "{\n  \"machine\": {\"cpu\": " << quoted(cpu_model())
    << ", \"logical_cpus\": " << std::thread::hardware_concurrency()
    << ", \"threads_used\": 1, \"l3_bytes\": " << llc.bytes
    << ", \"l3_source\": " << quoted(llc.source)
    << ", \"load_average_at_start\": " << num(load_start)
    << ", \"load_average_at_end\": " << num(load_average()) << ", \"compiler\": "
    << quoted(std::string("GCC ") + __VERSION__) << "},\n";
  j << "  \"quick\": " << (quick ? "true" : "false")
    << ",\n  \"total_seconds\": " << num(total.seconds()) << ",\n";
  j << "  \"model\": {\"vocab\": " << config.vocab << ", \"d_model\": " << config.d_model
    << ", \"n_heads\": " << config.n_heads << ", \"head_dim\": " << config.d_model / config.n_heads
    << ", \"n_layers\": " << config.n_layers << ", \"d_ff\": " << config.d_ff
    << ", \"mlp\": \"SwiGLU\", \"prompt_tokens\": " << prompt_len << ", \"batch\": 1"
    << ", \"seed\": " << config.seed << "},\n";
  j << "  \"max_logit_difference_relative\": " << num(worst_logit_diff) << ",\n";
  j << "  \"generation\": [\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const GenRow& r = rows[i];
    j << "    {\"kv_heads\": " << r.kv_heads << ", \"new_tokens\": " << r.new_tokens
      << ", \"uncached_s\": " << num(r.uncached_s) << ", \"cached_s\": " << num(r.cached_s)
      << ", \"speedup\": " << num(r.uncached_s / r.cached_s)
      << ", \"uncached_cpu_s\": " << num(r.uncached_cpu_s)
      << ", \"cached_cpu_s\": " << num(r.cached_cpu_s)
      << ", \"speedup_cpu\": " << num(r.uncached_cpu_s / r.cached_cpu_s)
      << ", \"uncached_runs\": " << r.uncached_runs << ", \"cached_runs\": " << r.cached_runs
      << ", \"same_tokens\": " << (r.same_tokens ? "true" : "false") << "}"
      << (i + 1 < rows.size() ? ",\n" : "\n");
  }
  j << "  ],\n  \"decode_step\": {\"runs\": " << decode_series_runs
    << ", \"clock\": \"thread CPU time\", \"series\": [\n";
  for (std::size_t g = 0; g < decode_series.size(); ++g) {
    j << "    {\"kv_heads\": " << kv_heads[g] << ", \"first_context\": " << prompt_len + 1
      << ", \"seconds\": [";
    for (std::size_t i = 0; i < decode_series[g].size(); ++i)
      j << (i ? ", " : "") << num(decode_series[g][i]);
    j << "]}" << (g + 1 < decode_series.size() ? ",\n" : "\n");
  }
  j << "  ]},\n  \"kv_bytes_per_token\": [\n";
  for (std::size_t g = 0; g < kv_bytes_per_token.size(); ++g)
    j << "    {\"kv_heads\": " << kv_heads[g] << ", \"bytes\": " << num(kv_bytes_per_token[g])
      << "}" << (g + 1 < kv_bytes_per_token.size() ? ",\n" : "\n");
  j << "  ],\n  \"bandwidth\": {\"copy_bytes\": " << copy_bytes
    << ", \"copy_bytes_per_s\": " << num(copy_bw) << ", \"context\": " << context
    << ", \"batch\": " << nb << ", \"n_heads\": " << nh << ", \"head_dim\": " << d
    << ", \"gqa_kv_heads\": " << ng << ", \"streaming_build\": "
    << quoted(have_avx2_fma() ? "AVX2 + FMA" : "baseline x86-64") << ", \"rows\": [\n";
  for (std::size_t i = 0; i < bw_rows.size(); ++i) {
    const BandwidthRow& r = bw_rows[i];
    j << "    {\"path\": " << quoted(r.path) << ", \"kv_heads\": " << r.kv_heads
      << ", \"kv_bytes\": " << num(r.kv_bytes) << ", \"seconds\": " << num(r.seconds)
      << ", \"thread_cpu_seconds\": " << num(r.cpu_seconds)
      << ", \"bytes_per_s\": " << num(r.kv_bytes / r.seconds)
      << ", \"percent_of_copy\": " << num(100.0 * r.kv_bytes / r.seconds / copy_bw) << "}"
      << (i + 1 < bw_rows.size() ? ",\n" : "\n");
  }
  j << "  ]}\n}\n";
  std::ofstream(out_path) << j.str();
  std::fprintf(stderr, "wrote %s in %.0f s\n", out_path.c_str(), total.seconds());
  return 0;
}
