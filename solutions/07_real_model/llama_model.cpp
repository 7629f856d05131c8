// Lesson 07: a real model. Read the given code first (linear_blas, the config's checks,
// the loader, the KV-head conversions, the constructor, sample_next, generate; the cache
// seam is model_cache.hpp), then fill in each body between TODO(07.k) and END TODO(07.k),
// in the order of the README.
#include "llama_model.hpp"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <xtensor/xview.hpp>

#include "attention.hpp"  // lesson 01: split_heads, merge_heads
#include "attn/timer.hpp"
#include "dequantize.hpp"
#include "gqa.hpp"        // lesson 03: gqa_attention

namespace attn {

namespace {

std::string str(std::size_t n) { return std::to_string(n); }

// (B, T, C) viewed as (B*T, C) rows, and back.
[[maybe_unused]] Tensor2 rows_of(const Tensor3& x) {
  return xt::reshape_view(x, {x.shape(0) * x.shape(1), x.shape(2)});
}
[[maybe_unused]] Tensor3 batch_of(const Tensor2& rows, std::size_t nb, std::size_t t) {
  return xt::reshape_view(rows, {nb, t, rows.shape(1)});
}

}  // namespace

Tensor2 linear_blas(const Tensor2& x, const Tensor2& w) {
  require_equal("linear_blas", "rows of w (the inner dimension, columns of x)", x.shape(1),
                w.shape(0));
  const std::size_t m = x.shape(0), k = x.shape(1), n = w.shape(1);
  Tensor2 y = Tensor2::from_shape({m, n});
  if (m == 0 || n == 0) return y;
  if (k == 0) {
    y.fill(0.0f);
    return y;
  }
  if (m <= 2) {
    // A decode step: one row times the matrix. sgemm would first copy all of w into its
    // packed layout, reading the weights twice; sgemv streams them once: y = w^T x.
    for (std::size_t i = 0; i < m; ++i)
      cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<int>(k), static_cast<int>(n), 1.0f,
                  w.data(), static_cast<int>(n), x.data() + i * k, 1, 0.0f, y.data() + i * n, 1);
    return y;
  }
  // Row-major C (m, n) = A (m, k) . B (k, n); leading dimensions are the row lengths.
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x.data(), static_cast<int>(k), w.data(),
              static_cast<int>(n), 0.0f, y.data(), static_cast<int>(n));
  return y;
}

