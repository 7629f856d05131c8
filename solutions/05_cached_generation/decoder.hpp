/// @file decoder.hpp
/// @brief Lesson 05: cached generation. A small decoder-only transformer with random
///        weights from a seed, run two ways: the uncached forward over every position,
///        and the cached path (prefill of the prompt, then one decode step per token)
///        that reads past keys and values from lesson 04's KV cache. Both give the same
///        logits; greedy generation on both paths gives the same tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "attn/core.hpp"
#include "gqa.hpp"
#include "kv_cache.hpp"

namespace attn {

/// Token ids of a batch of sequences, (B, T).
using Tokens = xt::xtensor<std::size_t, 2>;
/// One token id per sequence of a batch, (B): the input of a decode step.
using TokenColumn = xt::xtensor<std::size_t, 1>;
/// A vector of channel gains, (C).
using Tensor1 = xt::xtensor<float, 1>;

/// Called on the projected queries and keys of every layer, right after the projections
/// and before the keys enter the KV cache. Row t of q and k belongs to the token at
/// absolute position first_position + t. Lesson 06 sets it to rotary embeddings (RoPE).
/// @param q (B, H, T, D)
/// @param k (B, G, T, D)
using PositionHook = std::function<void(Tensor4& q, Tensor4& k, std::size_t first_position)>;

/// Sizes of the decoder and the seed of its weights.
struct DecoderConfig {
  std::size_t vocab = 256;        ///< V, token ids 0 ... V-1
  std::size_t d_model = 64;       ///< width of the residual stream
  std::size_t n_heads = 4;        ///< H, query heads; D = d_model / H
  std::size_t n_kv_heads = 2;     ///< G, key/value heads, dividing H
  std::size_t n_layers = 2;       ///< L, transformer blocks
  std::size_t d_ff = 128;         ///< hidden width of the SwiGLU MLP
  std::size_t max_seq_len = 64;   ///< most positions a sequence may have (prompt + generated)
  std::uint64_t seed = 1;         ///< every weight is drawn from it
};

/// The weights of one pre-norm block.
struct DecoderLayer {
  Tensor1 attn_norm;   ///< (d_model) RMSNorm gain before attention
  GQAWeights attn;     ///< wq (d_model, H*D), wk and wv (d_model, G*D), wo (H*D, d_model)
  Tensor1 mlp_norm;    ///< (d_model) RMSNorm gain before the MLP
  Tensor2 w_gate;      ///< (d_model, d_ff)
  Tensor2 w_up;        ///< (d_model, d_ff)
  Tensor2 w_down;      ///< (d_ff, d_model)
};

/// y = x W for a batch of rows: (M, K) x (K, N) -> (M, N). Every element is the sum
/// over k in order 0 ... K-1, as in lesson 01's matmul, so a row's result does not depend
/// on which other rows are in the batch; blocked so that the compiler vectorizes it.
/// @throws std::invalid_argument if the inner dimensions differ.
Tensor2 linear(const Tensor2& x, const Tensor2& w);

/// RMSNorm of every vector of x: y = x / sqrt(mean(x^2) + 1e-5) * gain.
/// @param x    (B, T, C)
/// @param gain (C)
/// @return     (B, T, C)
/// @throws std::invalid_argument if the gain has not C elements.
Tensor3 rms_norm(const Tensor3& x, const Tensor1& gain);

/// Greedy choice: for every sequence, the id of its largest logit (the lowest id among
/// equal maxima).
/// @param logits (B, V), the logits of each sequence's last position
/// @return       (B)
/// @throws std::invalid_argument if V is 0.
TokenColumn greedy_next(const Tensor2& logits);

/// Greedy choice from the last position of each sequence: greedy_next(logits[:, T-1, :]).
/// @param logits (B, T, V)
/// @return       (B)
/// @throws std::invalid_argument if T or V is 0.
TokenColumn greedy_next(const Tensor3& logits);

/// The cached attention of one layer: appends the new keys and values to the layer's
/// cache, then lets the new queries attend, causally, over everything the cache holds
/// (earlier tokens and the new ones), reading it in place.
/// @param q     (B, H, Tn, D) queries of the Tn new tokens
/// @param k     (B, G, Tn, D) their keys, after the position hook
/// @param v     (B, G, Tn, D) their values
/// @param cache the layer's cache; holds Tn more tokens afterwards
/// @return      (B, H, Tn, D)
/// @throws std::invalid_argument if the shapes disagree with each other or with the cache.
/// @throws std::out_of_range if the cache has no room for Tn more tokens (it is then unchanged).
Tensor4 attend_cached(const Tensor4& q, const Tensor4& k, const Tensor4& v, KVCache& cache);

/// A decoder-only transformer (token embedding, L pre-norm blocks of GQA attention and a
/// SwiGLU MLP, final RMSNorm, unembedding), with weights drawn from config.seed.
class Decoder {
 public:
  /// Draws every weight from config.seed, uniform in +-sqrt(3 / fan_in) (unit variance
  /// outputs for unit variance inputs), so that activations and logits are O(1).
  /// @throws std::invalid_argument if a size is 0, H does not divide d_model or G does not divide H.
  explicit Decoder(const DecoderConfig& config);

