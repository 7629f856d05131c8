// Lesson 05: cached generation. Read the given code first (linear, rms_norm, the
// constructor, run: the whole model), then fill in each body between TODO(05.k) and
// END TODO(05.k), in the order of the README.
#include "decoder.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <xtensor/xview.hpp>

#include "attention.hpp"
#include "attn/random.hpp"

namespace attn {

Tensor2 linear(const Tensor2& x, const Tensor2& w) {
  require_equal("linear", "rows of w (the inner dimension, columns of x)", x.shape(1),
                w.shape(0));
  const std::size_t m = x.shape(0), inner = x.shape(1), n = w.shape(1);
  Tensor2 y({m, n});
  const float* xd = x.data();
  const float* wd = w.data();
  float* yd = y.data();
  // Sixteen outputs of a row at a time, each summed over k in order: the same sums as
  // lesson 01's matmul, with the sixteen accumulators in vector registers.
  constexpr std::size_t kCols = 16;
  for (std::size_t i = 0; i < m; ++i) {
    const float* xi = xd + i * inner;
    std::size_t j = 0;
    for (; j + kCols <= n; j += kCols) {
      float acc[kCols] = {};
      for (std::size_t k = 0; k < inner; ++k) {
        const float a = xi[k];
        const float* wk = wd + k * n + j;
        for (std::size_t c = 0; c < kCols; ++c) acc[c] += a * wk[c];
      }
      for (std::size_t c = 0; c < kCols; ++c) yd[i * n + j + c] = acc[c];
    }
    for (; j < n; ++j) {
      float acc = 0.0f;
      for (std::size_t k = 0; k < inner; ++k) acc += xi[k] * wd[k * n + j];
      yd[i * n + j] = acc;
    }
  }
  return y;
}

Tensor3 rms_norm(const Tensor3& x, const Tensor1& gain) {
  const std::size_t c = x.shape(2);
  require_equal("rms_norm", "elements of the gain (channels of x)", c, gain.size());
  Tensor3 y(x.shape());
  const std::size_t rows = x.shape(0) * x.shape(1);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * c;
    float* yr = y.data() + r * c;
    float sum_sq = 0.0f;
    for (std::size_t i = 0; i < c; ++i) sum_sq += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(sum_sq / static_cast<float>(c) + 1e-5f);
    for (std::size_t i = 0; i < c; ++i) yr[i] = xr[i] * inv * gain(i);
  }
  return y;
}

TokenColumn greedy_next(const Tensor2& logits) {
  const std::size_t nb = logits.shape(0), nv = logits.shape(1);
  require(nv > 0, "greedy_next", "logits need at least one token, given V = 0");
  TokenColumn next = TokenColumn::from_shape({nb});
  for (std::size_t b = 0; b < nb; ++b) {
    std::size_t best = 0;
    for (std::size_t id = 1; id < nv; ++id)
      if (logits(b, id) > logits(b, best)) best = id;
    next(b) = best;
  }
  return next;
}

TokenColumn greedy_next(const Tensor3& logits) {
  const std::size_t t = logits.shape(1);
  require(t > 0, "greedy_next", "logits need at least one position, given T = 0");
  return greedy_next(Tensor2(xt::view(logits, xt::all(), t - 1, xt::all())));
}

namespace {

// (B, T, C) viewed as (B*T, C) rows, and back.
Tensor2 rows_of(const Tensor3& x) {
  return xt::reshape_view(x, {x.shape(0) * x.shape(1), x.shape(2)});
}
Tensor3 batch_of(const Tensor2& rows, std::size_t nb, std::size_t t) {
  return xt::reshape_view(rows, {nb, t, rows.shape(1)});
}

// Uniform in +-sqrt(3 / fan_in): variance 1 / fan_in per weight.
Tensor2 random_weight(std::size_t fan_in, std::size_t fan_out, Rng& seeds) {
  const float bound = std::sqrt(3.0f / static_cast<float>(fan_in));
  return random_uniform<2>({fan_in, fan_out}, seeds.next(), -bound, bound);
}

Tensor1 random_gain(std::size_t c, Rng& seeds) {
  return random_uniform<1>({c}, seeds.next(), 0.8f, 1.2f);
}

// down(silu(x W_gate) * (x W_up)), SwiGLU as in Llama; x (B, T, d_model).
Tensor3 mlp(const Tensor3& x, const DecoderLayer& w) {
  const Tensor2 rows = rows_of(x);
  Tensor2 gate = linear(rows, w.w_gate);  // (B*T, d_ff)
  const Tensor2 up = linear(rows, w.w_up);
  for (std::size_t i = 0; i < gate.size(); ++i) {
    const float g = gate.data()[i];
    gate.data()[i] = g / (1.0f + std::exp(-g)) * up.data()[i];
  }
  return batch_of(linear(gate, w.w_down), x.shape(0), x.shape(1));
}

}  // namespace