namespace {

// A size from the metadata: an unsigned integer, at least 1 (a model of 0 heads has no shape).
[[maybe_unused]] std::size_t read_size(const gguf::File& file, std::string_view key) {
  const std::uint64_t n = file.get_uint(key);
  require(n > 0, "llama_config", std::string(key) + " must be at least 1, given 0");
  return static_cast<std::size_t>(n);
}

// What the model needs to run, one rule a line (read_size has refused sizes of 0).
void check_llama_config(const LlamaConfig& c) {
  constexpr auto where = "llama_config";
  require(c.vocab > 0, where, "token_embd.weight must have a row per token, given 0 rows");
  require(c.d_model % c.n_heads == 0, where,
          "embedding_length must be a multiple of head_count: given " + str(c.d_model) + " and " +
              str(c.n_heads));
  require(c.n_heads % c.n_kv_heads == 0, where,
          "head_count must be a multiple of head_count_kv: given H = " + str(c.n_heads) +
              " and G = " + str(c.n_kv_heads));
  require(c.head_dim % 2 == 0, where,
          "RoPE rotates pairs: the head dimension must be even, given D = " + str(c.head_dim));
  require(std::isfinite(c.rms_eps) && c.rms_eps > 0.0f, where,
          "layer_norm_rms_epsilon must be a finite number > 0, given " + std::to_string(c.rms_eps));
  require(std::isfinite(c.rope_theta) && c.rope_theta > 0.0, where,
          "rope.freq_base must be a finite number > 0, given " + std::to_string(c.rope_theta));
}

// Keys of a Llama file that this code does not read into the config, because it does only
// one thing: each may be absent, or must say that thing (key names of llama.cpp's
// src/llama-arch.cpp). Anything else would run as another model, silently wrong.
void check_llama_assumptions(const gguf::File& file, const LlamaConfig& c) {
  constexpr auto where = "llama_config";
  auto size_is = [&](std::string_view key, std::size_t expected, const std::string& why) {
    if (file.find(key) == nullptr) return;
    const std::uint64_t given = file.get_uint(key);
    require(given == expected, where,
            std::string(key) + ": " + why + ": expected " + str(expected) + ", given " +
                std::to_string(given));
  };
  const std::string d = "D = embedding_length / head_count = " + str(c.head_dim);
  size_is("llama.rope.dimension_count", c.head_dim,
          "RoPE rotates every dimension of a head here (no partial rotary), " + d);
  size_is("llama.attention.key_length", c.head_dim, "keys have " + d + " numbers per head");
  size_is("llama.attention.value_length", c.head_dim, "values have " + d + " numbers per head");
  size_is("llama.vocab_size", c.vocab, "one token per row of token_embd.weight");
  size_is("llama.expert_count", 0, "one MLP per block (no mixture of experts)");
  if (file.find("llama.rope.scaling.type") != nullptr) {
    const std::string_view type = file.get_string("llama.rope.scaling.type");
    require(type == "none", where,
            "llama.rope.scaling.type: RoPE is not scaled here: expected \"none\", given \"" +
                std::string(type) + "\"");
  }
  for (const std::string_view key : {"llama.rope.scaling.factor", "llama.rope.scale_linear"}) {
    if (file.find(key) == nullptr) continue;
    const double factor = file.get_float(key);  // 0 means unset, as in llama.cpp
    std::ostringstream given;
    given << factor;
    require(factor == 0.0 || factor == 1.0, where,
            std::string(key) + ": RoPE is not scaled here: expected 1 (or 0, unset), given " +
                given.str());
  }
}

// The tensors load_llama reads; a file with any other (biases, rope_freqs.weight, experts,
// more blocks than block_count) describes a model this code would run without them.
void check_llama_tensors(const gguf::File& file, const LlamaConfig& c) {
  auto used = [&](std::string_view name) {
    if (name == "token_embd.weight" || name == "output_norm.weight" || name == "output.weight")
      return true;
    for (std::size_t l = 0; l < c.n_layers; ++l) {
      const std::string p = "blk." + str(l) + ".";
      if (name.substr(0, p.size()) != p) continue;
      const std::string_view rest = name.substr(p.size());
      for (const char* t : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                            "ffn_gate", "ffn_up", "ffn_down"})
        if (rest == std::string(t) + ".weight") return true;
    }
    return false;
  };
  for (const gguf::TensorInfo& t : file.tensors())
    require(used(t.name), "load_llama",
            "tensor '" + std::string(t.name) + "': expected only the tensors of a Llama of " +
                str(c.n_layers) + " blocks (token_embd, output_norm, output, blk.N.{attn_norm, " +
                "attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down} " +
                "weights), given one this code does not use");
}

}  // namespace

LlamaConfig read_llama_config(const gguf::File& file) {
  // TODO(07.1): read the llama.* sizes (read_size), D = d_model / H, RoPE's base (10000 when absent), the epsilon, the vocabulary from token_embd.weight
  LlamaConfig c;
  c.n_layers = read_size(file, "llama.block_count");
  c.d_model = read_size(file, "llama.embedding_length");
  c.n_heads = read_size(file, "llama.attention.head_count");
  c.n_kv_heads = read_size(file, "llama.attention.head_count_kv");
  c.head_dim = c.d_model / c.n_heads;
  c.d_ff = read_size(file, "llama.feed_forward_length");
  c.context_length = read_size(file, "llama.context_length");
  if (file.find("llama.rope.freq_base") != nullptr) c.rope_theta = file.get_float("llama.rope.freq_base");
  c.rms_eps = static_cast<float>(file.get_float("llama.attention.layer_norm_rms_epsilon"));
  c.vocab = file.tensor("token_embd.weight").rows();
  return c;
  // END TODO(07.1)
}