  /// The sizes it was built with.
  const DecoderConfig& config() const { return config_; }
  /// Head dimension D = d_model / H.
  std::size_t head_dim() const { return config_.d_model / config_.n_heads; }
  /// The weights of block l (for tests and experiments). @throws std::out_of_range if l >= L.
  const DecoderLayer& layer(std::size_t l) const;

  /// Installs the position hook (none by default; an empty function removes it). Every
  /// forward path calls it on every layer's q and k with the absolute position of row 0.
  void set_position_hook(PositionHook hook) { hook_ = std::move(hook); }

  /// An empty cache for this model: L layers of (batch, G, max_seq_len, D).
  MultiLayerKVCache make_cache(std::size_t batch) const;

  /// Uncached forward over every position, causal: row t sees tokens 0 ... t.
  /// @param tokens (B, T), 1 <= T <= max_seq_len
  /// @return       logits (B, T, V)
  /// @throws std::invalid_argument if T is 0.
  /// @throws std::out_of_range if T > max_seq_len or a token id is >= V.
  Tensor3 forward(const Tokens& tokens) const;

  /// Cached forward of T new tokens at positions cache.length() ... cache.length() + T - 1:
  /// their keys and values are appended to every layer's cache. On an empty cache it is
  /// the prefill of a prompt; its logits equal forward(tokens).
  /// @param tokens (B, T), T >= 1
  /// @param cache  L layers, batch B; holds T more tokens afterwards
  /// @return       logits (B, T, V)
  /// @throws std::invalid_argument if T is 0 or the cache does not fit the model and batch.
  /// @throws std::out_of_range if cache.length() + T exceeds max_seq_len or the cache's
  ///         capacity (the cache is then unchanged), or a token id is >= V.
  Tensor3 prefill(const Tokens& tokens, MultiLayerKVCache& cache) const;

  /// One decode step: the token of each sequence at position cache.length(), attending
  /// over the cache; appends its keys and values. Its logits equal the last row of
  /// forward() over the whole sequence so far.
  /// @param last  (B) one token per sequence
  /// @param cache L layers, batch B; holds one more token afterwards
  /// @return      logits (B, V)
  /// @throws std::invalid_argument if the cache does not fit the model and batch.
  /// @throws std::out_of_range if the cache is full (length() == max_seq_len or its
  ///         capacity; it is then unchanged) or a token id is >= V.
  Tensor2 decode_step(const TokenColumn& last, MultiLayerKVCache& cache) const;

  /// Greedy generation without a cache: n_new times, forward() over the whole sequence so
  /// far and append the argmax of the last position.
  /// @param prompt (B, P), P >= 1
  /// @param n_new  tokens to generate
  /// @return       the generated tokens, (B, n_new)
  /// @throws std::invalid_argument if P is 0.
  /// @throws std::out_of_range if P + n_new > max_seq_len (before any work).
  Tokens generate_uncached(const Tokens& prompt, std::size_t n_new) const;

  /// Greedy generation with the cache: prefill of the prompt, then one decode step per
  /// generated token. Every generated token is fed back, the last one included, so the
  /// cache holds the prompt and all n_new generated tokens afterwards. Same tokens as
  /// generate_uncached.
  /// @param prompt (B, P), P >= 1
  /// @param n_new  tokens to generate
  /// @param cache  empty or holding an earlier part of the same sequences; holds
  ///               P + n_new more tokens afterwards
  /// @return       the generated tokens, (B, n_new)
  /// @throws std::invalid_argument if P is 0 or the cache does not fit the model and batch.
  /// @throws std::out_of_range if cache.length() + P + n_new exceeds max_seq_len or the
  ///         cache's capacity (before any work: the cache is then unchanged).
  Tokens generate_cached(const Tokens& prompt, std::size_t n_new, MultiLayerKVCache& cache) const;

 private:
  /// Embedding, blocks, final norm and unembedding of T tokens whose first sits at
  /// first_position. Without a cache, attention is causal over these T tokens alone;
  /// with one, attend_cached appends to and reads from cache->layer(l).
  /// @return logits (B, T, V)
  Tensor3 run(const Tokens& tokens, std::size_t first_position, MultiLayerKVCache* cache) const;
  /// Checks that `cache` belongs to this model and a batch of `batch` sequences, and has
  /// room for n_new more positions (std::out_of_range otherwise, naming `where`).
  void require_room(const char* where, const MultiLayerKVCache& cache, std::size_t batch,
                    std::size_t n_new) const;

  DecoderConfig config_;
  Tensor2 embedding_;                 // (V, d_model)
  std::vector<DecoderLayer> layers_;  // L blocks
  Tensor1 final_norm_;                // (d_model)
  Tensor2 unembedding_;               // (d_model, V)
  PositionHook hook_;                 // empty: no position information but the causal mask
};

}  // namespace attn
