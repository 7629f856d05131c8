/// @file tiny_llama.hpp
/// @brief A tiny Llama-architecture model for lesson 07's tests: random weights written as
///        a GGUF file in memory (float32 tensors, GGUF's (out, in) rows), the same weights
///        as a LlamaWeights built without the file, and an independent float64 forward pass
///        (and attention sublayer) in plain loops that reads those same numbers.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gguf.hpp"
#include "gguf_writer.hpp"
#include "llama_model.hpp"

namespace tiny {

/// Sizes of the tiny model; every field can be changed before build().
struct Spec {
  std::size_t vocab = 23, d_model = 16, n_layers = 2, n_heads = 4, n_kv_heads = 2, d_ff = 24;
  std::size_t context = 64;
  double theta = 10000.0;
  float eps = 1e-5f;
  bool tied = true;          ///< no output.weight: logits use the embedding
  std::uint64_t seed = 7;
  std::size_t head_dim() const { return d_model / n_heads; }
};

/// A matrix as GGUF stores it: `rows` rows of `cols` numbers (ggml dims {cols, rows}).
struct Matrix {
  std::size_t rows = 0, cols = 0;
  std::vector<double> v;  ///< row-major, the float32 values written, held exactly
  double at(std::size_t r, std::size_t c) const { return v[r * cols + c]; }
};

/// The weights of the tiny model, exactly as written to the file.
struct Weights {
  Spec spec;
  std::map<std::string, Matrix> m;  ///< by GGUF tensor name; vectors have rows = 1
};

inline Matrix random_matrix(std::size_t rows, std::size_t cols, double lo, double hi,
                            std::mt19937_64& rng) {
  std::uniform_real_distribution<double> dist(lo, hi);
  Matrix out{rows, cols, std::vector<double>(rows * cols)};
  for (double& x : out.v) x = static_cast<float>(dist(rng));  // representable in float32
  return out;
}

/// Draws every weight from spec.seed: projections uniform in +-sqrt(3 / fan_in), norm gains
/// in [0.5, 1.5], embeddings in [-1, 1].
inline Weights make_weights(const Spec& s) {
  std::mt19937_64 rng(s.seed);
  Weights w{s, {}};
  const std::size_t d = s.head_dim();
  auto proj = [&](std::size_t out, std::size_t in) {
    const double b = std::sqrt(3.0 / static_cast<double>(in));
    return random_matrix(out, in, -b, b, rng);
  };
  w.m["token_embd.weight"] = random_matrix(s.vocab, s.d_model, -1.0, 1.0, rng);
  for (std::size_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    w.m[p + "attn_norm.weight"] = random_matrix(1, s.d_model, 0.5, 1.5, rng);
    w.m[p + "attn_q.weight"] = proj(s.n_heads * d, s.d_model);
    w.m[p + "attn_k.weight"] = proj(s.n_kv_heads * d, s.d_model);
    w.m[p + "attn_v.weight"] = proj(s.n_kv_heads * d, s.d_model);
    w.m[p + "attn_output.weight"] = proj(s.d_model, s.n_heads * d);
    w.m[p + "ffn_norm.weight"] = random_matrix(1, s.d_model, 0.5, 1.5, rng);
    w.m[p + "ffn_gate.weight"] = proj(s.d_ff, s.d_model);
    w.m[p + "ffn_up.weight"] = proj(s.d_ff, s.d_model);
    w.m[p + "ffn_down.weight"] = proj(s.d_model, s.d_ff);
  }
  w.m["output_norm.weight"] = random_matrix(1, s.d_model, 0.5, 1.5, rng);
  if (!s.tied) w.m["output.weight"] = proj(s.vocab, s.d_model);
  return w;
}

/// The GGUF writer with the llama.* metadata of `s` and every tensor of `w` as F32.
/// Tests change or drop keys through `skip` and `override_u32`.
inline attn::gguf::testing::Writer writer(const Weights& w, const std::string& skip = "",
                                          const std::string& override_key = "",
                                          std::uint32_t override_value = 0) {
  const Spec& s = w.spec;
  attn::gguf::testing::Writer out;
  auto u32 = [&](const std::string& key, std::size_t v) {
    if (key == skip) return;
    out.u32(key, key == override_key ? override_value : static_cast<std::uint32_t>(v));
  };
  if (skip != "general.architecture") out.str("general.architecture", "llama");
  u32("llama.block_count", s.n_layers);
  u32("llama.context_length", s.context);
  u32("llama.embedding_length", s.d_model);
  u32("llama.feed_forward_length", s.d_ff);
  u32("llama.attention.head_count", s.n_heads);
  u32("llama.attention.head_count_kv", s.n_kv_heads);
  if (skip != "llama.rope.freq_base") out.f32("llama.rope.freq_base", static_cast<float>(s.theta));
  if (skip != "llama.attention.layer_norm_rms_epsilon")
    out.f32("llama.attention.layer_norm_rms_epsilon", s.eps);
  for (const auto& [name, m] : w.m) {
    std::vector<std::byte> bytes(m.v.size() * sizeof(float));
    for (std::size_t i = 0; i < m.v.size(); ++i) {
      const float f = static_cast<float>(m.v[i]);
      std::memcpy(bytes.data() + i * sizeof(float), &f, sizeof f);
    }
    std::vector<std::uint64_t> dims = m.rows == 1 && name.find("norm") != std::string::npos
                                          ? std::vector<std::uint64_t>{m.cols}
                                          : std::vector<std::uint64_t>{m.cols, m.rows};
    out.tensor(name, dims, 0, std::move(bytes));
  }
  return out;
}

/// The file of the tiny model, parsed.
inline attn::gguf::File file(const Weights& w) {
  const auto bytes = writer(w).build();
  return attn::gguf::File::parse(bytes, "tiny llama");
}

/// The weights as load_llama must return them, built here from the stored numbers without
/// the file (so without llama_config): each projection transposed from (out, in) to
/// (in, out), the output the transposed embedding when tied.
inline attn::LlamaWeights llama_weights(const Weights& w) {
  const Spec& s = w.spec;
  attn::LlamaWeights out;
  out.config = {s.vocab, s.d_model, s.n_layers, s.n_heads, s.n_kv_heads, s.head_dim(), s.d_ff,
                s.context, s.theta, s.eps};
  auto matrix = [&](const std::string& name, bool transpose) {
    const Matrix& m = w.m.at(name);
    attn::Tensor2 t = transpose ? attn::Tensor2::from_shape({m.cols, m.rows})
                                : attn::Tensor2::from_shape({m.rows, m.cols});
    for (std::size_t r = 0; r < m.rows; ++r)
      for (std::size_t c = 0; c < m.cols; ++c) (transpose ? t(c, r) : t(r, c)) = static_cast<float>(m.at(r, c));
    return t;
  };
  auto vector = [&](const std::string& name) {
    const Matrix& m = w.m.at(name);
    attn::Tensor1 t = attn::Tensor1::from_shape({m.cols});
    for (std::size_t c = 0; c < m.cols; ++c) t(c) = static_cast<float>(m.v[c]);
    return t;
  };
  out.embedding = matrix("token_embd.weight", false);
  for (std::size_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    out.layers.push_back({vector(p + "attn_norm.weight"), matrix(p + "attn_q.weight", true),
                          matrix(p + "attn_k.weight", true), matrix(p + "attn_v.weight", true),
                          matrix(p + "attn_output.weight", true), vector(p + "ffn_norm.weight"),
                          matrix(p + "ffn_gate.weight", true), matrix(p + "ffn_up.weight", true),
                          matrix(p + "ffn_down.weight", true)});
  }
  out.final_norm = vector("output_norm.weight");
  out.tied = s.tied;
  out.output = matrix(s.tied ? "token_embd.weight" : "output.weight", true);
  return out;
}

// ---------------------------------------------------------------------------------------
// The float64 reference forward pass, plain loops over the stored (out, in) rows.
// ---------------------------------------------------------------------------------------

using Vec = std::vector<double>;

inline Vec matvec(const Matrix& w, const Vec& x) {  // y_o = sum_i W[o][i] x_i
  Vec y(w.rows, 0.0);
  for (std::size_t o = 0; o < w.rows; ++o)
    for (std::size_t i = 0; i < w.cols; ++i) y[o] += w.at(o, i) * x[i];
  return y;
}

inline Vec rms_norm(const Vec& x, const Matrix& gain, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(x.size()) + eps);
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * gain.v[i];
  return y;
}