LlamaConfig llama_config(const gguf::File& file) {
  const std::string_view arch = file.get_string("general.architecture");
  require(arch == "llama", "llama_config",
          "expected general.architecture \"llama\", given \"" + std::string(arch) + "\"");
  const LlamaConfig c = read_llama_config(file);
  check_llama_config(c);
  check_llama_assumptions(file, c);
  return c;
}

Tensor3 rms_norm(const Tensor3& x, const Tensor1& gain, float eps) {
  // TODO(07.2): y = x / sqrt(mean(x^2) + eps) * gain for every vector of C channels
  const std::size_t c = x.shape(2);
  require_equal("rms_norm", "elements of the gain (channels of x)", c, gain.size());
  Tensor3 y(x.shape());
  const std::size_t rows = x.shape(0) * x.shape(1);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * c;
    float* yr = y.data() + r * c;
    float sum_sq = 0.0f;
    for (std::size_t i = 0; i < c; ++i) sum_sq += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(sum_sq / static_cast<float>(c) + eps);
    for (std::size_t i = 0; i < c; ++i) yr[i] = xr[i] * inv * gain(i);
  }
  return y;
  // END TODO(07.2)
}

Tensor3 swiglu(const Tensor3& x, const Tensor2& w_gate, const Tensor2& w_up, const Tensor2& w_down) {
  // TODO(07.3): gate = x W_gate, up = x W_up (linear_blas on rows), h = silu(gate) * up, return h W_down
  constexpr auto where = "swiglu";
  require_equal(where, "rows of w_gate (d_model of x)", x.shape(2), w_gate.shape(0));
  require_shape(where, "w_up (the shape of w_gate)", w_gate.shape(), w_up.shape());
  require_equal(where, "rows of w_down (columns of w_gate, d_ff)", w_gate.shape(1), w_down.shape(0));
  const Tensor2 rows = rows_of(x);
  Tensor2 gate = linear_blas(rows, w_gate);  // (B*T, d_ff)
  const Tensor2 up = linear_blas(rows, w_up);
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const float g = gate.data()[i];
    gate.data()[i] = g / (1.0f + std::exp(-g)) * up.data()[i];
  }
  return batch_of(linear_blas(gate, w_down), x.shape(0), x.shape(1));
  // END TODO(07.3)
}

namespace {

// A GGUF matrix stored as `rows` rows of `cols` numbers (ggml dims {cols, rows}), dequantized
// and transposed into (cols, rows): GGUF keeps a projection as (out, in), y = x W wants (in, out).
Tensor2 read_matrix(const gguf::File& file, const std::string& name, std::size_t rows,
                    std::size_t cols, bool transpose) {
  const gguf::TensorInfo& t = file.tensor(name);
  require(t.dims.size() == 2 && t.dims[0] == cols && t.dims[1] == rows, "load_llama",
          name + ": expected ggml dims {" + str(cols) + ", " + str(rows) + "}, given " +
              [&] {
                std::string s = "{";
                for (std::size_t i = 0; i < t.dims.size(); ++i)
                  s += (i ? ", " : "") + std::to_string(t.dims[i]);
                return s + "}";
              }());
  Tensor2 stored = Tensor2::from_shape({rows, cols});
  gguf::dequantize_rows(t, 0, rows, std::span<float>(stored.data(), stored.size()));
  if (!transpose) return stored;
  Tensor2 out = Tensor2::from_shape({cols, rows});
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) out(c, r) = stored(r, c);
  return out;
}

Tensor1 read_vector(const gguf::File& file, const std::string& name, std::size_t n) {
  const gguf::TensorInfo& t = file.tensor(name);
  require(t.dims.size() == 1 && t.dims[0] == n, "load_llama",
          name + ": expected a vector of " + str(n) + " numbers, given " + str(t.elements) +
              " in " + str(t.dims.size()) + " dimensions");
  Tensor1 v = Tensor1::from_shape({n});
  gguf::dequantize_rows(t, 0, 1, std::span<float>(v.data(), v.size()));
  return v;
}

}  // namespace

