// Lesson 07 benchmark: SmolLM2-135M-Instruct on the lesson's code.
//
//   benchmarks/07_real_model/run.sh        builds this, runs it, draws the plots and writes
//                                          the README's numbers
//   bench_model OUT.json [--quick]         writes the measurements as JSON; --quick for a
//                                          smoke test (fewer tokens, two chunks of text)
//
// The experiments:
//   1. cached against uncached greedy generation of 16 / 64 / 128 / 256 new tokens after a
//      64-token prompt (one timed run each: the uncached runs take minutes), and that both
//      produce the same tokens;
//   2. KV-cache bytes per token and at 2048 tokens for the native model (G = 3), the same
//      model expanded to multi-head attention (G = 9) and pooled to multi-query (G = 1);
//   3. perplexity of each of the three on GPL-3 with llama.cpp's protocol (chunks of 512
//      tokens, the second half of each scored);
//   4. decode speed at a few context lengths, and the bytes it must read per token (float32
//      weights and the cache) over this machine's copy bandwidth, measured here.
// OpenBLAS runs the matrix products on all cores (the count is written into the JSON);
// everything else runs on one thread.
#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// The lesson libraries are compiled with the tests' precompiled header, which includes
// doctest; its implementation (no main, no test) is linked here.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <xtensor/xview.hpp>

#include "attn/timer.hpp"
#include "llama_model.hpp"
#include "tokenizer/gguf_tokenizer.hpp"

using namespace attn;