/// Adjacent-pair RoPE of every head of `x` (n_heads * D numbers) at position p.
inline void rope(Vec& x, std::size_t n_heads, std::size_t d, std::size_t p, double theta) {
  for (std::size_t h = 0; h < n_heads; ++h)
    for (std::size_t i = 0; i < d / 2; ++i) {
      const double angle = static_cast<double>(p) * std::pow(theta, -2.0 * double(i) / double(d));
      double& a = x[h * d + 2 * i];
      double& b = x[h * d + 2 * i + 1];
      const double ya = a * std::cos(angle) - b * std::sin(angle);
      const double yb = a * std::sin(angle) + b * std::cos(angle);
      a = ya;
      b = yb;
    }
}

/// The attention sublayer of block l, float64, causal, on normalized inputs h (T rows of
/// d_model) at positions first_position ... first_position + T - 1 that see only each other:
/// Wo . attention(RoPE(Wq h), RoPE(Wk h), Wv h), query head hq reading KV head hq / (H/G).
/// Keys after RoPE (T rows of G*D) are returned through `keys` when it is not null.
inline std::vector<Vec> attention(const Weights& w, std::size_t l, const std::vector<Vec>& h,
                                  std::size_t first_position, std::vector<Vec>* keys = nullptr) {
  const Spec& s = w.spec;
  const std::size_t d = s.head_dim(), t_len = h.size(), group = s.n_heads / s.n_kv_heads;
  const std::string p = "blk." + std::to_string(l) + ".";
  const auto& M = w.m;
  std::vector<Vec> q(t_len), k(t_len), v(t_len), out(t_len);
  for (std::size_t t = 0; t < t_len; ++t) {
    q[t] = matvec(M.at(p + "attn_q.weight"), h[t]);
    k[t] = matvec(M.at(p + "attn_k.weight"), h[t]);
    v[t] = matvec(M.at(p + "attn_v.weight"), h[t]);
    rope(q[t], s.n_heads, d, first_position + t, s.theta);
    rope(k[t], s.n_kv_heads, d, first_position + t, s.theta);
  }
  if (keys) *keys = k;
  for (std::size_t t = 0; t < t_len; ++t) {
    Vec att(s.n_heads * d, 0.0);
    for (std::size_t hq = 0; hq < s.n_heads; ++hq) {
      const std::size_t g = hq / group;
      Vec score(t + 1);
      double m = -INFINITY;
      for (std::size_t j = 0; j <= t; ++j) {
        double dot = 0.0;
        for (std::size_t c = 0; c < d; ++c) dot += q[t][hq * d + c] * k[j][g * d + c];
        score[j] = dot / std::sqrt(double(d));
        m = std::max(m, score[j]);
      }
      double sum = 0.0;
      for (double& sc : score) sum += sc = std::exp(sc - m);
      for (std::size_t j = 0; j <= t; ++j)
        for (std::size_t c = 0; c < d; ++c) att[hq * d + c] += score[j] / sum * v[j][g * d + c];
    }
    out[t] = matvec(M.at(p + "attn_output.weight"), att);
  }
  return out;
}