LlamaWeights load_llama(const gguf::File& file) {
  LlamaWeights w;
  w.config = llama_config(file);
  const LlamaConfig& c = w.config;
  check_llama_tensors(file, c);
  const std::size_t dm = c.d_model, hd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  w.embedding = read_matrix(file, "token_embd.weight", c.vocab, dm, false);  // (V, d_model)
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + str(l) + ".";
    LlamaLayer layer;
    layer.attn_norm = read_vector(file, p + "attn_norm.weight", dm);
    layer.wq = read_matrix(file, p + "attn_q.weight", hd, dm, true);
    layer.wk = read_matrix(file, p + "attn_k.weight", kvd, dm, true);
    layer.wv = read_matrix(file, p + "attn_v.weight", kvd, dm, true);
    layer.wo = read_matrix(file, p + "attn_output.weight", dm, hd, true);
    layer.mlp_norm = read_vector(file, p + "ffn_norm.weight", dm);
    layer.w_gate = read_matrix(file, p + "ffn_gate.weight", c.d_ff, dm, true);
    layer.w_up = read_matrix(file, p + "ffn_up.weight", c.d_ff, dm, true);
    layer.w_down = read_matrix(file, p + "ffn_down.weight", dm, c.d_ff, true);
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = read_vector(file, "output_norm.weight", dm);
  if (file.find_tensor("output.weight") != nullptr) {
    w.output = read_matrix(file, "output.weight", c.vocab, dm, true);
  } else {  // tied: logits = x E^T
    w.output = xt::transpose(w.embedding);
    w.tied = true;
  }
  return w;
}

std::size_t parameter_count(const LlamaWeights& w) {
  std::size_t n = w.embedding.size() + w.final_norm.size() + (w.tied ? 0 : w.output.size());
  for (const LlamaLayer& l : w.layers)
    n += l.attn_norm.size() + l.wq.size() + l.wk.size() + l.wv.size() + l.wo.size() +
         l.mlp_norm.size() + l.w_gate.size() + l.w_up.size() + l.w_down.size();
  return n;
}

LlamaWeights expand_kv_heads(const LlamaWeights& w) {
  LlamaWeights out = w;
  const LlamaConfig& c = w.config;
  const std::size_t d = c.head_dim, rep = c.n_heads / c.n_kv_heads, dm = c.d_model;
  for (LlamaLayer& layer : out.layers) {
    for (Tensor2* m : {&layer.wk, &layer.wv}) {
      Tensor2 wide = Tensor2::from_shape({dm, c.n_heads * d});
      for (std::size_t h = 0; h < c.n_heads; ++h) {
        const std::size_t g = h / rep;  // the KV head query head h reads
        xt::view(wide, xt::all(), xt::range(h * d, (h + 1) * d)) =
            xt::view(*m, xt::all(), xt::range(g * d, (g + 1) * d));
      }
      *m = std::move(wide);
    }
  }
  out.config.n_kv_heads = c.n_heads;
  return out;
}

LlamaWeights pool_kv_heads(const LlamaWeights& w, std::size_t n_kv_heads) {
  const LlamaConfig& c = w.config;
  require(n_kv_heads > 0 && c.n_kv_heads % n_kv_heads == 0, "pool_kv_heads",
          "the new KV heads must divide the model's G = " + str(c.n_kv_heads) + ", given " +
              str(n_kv_heads));
  LlamaWeights out = w;
  const std::size_t d = c.head_dim, pool = c.n_kv_heads / n_kv_heads, dm = c.d_model;
  for (LlamaLayer& layer : out.layers) {
    for (Tensor2* m : {&layer.wk, &layer.wv}) {
      Tensor2 narrow = xt::zeros<float>({dm, n_kv_heads * d});
      for (std::size_t g = 0; g < c.n_kv_heads; ++g) {
        const std::size_t to = g / pool;  // consecutive heads share a new head
        xt::view(narrow, xt::all(), xt::range(to * d, (to + 1) * d)) +=
            xt::view(*m, xt::all(), xt::range(g * d, (g + 1) * d)) / static_cast<float>(pool);
      }
      *m = std::move(narrow);
    }
  }
  out.config.n_kv_heads = n_kv_heads;
  return out;
}