Decoder::Decoder(const DecoderConfig& config) : config_(config) {
  constexpr auto where = "Decoder";
  const DecoderConfig& c = config;
  require(c.vocab > 0 && c.d_model > 0 && c.n_heads > 0 && c.n_kv_heads > 0 &&
              c.n_layers > 0 && c.d_ff > 0 && c.max_seq_len > 0,
          where,
          "every size must be positive: given vocab " + std::to_string(c.vocab) + ", d_model " +
              std::to_string(c.d_model) + ", n_heads " + std::to_string(c.n_heads) +
              ", n_kv_heads " + std::to_string(c.n_kv_heads) + ", n_layers " +
              std::to_string(c.n_layers) + ", d_ff " + std::to_string(c.d_ff) +
              ", max_seq_len " + std::to_string(c.max_seq_len));
  require(c.d_model % c.n_heads == 0, where,
          "d_model must be a multiple of n_heads: given d_model = " + std::to_string(c.d_model) +
              " and H = " + std::to_string(c.n_heads));
  require(c.n_heads % c.n_kv_heads == 0, where,
          "n_heads must be a multiple of n_kv_heads: given H = " + std::to_string(c.n_heads) +
              " and G = " + std::to_string(c.n_kv_heads));
  const std::size_t d = head_dim(), dm = c.d_model;
  Rng seeds(c.seed);
  embedding_ = random_uniform<2>({c.vocab, dm}, seeds.next());  // (V, d_model), entries O(1)
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    DecoderLayer layer;
    layer.attn_norm = random_gain(dm, seeds);
    layer.attn.wq = random_weight(dm, c.n_heads * d, seeds);
    layer.attn.wk = random_weight(dm, c.n_kv_heads * d, seeds);
    layer.attn.wv = random_weight(dm, c.n_kv_heads * d, seeds);
    layer.attn.wo = random_weight(c.n_heads * d, dm, seeds);
    layer.attn.n_heads = c.n_heads;
    layer.attn.n_kv_heads = c.n_kv_heads;
    layer.mlp_norm = random_gain(dm, seeds);
    layer.w_gate = random_weight(dm, c.d_ff, seeds);
    layer.w_up = random_weight(dm, c.d_ff, seeds);
    layer.w_down = random_weight(c.d_ff, dm, seeds);
    layers_.push_back(std::move(layer));
  }
  final_norm_ = random_gain(dm, seeds);
  unembedding_ = random_weight(dm, c.vocab, seeds);  // (d_model, V)
}

const DecoderLayer& Decoder::layer(std::size_t l) const {
  require_in_range(l < layers_.size(), "Decoder::layer",
                   "layer index out of range: expected l < " + std::to_string(layers_.size()) +
                       ", given l = " + std::to_string(l));
  return layers_[l];
}

MultiLayerKVCache Decoder::make_cache(std::size_t batch) const {
  return MultiLayerKVCache(config_.n_layers, batch, config_.n_kv_heads, config_.max_seq_len,
                           head_dim());
}

Tensor3 Decoder::run(const Tokens& tokens, std::size_t first_position,
                     MultiLayerKVCache* cache) const {
  const std::size_t nb = tokens.shape(0), t = tokens.shape(1), dm = config_.d_model;
  const std::size_t nh = config_.n_heads, ng = config_.n_kv_heads;
  Tensor3 x({nb, t, dm});  // (B, T, d_model), the residual stream
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t i = 0; i < t; ++i) {
      const std::size_t id = tokens(b, i);
      require_in_range(id < config_.vocab, "Decoder",
                       "token id outside the vocabulary: expected an id < " +
                           std::to_string(config_.vocab) + ", given " + std::to_string(id) +
                           " at (" + std::to_string(b) + ", " + std::to_string(i) + ")");
      xt::view(x, b, i) = xt::view(embedding_, id);
    }
  auto project = [&](const Tensor3& h, const Tensor2& w, std::size_t heads) {
    return split_heads(batch_of(linear(rows_of(h), w), nb, t), heads);  // (B, heads, T, D)
  };
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const DecoderLayer& w = layers_[l];
    const Tensor3 h = rms_norm(x, w.attn_norm);
    Tensor4 q = project(h, w.attn.wq, nh);  // (B, H, T, D)
    Tensor4 k = project(h, w.attn.wk, ng);  // (B, G, T, D)
    const Tensor4 v = project(h, w.attn.wv, ng);
    if (hook_) hook_(q, k, first_position);  // before k enters the cache
    const Tensor4 a = cache ? attend_cached(q, k, v, cache->layer(l))   // over the cache
                            : gqa_attention(q, k, v, Mask::causal, 0);  // over these T tokens
    x += batch_of(linear(rows_of(merge_heads(a)), w.attn.wo), nb, t);
    x += mlp(rms_norm(x, w.mlp_norm), w);
  }
  const Tensor2 logits = linear(rows_of(rms_norm(x, final_norm_)), unembedding_);  // (B*T, V)
  return batch_of(logits, nb, t);
}

Tensor3 Decoder::forward(const Tokens& tokens) const {
  constexpr auto where = "Decoder::forward";
  const std::size_t t = tokens.shape(1);
  require(t > 0, where, "at least one token is needed, given T = 0");
  require_in_range(t <= config_.max_seq_len, where,
                   "sequence longer than the model allows: expected T <= max_seq_len = " +
                       std::to_string(config_.max_seq_len) + ", given T = " + std::to_string(t));
  return run(tokens, 0, nullptr);
}