/// Logits (T, V) of one sequence, float64, causal; keys after RoPE are returned through
/// `keys` (layer, position, G*D) when it is not null.
inline std::vector<Vec> forward(const Weights& w, const std::vector<std::size_t>& tokens,
                                std::vector<std::vector<Vec>>* keys = nullptr) {
  const Spec& s = w.spec;
  const std::size_t t_len = tokens.size();
  const auto& M = w.m;
  std::vector<Vec> x(t_len);
  for (std::size_t t = 0; t < t_len; ++t) {
    const Matrix& e = M.at("token_embd.weight");
    x[t] = Vec(e.v.begin() + long(tokens[t] * s.d_model), e.v.begin() + long((tokens[t] + 1) * s.d_model));
  }
  if (keys) keys->assign(s.n_layers, {});
  for (std::size_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    std::vector<Vec> h(t_len);
    for (std::size_t t = 0; t < t_len; ++t) h[t] = rms_norm(x[t], M.at(p + "attn_norm.weight"), s.eps);
    const std::vector<Vec> o = attention(w, l, h, 0, keys ? &(*keys)[l] : nullptr);
    for (std::size_t t = 0; t < t_len; ++t) {
      for (std::size_t i = 0; i < s.d_model; ++i) x[t][i] += o[t][i];
      const Vec hm = rms_norm(x[t], M.at(p + "ffn_norm.weight"), s.eps);
      Vec gate = matvec(M.at(p + "ffn_gate.weight"), hm);
      const Vec up = matvec(M.at(p + "ffn_up.weight"), hm);
      for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
      const Vec down = matvec(M.at(p + "ffn_down.weight"), gate);
      for (std::size_t i = 0; i < s.d_model; ++i) x[t][i] += down[i];
    }
  }
  std::vector<Vec> logits(t_len);
  const Matrix& out = s.tied ? M.at("token_embd.weight") : M.at("output.weight");
  for (std::size_t t = 0; t < t_len; ++t)
    logits[t] = matvec(out, rms_norm(x[t], M.at("output_norm.weight"), s.eps));
  return logits;
}

}  // namespace tiny