LlamaModel::LlamaModel(LlamaWeights weights) : w_(std::move(weights)) {
  const LlamaConfig& c = w_.config;
  require(c.n_layers == w_.layers.size(), "LlamaModel",
          "expected " + str(c.n_layers) + " layers of weights, given " + str(w_.layers.size()));
  require(c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0 &&
              c.d_model == c.n_heads * c.head_dim,
          "LlamaModel",
          "inconsistent heads: given d_model " + str(c.d_model) + ", H " + str(c.n_heads) +
              ", G " + str(c.n_kv_heads) + ", D " + str(c.head_dim));
  require_shape("LlamaModel", "embedding (V, d_model)", std::array{c.vocab, c.d_model},
                w_.embedding.shape());
  require_shape("LlamaModel", "output (d_model, V)", std::array{c.d_model, c.vocab},
                w_.output.shape());
}

ModelCache LlamaModel::make_cache(std::size_t batch, std::size_t capacity,
                                  const LayerCacheMaker& make_layer) const {
  require(batch > 0 && capacity > 0, "LlamaModel::make_cache",
          "batch and capacity must be positive, given " + str(batch) + " and " + str(capacity));
  const LlamaConfig& c = w_.config;
  return ModelCache(CacheShape{c.n_layers, batch, c.n_kv_heads, capacity, c.head_dim}, make_layer);
}

Tensor3 LlamaModel::attention(const Tensor3& h, const LlamaLayer& w, std::size_t first_position,
                              LayerCache* cache) const {
  // TODO(07.4): project q, k, v; split heads; RoPE (adjacent pairs, the model's theta) on q and k; attend causally (with a cache: append, then attend over it); merge heads; project with wo
  const LlamaConfig& c = w_.config;
  const std::size_t nb = h.shape(0), t = h.shape(1);
  const Tensor2 rows = rows_of(h);
  auto heads = [&](const Tensor2& weight, std::size_t n) {
    return split_heads(batch_of(linear_blas(rows, weight), nb, t), n);  // (B, n, T, D)
  };
  const Tensor4 q = apply_rope(heads(w.wq, c.n_heads), first_position, RopePairing::adjacent,
                               c.rope_theta);
  const Tensor4 k = apply_rope(heads(w.wk, c.n_kv_heads), first_position, RopePairing::adjacent,
                               c.rope_theta);
  const Tensor4 v = heads(w.wv, c.n_kv_heads);
  if (cache) cache->append(k, v);
  const Tensor4 a = cache ? cache->attend(q)                         // over the cache
                          : gqa_attention(q, k, v, Mask::causal, 0);  // over these T tokens
  return batch_of(linear_blas(rows_of(merge_heads(a)), w.wo), nb, t);
  // END TODO(07.4)
}

Tensor3 LlamaModel::run(const Tokens& tokens, std::size_t first_position,
                        ModelCache* cache) const {
  // TODO(07.5): embed the tokens (check each id); for every block x += attention(rms_norm(x)), x += swiglu(rms_norm(x)); final rms_norm; logits = x . output
  const LlamaConfig& c = w_.config;
  const std::size_t nb = tokens.shape(0), t = tokens.shape(1);
  Tensor3 x = Tensor3::from_shape({nb, t, c.d_model});  // the residual stream
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t i = 0; i < t; ++i) {
      const std::size_t id = tokens(b, i);
      require_in_range(id < c.vocab, "LlamaModel",
                       "token id outside the vocabulary: expected an id < " + str(c.vocab) +
                           ", given " + str(id) + " at (" + str(b) + ", " + str(i) + ")");
      xt::view(x, b, i) = xt::view(w_.embedding, id);
    }
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const LlamaLayer& w = w_.layers[l];
    x += attention(rms_norm(x, w.attn_norm, c.rms_eps), w, first_position,
                   cache ? &cache->layer(l) : nullptr);
    x += swiglu(rms_norm(x, w.mlp_norm, c.rms_eps), w.w_gate, w.w_up, w.w_down);
  }
  const Tensor2 logits = linear_blas(rows_of(rms_norm(x, w_.final_norm, c.rms_eps)), w_.output);
  return batch_of(logits, nb, t);
  // END TODO(07.5)
}