void Decoder::require_room(const char* where, const MultiLayerKVCache& cache, std::size_t batch,
                           std::size_t n_new) const {
  const KVCache& first = cache.layer(0);
  require_equal(where, "layers of the cache (n_layers of the model)", config_.n_layers,
                cache.layers());
  require_equal(where, "batch of the cache (B of the tokens)", batch, first.batch());
  require_equal(where, "KV heads of the cache (n_kv_heads of the model)", config_.n_kv_heads,
                first.kv_heads());
  require_equal(where, "head dimension of the cache (d_model / n_heads)", head_dim(),
                first.head_dim());
  const std::size_t used = cache.length();
  const std::size_t limit = std::min(config_.max_seq_len, cache.capacity());
  // Written so that a huge n_new cannot wrap the sum around.
  require_in_range(used <= limit && n_new <= limit - used, where,
                   "no room for the new tokens: the cache holds " + std::to_string(used) +
                       " and can hold " + std::to_string(limit) +
                       " (min of max_seq_len = " + std::to_string(config_.max_seq_len) +
                       " and the cache capacity = " + std::to_string(cache.capacity()) +
                       "), given " + std::to_string(n_new) + " more");
}

Tensor4 attend_cached(const Tensor4& q, const Tensor4& k, const Tensor4& v, KVCache& cache) {
  // TODO(05.1): append the new keys and values to the cache, then attend over all of it
  cache.append(k, v);
  return gqa_attention_cached(q, cache);
  // END TODO(05.1)
}

Tensor3 Decoder::prefill(const Tokens& tokens, MultiLayerKVCache& cache) const {
  // TODO(05.2): check T and the room in the cache; run the T tokens from position cache.length()
  const std::size_t t = tokens.shape(1);
  require(t > 0, "Decoder::prefill", "at least one token is needed, given T = 0");
  require_room("Decoder::prefill", cache, tokens.shape(0), t);
  return run(tokens, cache.length(), &cache);
  // END TODO(05.2)
}

Tensor2 Decoder::decode_step(const TokenColumn& last, MultiLayerKVCache& cache) const {
  // TODO(05.3): check the room for one token; run it as a (B, 1) batch at position cache.length()
  const std::size_t nb = last.size();
  require_room("Decoder::decode_step", cache, nb, 1);
  const Tokens column = xt::reshape_view(last, {nb, std::size_t{1}});  // (B, 1)
  const Tensor3 logits = run(column, cache.length(), &cache);           // (B, 1, V)
  return xt::view(logits, xt::all(), 0, xt::all());
  // END TODO(05.3)
}

Tokens Decoder::generate_uncached(const Tokens& prompt, std::size_t n_new) const {
  // TODO(05.4): check P and P + n_new; n_new times: forward over the sequence, append the argmax
  constexpr auto where = "Decoder::generate_uncached";
  const std::size_t nb = prompt.shape(0), p = prompt.shape(1), limit = config_.max_seq_len;
  require(p > 0, where, "the prompt needs at least one token, given P = 0");
  require_in_range(p <= limit && n_new <= limit - p, where,
                   "prompt and generated tokens exceed max_seq_len = " + std::to_string(limit) +
                       ": given P = " + std::to_string(p) + " and n_new = " +
                       std::to_string(n_new));
  Tokens sequence({nb, p + n_new});  // prompt, then the generated tokens as they come
  xt::view(sequence, xt::all(), xt::range(0, p)) = prompt;
  for (std::size_t i = 0; i < n_new; ++i) {
    const Tokens so_far = xt::view(sequence, xt::all(), xt::range(0, p + i));  // (B, P + i)
    xt::view(sequence, xt::all(), p + i) = greedy_next(forward(so_far));
  }
  return xt::view(sequence, xt::all(), xt::range(p, p + n_new));
  // END TODO(05.4)
}

Tokens Decoder::generate_cached(const Tokens& prompt, std::size_t n_new,
                                MultiLayerKVCache& cache) const {
  // TODO(05.5): check everything first; prefill the prompt, then one decode step per generated token
  constexpr auto where = "Decoder::generate_cached";
  const std::size_t nb = prompt.shape(0), p = prompt.shape(1);
  require(p > 0, where, "the prompt needs at least one token, given P = 0");
  // p + n_new, saturated so that a huge n_new cannot wrap around to a small number.
  const std::size_t total = n_new > SIZE_MAX - p ? SIZE_MAX : p + n_new;
  require_room(where, cache, nb, total);  // before any work: the cache stays unchanged
  Tokens out({nb, n_new});
  TokenColumn next = greedy_next(prefill(prompt, cache));  // (B)
  for (std::size_t i = 0; i < n_new; ++i) {
    xt::view(out, xt::all(), i) = next;
    const Tensor2 logits = decode_step(next, cache);  // (B, V): feeds token i back
    next = greedy_next(logits);
  }
  return out;
  // END TODO(05.5)
}

}  // namespace attn