namespace {

std::string cpu_model() {
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  while (std::getline(info, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// Memory bandwidth: copies of 1 GiB, counting the bytes read plus the bytes written, GB/s.
double copy_bandwidth_gbs() {
  const std::size_t bytes = std::size_t{1} << 30;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  const double s = median_seconds([&] { std::memcpy(dst.data(), src.data(), bytes); }, 5, 1);
  return 2.0 * double(bytes) / s / 1e9;
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double one = -1.0;
  in >> one;
  return one;
}

std::string json_list(const std::vector<double>& v) {
  std::ostringstream out;
  out.precision(6);
  out << '[';
  for (std::size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
  return out.str() + ']';
}

struct Perplexity {
  std::size_t chunks = 0, scored = 0;
  double mean_nll = 0.0, ppl = 0.0, ppl_error = 0.0, seconds = 0.0;
};

// llama.cpp's protocol (tools/perplexity): chunks of n_ctx = 512 tokens, each an independent
// sequence, the NLL of the tokens predicted from positions 256 ... 510 of each; PPL =
// exp(mean NLL) and its error PPL * sqrt((mean(nll^2) - mean(nll)^2) / (N - 1)).
Perplexity perplexity(const LlamaModel& model, const std::vector<std::size_t>& text,
                      std::size_t max_chunks) {
  constexpr std::size_t n_ctx = 512;
  Perplexity r;
  r.chunks = std::min(text.size() / n_ctx, max_chunks);
  double sum = 0.0, sum_sq = 0.0;
  Timer timer;
  for (std::size_t c = 0; c < r.chunks; ++c) {
    const std::vector<std::size_t> chunk(text.begin() + long(c * n_ctx), text.begin() + long((c + 1) * n_ctx));
    std::vector<double> nlls;
    try {  // forward, the scored logits checked finite, next_token_nll
      nlls = sequence_nll(model, chunk, n_ctx / 2);
    } catch (const std::range_error& e) {
      throw std::range_error("perplexity: chunk " + std::to_string(c) + " (tokens " +
                             std::to_string(c * n_ctx) + " ...): " + e.what());
    }
    for (const double nll : nlls) {
      sum += nll;
      sum_sq += nll * nll;
      ++r.scored;
    }
    std::fprintf(stderr, "    chunk %zu/%zu: PPL so far %.4f\n", c + 1, r.chunks, std::exp(sum / double(r.scored)));
  }
  r.seconds = timer.seconds();
  const double n = double(r.scored);
  r.mean_nll = sum / n;
  r.ppl = std::exp(r.mean_nll);
  r.ppl_error = r.ppl * std::sqrt((sum_sq / n - r.mean_nll * r.mean_nll) / (n - 1.0));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_model OUT.json [--quick]\n");
    return 2;
  }
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  const double load_at_start = load_average();
  Timer total;
  const auto path = gguf::smollm2_model_path();
  if (!std::filesystem::exists(path)) {
    std::fprintf(stderr, "bench_model: the model is not at %s; run python3 tools/fetch_model.py\n",
                 path.string().c_str());
    return 1;
  }
  const auto file = gguf::File::open(path);
  const auto tok = tokenizer::tokenizer_from_gguf(file);
  Timer load_timer;
  const LlamaModel model(load_llama(file));
  const double load_s = load_timer.seconds();
  const LlamaConfig& c = model.config();
  std::ifstream gpl("/usr/share/common-licenses/GPL-3", std::ios::binary);
  const std::string gpl_text((std::istreambuf_iterator<char>(gpl)), std::istreambuf_iterator<char>());
  std::vector<std::size_t> text;
  for (const auto id : tok.encode(gpl_text)) text.push_back(static_cast<std::size_t>(id));

  std::ostringstream json;
  json.precision(6);
  json << "{\n  \"machine\": {\"cpu\": \"" << cpu_model() << "\", \"cores\": "
       << std::thread::hardware_concurrency() << ", \"blas_threads\": " << openblas_get_num_threads()
       << "},\n  \"model\": {\"file\": \"" << path.filename().string() << "\", \"layers\": " << c.n_layers
       << ", \"d_model\": " << c.d_model << ", \"n_heads\": " << c.n_heads << ", \"n_kv_heads\": "
       << c.n_kv_heads << ", \"head_dim\": " << c.head_dim << ", \"parameters\": "
       << parameter_count(model.weights()) << ", \"load_seconds\": " << load_s << "},\n";

  // 1. Cached against uncached generation.
  const std::vector<std::size_t> prompt(text.begin(), text.begin() + 64);
  const std::vector<std::size_t> lengths = quick ? std::vector<std::size_t>{4, 16}
                                                 : std::vector<std::size_t>{16, 64, 128, 256};
  std::vector<double> cached_s, uncached_s;
  bool same_tokens = true;
  for (const std::size_t n : lengths) {
    ModelCache cache = model.make_cache(1, prompt.size() + n);
    Timer t;
    const auto a = generate(model, prompt, n, cache);
    cached_s.push_back(t.seconds());
    t.reset();
    const auto b = generate_uncached(model, prompt, n);
    uncached_s.push_back(t.seconds());
    same_tokens = same_tokens && a == b;
    std::fprintf(stderr, "  generate %3zu tokens: cached %.2f s, uncached %.2f s (%.1fx), same tokens: %s\n",
                 n, cached_s.back(), uncached_s.back(), uncached_s.back() / cached_s.back(),
                 a == b ? "yes" : "NO");
  }
  json << "  \"generation\": {\"prompt_tokens\": " << prompt.size() << ", \"new_tokens\": "
       << json_list(std::vector<double>(lengths.begin(), lengths.end())) << ", \"cached_seconds\": "
       << json_list(cached_s) << ", \"uncached_seconds\": " << json_list(uncached_s)
       << ", \"same_tokens\": " << (same_tokens ? "true" : "false") << "},\n";

  // 2 and 3. The three attention variants: cache bytes and perplexity.
  const std::size_t max_chunks = quick ? 2 : 1000;
  json << "  \"variants\": [\n";
  struct Variant {
    const char* name;
    std::size_t g;
  };
  const Variant variants[] = {{"GQA (native)", c.n_kv_heads}, {"MHA (expanded)", c.n_heads}, {"MQA (pooled)", 1}};
  double native_ppl = 0.0;
  for (std::size_t i = 0; i < 3; ++i) {
    const Variant& v = variants[i];
    std::fprintf(stderr, "  %s, G = %zu: perplexity on GPL-3\n", v.name, v.g);
    const LlamaModel* m = &model;
    std::unique_ptr<LlamaModel> other;
    if (v.g == c.n_heads) other = std::make_unique<LlamaModel>(expand_kv_heads(model.weights()));
    if (v.g == 1) other = std::make_unique<LlamaModel>(pool_kv_heads(model.weights(), 1));
    if (other) m = other.get();
    ModelCache cache = m->make_cache(1, 1);
    const std::size_t bytes_per_token = 2 * c.n_layers * v.g * c.head_dim * sizeof(float);
    Tokens one = Tokens::from_shape({1, 1});
    one(0, 0) = text[0];
    m->prefill(one, cache);
    const std::size_t measured_per_token = cache.bytes_used();
    const Perplexity p = perplexity(*m, text, max_chunks);
    if (i == 0) native_ppl = p.ppl;
    std::fprintf(stderr, "  %s: Final estimate: PPL = %.4f +/- %.5f (%zu chunks, %zu tokens scored, %.0f s)\n",
                 v.name, p.ppl, p.ppl_error, p.chunks, p.scored, p.seconds);
    json << "    {\"name\": \"" << v.name << "\", \"kv_heads\": " << v.g << ", \"kv_bytes_per_token\": "
         << measured_per_token << ", \"kv_bytes_formula\": " << bytes_per_token
         << ", \"kv_bytes_2048\": " << 2048 * measured_per_token << ", \"ppl\": " << p.ppl
         << ", \"ppl_error\": " << p.ppl_error << ", \"mean_nll\": " << p.mean_nll
         << ", \"chunks\": " << p.chunks << ", \"scored\": " << p.scored
         << ", \"ppl_drift_percent\": " << 100.0 * (p.ppl - native_ppl) / native_ppl
         << ", \"seconds\": " << p.seconds << "}" << (i < 2 ? ",\n" : "\n");
  }
  json << "  ],\n";

  // 4. Decode speed against the memory-bandwidth floor.
  const double bandwidth = copy_bandwidth_gbs();
  std::fprintf(stderr, "  copy bandwidth: %.1f GB/s (read + write)\n", bandwidth);
  const LlamaWeights& w = model.weights();
  // Every decode step reads every weight matrix and norm once, the output projection
  // included (a transposed copy of the tied embedding), and one embedding row.
  std::size_t weight_floats = w.output.size() + w.final_norm.size() + c.d_model;
  for (const LlamaLayer& l : w.layers)
    weight_floats += l.attn_norm.size() + l.wq.size() + l.wk.size() + l.wv.size() + l.wo.size() +
                     l.mlp_norm.size() + l.w_gate.size() + l.w_up.size() + l.w_down.size();
  const double weight_bytes = double(weight_floats) * sizeof(float);
  json << "  \"decode\": {\"copy_bandwidth_gbs\": " << bandwidth << ", \"weight_bytes\": " << weight_bytes
       << ", \"points\": [\n";
  const std::vector<std::size_t> contexts = quick ? std::vector<std::size_t>{64} : std::vector<std::size_t>{64, 512, 2048};
  for (std::size_t i = 0; i < contexts.size(); ++i) {
    const std::size_t ctx = contexts[i], steps = quick ? 4 : 32;
    ModelCache cache = model.make_cache(1, ctx + steps);
    Tokens first = Tokens::from_shape({1, ctx});
    for (std::size_t t = 0; t < ctx; ++t) first(0, t) = text[t % text.size()];
    model.prefill(first, cache);
    std::vector<double> step_s;
    for (std::size_t s = 0; s < steps; ++s) {
      Timer t;
      model.decode_step(TokenColumn({text[(ctx + s) % text.size()]}), cache);
      step_s.push_back(t.seconds());
    }
    std::nth_element(step_s.begin(), step_s.begin() + long(steps / 2), step_s.end());
    const double median = step_s[steps / 2];
    const double kv_bytes = double(cache.bytes_used());
    const double floor_s = (weight_bytes + kv_bytes) / (bandwidth * 1e9);
    std::fprintf(stderr, "  decode at context %zu: %.1f ms per token (%.1f tokens/s), %.0f%% of the bandwidth floor\n",
                 ctx, median * 1e3, 1.0 / median, 100.0 * floor_s / median);
    json << "    {\"context\": " << ctx << ", \"steps\": " << steps << ", \"median_seconds\": " << median
         << ", \"tokens_per_second\": " << 1.0 / median << ", \"bytes_read\": " << weight_bytes + kv_bytes
         << ", \"floor_seconds\": " << floor_s << ", \"percent_of_floor\": " << 100.0 * floor_s / median
         << "}" << (i + 1 < contexts.size() ? ",\n" : "\n");
  }
  json << "  ]},\n  \"load_average_at_start\": " << load_at_start << ", \"load_average_at_end\": "
       << load_average() << ", \"total_seconds\": " << total.seconds()
       << ", \"quick\": " << (quick ? "true" : "false") << "\n}\n";
  std::ofstream(argv[1]) << json.str();
  std::fprintf(stderr, "wrote %s\n", argv[1]);
  return same_tokens ? 0 : 1;
}