Tensor3 LlamaModel::forward(const Tokens& tokens) const {
  require(tokens.shape(1) > 0, "LlamaModel::forward", "at least one token is needed, given T = 0");
  return run(tokens, 0, nullptr);
}

void LlamaModel::check_cache(const char* where, const ModelCache& cache, std::size_t batch,
                             std::size_t n_new) const {
  const LlamaConfig& c = w_.config;
  const CacheShape& s = cache.shape();
  require_equal(where, "layers of the cache (n_layers of the model)", c.n_layers, s.layers);
  require_equal(where, "batch of the cache (B of the tokens)", batch, s.batch);
  require_equal(where, "KV heads of the cache (G of the model)", c.n_kv_heads, s.kv_heads);
  require_equal(where, "head dimension of the cache (D of the model)", c.head_dim, s.head_dim);
  const std::size_t used = cache.length(), cap = cache.capacity();
  require_in_range(n_new <= cap - used, where,
                   "no room for the new tokens: the cache holds " + str(used) + " of " + str(cap) +
                       ", given " + str(n_new) + " more");
}

Tensor3 LlamaModel::prefill(const Tokens& tokens, ModelCache& cache) const {
  constexpr auto where = "LlamaModel::prefill";
  require(tokens.shape(1) > 0, where, "at least one token is needed, given T = 0");
  check_cache(where, cache, tokens.shape(0), tokens.shape(1));
  for (std::size_t id : tokens)  // before any layer appends: a bad id leaves the cache unchanged
    require_in_range(id < w_.config.vocab, where,
                     "token id outside the vocabulary: expected an id < " + str(w_.config.vocab) +
                         ", given " + str(id));
  return run(tokens, cache.length(), &cache);
}

Tensor2 LlamaModel::decode_step(const TokenColumn& last, ModelCache& cache) const {
  Tokens tokens = Tokens::from_shape({last.size(), 1});
  for (std::size_t b = 0; b < last.size(); ++b) tokens(b, 0) = last(b);
  const Tensor3 logits = prefill(tokens, cache);  // (B, 1, V)
  return xt::view(logits, xt::all(), 0, xt::all());
}

std::size_t greedy_token(const Tensor1& logits) {
  // TODO(07.6): the first id of the largest logit
  std::size_t best = 0;
  for (std::size_t id = 1; id < logits.size(); ++id)
    if (logits(id) > logits(best)) best = id;
  return best;
  // END TODO(07.6)
}

std::vector<double> tempered_probabilities(const Tensor1& logits, float temperature) {
  // TODO(07.7): p = softmax(logits / temperature) in double, the maximum subtracted before the exponentials
  const double t = temperature;
  double m = -std::numeric_limits<double>::infinity();
  for (const float z : logits) m = std::max(m, double(z) / t);
  std::vector<double> p(logits.size());
  double sum = 0.0;
  for (std::size_t id = 0; id < p.size(); ++id) sum += p[id] = std::exp(double(logits(id)) / t - m);
  for (double& x : p) x /= sum;
  return p;
  // END TODO(07.7)
}

std::vector<std::size_t> top_p_nucleus(const std::vector<double>& p, double top_p) {
  // TODO(07.8): sort the ids by p, largest first (stable: the lower id first among equals); keep them while the kept sum is below top_p (at least one)
  std::vector<std::size_t> order(p.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
  std::size_t kept = 0;
  double mass = 0.0;
  while (kept < order.size() && (kept == 0 || mass < top_p)) mass += p[order[kept++]];
  order.resize(kept);
  return order;
  // END TODO(07.8)
}

std::size_t pick_token(const std::vector<double>& p, const std::vector<std::size_t>& nucleus,
                       double u) {
  // TODO(07.9): the first id of the nucleus at which the running sum of its probabilities exceeds u times their sum
  double mass = 0.0;
  for (const std::size_t id : nucleus) mass += p[id];
  const double target = u * mass;
  double running = 0.0;
  for (const std::size_t id : nucleus) {
    running += p[id];
    if (running > target) return id;
  }
  return nucleus.back();  // rounding: u * mass at the very top
  // END TODO(07.9)
}

namespace {

// The first logit of a row that is NaN or infinite, and how many are, as a message.
std::string non_finite_logits(const float* row, std::size_t v) {
  std::size_t count = 0, first = v;
  for (std::size_t id = 0; id < v; ++id)
    if (!std::isfinite(row[id]) && count++ == 0) first = id;
  if (count == 0) return "";
  const float x = row[first];
  return str(count) + " of " + str(v) + " logits are not finite, the first at id " + str(first) +
         " (" + (std::isnan(x) ? "NaN" : x > 0 ? "+inf" : "-inf") + ")";
}

}  // namespace

void require_finite_logits(const Tensor1& logits, const std::string& where) {
  const std::string bad = non_finite_logits(logits.data(), logits.size());
  if (!bad.empty())
    throw std::range_error(where + ": " + bad + "; the weights hold a NaN or an infinity, " +
                           "or the activations overflowed float32");
}

std::size_t sample_next(const Tensor1& logits, const Sampling& s, double u) {
  constexpr auto where = "sample_next";
  require(logits.size() > 0, where, "logits need at least one token, given V = 0");
  require(std::isfinite(s.temperature) && s.temperature >= 0.0f, where,
          "the temperature must be finite and >= 0, given " + std::to_string(s.temperature));
  require(s.top_p > 0.0f && s.top_p <= 1.0f, where,
          "top_p must be in (0, 1], given " + std::to_string(s.top_p));
  require(u >= 0.0 && u < 1.0, where, "u must be in [0, 1), given " + std::to_string(u));
  const std::string bad = non_finite_logits(logits.data(), logits.size());
  require(bad.empty(), where, "expected finite logits, given " + bad);
  if (s.temperature == 0.0f) return greedy_token(logits);
  const std::vector<double> p = tempered_probabilities(logits, s.temperature);
  return pick_token(p, top_p_nucleus(p, s.top_p), u);
}

std::vector<double> next_token_nll(const Tensor2& logits, const std::vector<std::size_t>& tokens,
                                   std::size_t first) {
  // TODO(07.10): check; for t = first ... T-2: logsumexp(logits[t]) - logits[t][tokens[t+1]], in double
  constexpr auto where = "next_token_nll";
  const std::size_t nt = logits.shape(0), nv = logits.shape(1);
  require_equal(where, "token ids (rows of the logits, T)", nt, tokens.size());
  require(nt >= 2 && first < nt - 1, where,
          "the first scored position must be < T - 1 = " + str(nt == 0 ? 0 : nt - 1) +
              ", given first = " + str(first) + " with T = " + str(nt));
  std::vector<double> nll;
  for (std::size_t t = first; t + 1 < nt; ++t) {
    const std::size_t next = tokens[t + 1];
    require_in_range(next < nv, where,
                     "token id outside the vocabulary: expected an id < " + str(nv) + ", given " +
                         str(next) + " at " + str(t + 1));
    double m = -std::numeric_limits<double>::infinity();
    for (std::size_t id = 0; id < nv; ++id) m = std::max(m, double(logits(t, id)));
    double sum = 0.0;
    for (std::size_t id = 0; id < nv; ++id) sum += std::exp(double(logits(t, id)) - m);
    nll.push_back(m + std::log(sum) - double(logits(t, next)));
  }
  return nll;
  // END TODO(07.10)
}

std::vector<std::size_t> generate(const LlamaModel& model, const std::vector<std::size_t>& prompt,
                                  std::size_t max_new_tokens, ModelCache& cache,
                                  const Sampling& sampling, std::uint64_t seed,
                                  const std::vector<std::size_t>& stop,
                                  const std::function<bool(std::size_t)>& on_token,
                                  GenerationStats* stats) {
  constexpr auto where = "generate";
  require(!prompt.empty(), where, "the prompt needs at least one token, given none");
  const std::size_t room = cache.capacity() - cache.length();
  require_in_range(prompt.size() <= room && max_new_tokens <= room - prompt.size(), where,
                   "the cache has room for " + str(room) + " more tokens, given a prompt of " +
                       str(prompt.size()) + " and " + str(max_new_tokens) + " new tokens");
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  GenerationStats local;
  local.prompt_tokens = prompt.size();
  std::vector<std::size_t> out;
  if (max_new_tokens == 0) {
    if (stats) *stats = local;
    return out;
  }
  Tokens tokens = Tokens::from_shape({1, prompt.size()});
  std::copy(prompt.begin(), prompt.end(), tokens.begin());
  Timer timer;
  Tensor1 logits = xt::view(model.prefill(tokens, cache), 0, prompt.size() - 1, xt::all());
  local.prefill_seconds = timer.seconds();
  timer.reset();
  while (true) {
    // Step k chooses new token k from the logits of position prompt.size() - 1 + k.
    require_finite_logits(logits, "generate: step " + str(out.size()) + " (the logits of position " +
                                      str(prompt.size() - 1 + out.size()) + ")");
    const std::size_t next = sample_next(logits, sampling, uniform(rng));
    out.push_back(next);
    const bool go_on = !on_token || on_token(next);
    if (!go_on || out.size() == max_new_tokens ||
        std::find(stop.begin(), stop.end(), next) != stop.end())
      break;
    logits = xt::view(model.decode_step(TokenColumn({next}), cache), 0, xt::all());
  }
  local.new_tokens = out.size();
  local.decode_seconds = timer.seconds();
  if (stats) *stats = local;
  return out;
}

std::vector<std::size_t> generate_uncached(const LlamaModel& model,
                                           const std::vector<std::size_t>& prompt,
                                           std::size_t n_new) {
  require(!prompt.empty(), "generate_uncached", "the prompt needs at least one token, given none");
  std::vector<std::size_t> seq = prompt;
  for (std::size_t i = 0; i < n_new; ++i) {
    Tokens tokens = Tokens::from_shape({1, seq.size()});
    std::copy(seq.begin(), seq.end(), tokens.begin());
    const Tensor3 logits = model.forward(tokens);
    require_finite_logits(xt::view(logits, 0, seq.size() - 1, xt::all()),
                          "generate_uncached: step " + str(i) + " (the logits of position " +
                              str(seq.size() - 1) + ")");
    seq.push_back(greedy_next(logits)(0));
  }
  return std::vector<std::size_t>(seq.begin() + static_cast<std::ptrdiff_t>(prompt.size()), seq.end());
}

std::vector<double> sequence_nll(const LlamaModel& model, const std::vector<std::size_t>& tokens,
                                 std::size_t first) {
  require(tokens.size() >= 2 && first < tokens.size() - 1, "sequence_nll",
          "the first scored position must be < T - 1, given first = " + str(first) + " with T = " +
              str(tokens.size()));
  Tokens batch = Tokens::from_shape({1, tokens.size()});
  std::copy(tokens.begin(), tokens.end(), batch.begin());
  const Tensor2 logits = xt::view(model.forward(batch), 0, xt::all(), xt::all());
  const std::size_t v = logits.shape(1);
  for (std::size_t t = first; t + 1 < tokens.size(); ++t) {
    const std::string bad = non_finite_logits(logits.data() + t * v, v);
    if (!bad.empty())
      throw std::range_error("sequence_nll: position " + str(t) + " (scoring the token at " +
                             str(t + 1) + "): " + bad + "; the weights hold a NaN or an " +
                             "infinity, or the activations overflowed float32");
  }
  return next_token_nll(logits, tokens, first);
}

}  // namespace attn
