/// @file llama_model.hpp
/// @brief Lesson 07: a real model. SmolLM2-135M-Instruct (9 query heads, 3 KV heads,
///        30 layers) read from its GGUF file and run on the code of lessons 01-06:
///        RMSNorm, the Q/K/V projections, RoPE in GGUF's adjacent pairing, grouped-query
///        attention over the KV cache (through the seam of model_cache.hpp), the SwiGLU MLP
///        and the residual stream; then the generation loop (greedy or sampled) and the
///        negative log-likelihood that perplexity is made of. Any Llama-architecture GGUF
///        with F32, F16, Q4_0, Q4_1 or Q8_0 tensors loads the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "attn/core.hpp"
#include "decoder.hpp"      // lesson 05: Tokens, TokenColumn, Tensor1, greedy_next
#include "gguf.hpp"         // common/gguf: the file reader
#include "model_cache.hpp"  // the cache seam: LayerCache, ModelCache, KVCacheLayer (lesson 04)
#include "rope.hpp"         // lesson 06: apply_rope

namespace attn {

/// The sizes and constants of a Llama-architecture model, as its GGUF metadata states them.
struct LlamaConfig {
  std::size_t vocab = 0;           ///< V: rows of token_embd.weight
  std::size_t d_model = 0;         ///< llama.embedding_length
  std::size_t n_layers = 0;        ///< llama.block_count
  std::size_t n_heads = 0;         ///< H: llama.attention.head_count
  std::size_t n_kv_heads = 0;      ///< G: llama.attention.head_count_kv
  std::size_t head_dim = 0;        ///< D = d_model / H
  std::size_t d_ff = 0;            ///< llama.feed_forward_length
  std::size_t context_length = 0;  ///< llama.context_length: the longest sequence it was trained on
  double rope_theta = 10000.0;     ///< llama.rope.freq_base (10000 when the file does not say)
  float rms_eps = 1e-5f;           ///< llama.attention.layer_norm_rms_epsilon
};

/// What the metadata of a Llama GGUF file says, unchecked: every key in the fields' comments
/// (each size read with read_size, which refuses 0), D = d_model / H, the vocabulary from
/// the rows of token_embd.weight, RoPE's base (10000 when absent) and the epsilon.
/// @throws gguf::FormatError if a required key is missing or has another type.
/// @throws std::invalid_argument if a size is 0, naming its key.
LlamaConfig read_llama_config(const gguf::File& file);

/// The config of a Llama GGUF file: general.architecture checked, read_llama_config, then
/// every rule the model needs to run (one check each, in check_llama_config), then every
/// key this code does not read but assumes (check_llama_assumptions): each may be absent or
/// must say what the code does.
/// @throws gguf::FormatError if a required key is missing or has another type.
/// @throws std::invalid_argument if general.architecture is not "llama", a size is 0,
///         H does not divide d_model, G does not divide H, D is odd (RoPE rotates pairs),
///         the epsilon or RoPE's base is not a finite number > 0, llama.rope.dimension_count,
///         llama.attention.key_length or value_length is not D (RoPE over the whole head),
///         llama.vocab_size is not the rows of token_embd.weight, llama.expert_count is not
///         0, or RoPE is scaled (llama.rope.scaling.type other than "none",
///         llama.rope.scaling.factor or llama.rope.scale_linear other than 0 or 1); the
///         message names the key, expected and given.
LlamaConfig llama_config(const gguf::File& file);

/// RMSNorm of every vector of x: y = x / sqrt(mean(x^2) + eps) * gain, with the sum of
/// squares accumulated in float32 (as llama.cpp does).
/// @param x    (B, T, C)
/// @param gain (C)
/// @param eps  added to the mean square; the model's rms_eps
/// @return     (B, T, C)
/// @throws std::invalid_argument if the gain has not C elements.
Tensor3 rms_norm(const Tensor3& x, const Tensor1& gain, float eps);

/// y = x W for a batch of rows, (M, K) x (K, N) -> (M, N), by OpenBLAS's sgemm: the
/// model-sized products of this lesson. Unlike lesson 05's linear, the order of the
/// additions may depend on M, so a row's result can differ in the last bits between a
/// prefill and a decode step.
/// @throws std::invalid_argument if the inner dimensions differ.
Tensor2 linear_blas(const Tensor2& x, const Tensor2& w);

/// The SwiGLU MLP of Llama: down(silu(x W_gate) * (x W_up)), silu(a) = a / (1 + e^-a).
/// @param x      (B, T, d_model)
/// @param w_gate (d_model, d_ff)
/// @param w_up   (d_model, d_ff)
/// @param w_down (d_ff, d_model)
/// @return       (B, T, d_model)
/// @throws std::invalid_argument if the shapes disagree.
Tensor3 swiglu(const Tensor3& x, const Tensor2& w_gate, const Tensor2& w_up, const Tensor2& w_down);

/// The weights of one block, every matrix stored (in, out) as in lessons 03 and 05: y = x W.
struct LlamaLayer {
  Tensor1 attn_norm;  ///< (d_model)      blk.N.attn_norm.weight
  Tensor2 wq;         ///< (d_model, H*D) blk.N.attn_q.weight, adjacent-pair RoPE layout
  Tensor2 wk;         ///< (d_model, G*D) blk.N.attn_k.weight, adjacent-pair RoPE layout
  Tensor2 wv;         ///< (d_model, G*D) blk.N.attn_v.weight
  Tensor2 wo;         ///< (H*D, d_model) blk.N.attn_output.weight
  Tensor1 mlp_norm;   ///< (d_model)      blk.N.ffn_norm.weight
  Tensor2 w_gate;     ///< (d_model, d_ff) blk.N.ffn_gate.weight
  Tensor2 w_up;       ///< (d_model, d_ff) blk.N.ffn_up.weight
  Tensor2 w_down;     ///< (d_ff, d_model) blk.N.ffn_down.weight
};

/// Every weight of a model, dequantized to float32.
struct LlamaWeights {
  LlamaConfig config;              ///< the sizes the tensors have
  Tensor2 embedding;               ///< (V, d_model) token_embd.weight: row id is token id's vector
  std::vector<LlamaLayer> layers;  ///< L blocks
  Tensor1 final_norm;              ///< (d_model) output_norm.weight
  Tensor2 output;                  ///< (d_model, V) output.weight, or the embedding transposed
                                   ///< when the file has none (tied embeddings, as SmolLM2)
  bool tied = false;               ///< true if output is the transposed embedding
};

/// Reads llama_config(file) and every tensor the config asks for, dequantized and
/// transposed from GGUF's (out, in) rows into (in, out). (The reader has refused a NaN or
/// infinite weight, block scale or minimum when it opened the file.)
/// @throws std::out_of_range naming a tensor that is missing.
/// @throws std::invalid_argument naming a tensor whose shape is not the config's, or one
///         that the model does not use (a bias, rope_freqs.weight, experts, a block past
///         block_count): running without it would be another model.
/// @throws what llama_config and the dequantizer throw.
LlamaWeights load_llama(const gguf::File& file);

/// Number of parameters of the weights (the output matrix counted once when tied).
std::size_t parameter_count(const LlamaWeights& w);

/// The same model with its G KV heads repeated to H (multi-head attention): the K and V
/// projection columns of KV head g are copied to heads g*(H/G) ... g*(H/G) + H/G - 1, the
/// order in which query head h reads KV head h / (H/G). Its logits equal the original's;
/// its cache is H/G times larger.
LlamaWeights expand_kv_heads(const LlamaWeights& w);

/// The same model with fewer KV heads, each the mean of the K and V projections of the
/// n_kv_heads' consecutive heads it replaces (Ainslie et al. 2023, "GQA", section 2.1;
/// with n_kv_heads = 1 it is multi-query attention). No retraining: the outputs drift.
/// @throws std::invalid_argument if n_kv_heads is 0 or does not divide the model's G.
LlamaWeights pool_kv_heads(const LlamaWeights& w, std::size_t n_kv_heads);

/// A Llama-architecture decoder: embedding, L blocks of
///   x += Wo . attention(RoPE(Wq . rms_norm(x)), RoPE(Wk . rms_norm(x)), Wv . rms_norm(x))
///   x += swiglu(rms_norm(x))
/// then rms_norm and the output projection to V logits.
class LlamaModel {
 public:
  /// Takes the weights (move them in: they are hundreds of MiB).
  /// @param weights every tensor of the model, as load_llama returns them
  /// @throws std::invalid_argument if their shapes disagree with their config.
  explicit LlamaModel(LlamaWeights weights);

  /// The sizes of the model.
  const LlamaConfig& config() const { return w_.config; }
  /// Every weight (for experiments: expand_kv_heads, pool_kv_heads, parameter_count).
  const LlamaWeights& weights() const { return w_; }

  /// An empty cache for this model: L layer caches of shape (L, batch, G, capacity, D).
  /// @param batch      sequences it holds, B
  /// @param capacity   positions it holds per sequence
  /// @param make_layer makes each layer's cache: lesson 04's KVCache by default
  /// @return           the cache, length 0
  /// @throws std::invalid_argument if batch or capacity is 0.
  ModelCache make_cache(std::size_t batch, std::size_t capacity,
                        const LayerCacheMaker& make_layer = KVCacheLayer::make) const;

  /// Uncached forward over every position, causal: row t sees tokens 0 ... t.
  /// @param tokens (B, T), T >= 1
  /// @return       logits (B, T, V)
  /// @throws std::invalid_argument if T is 0; std::out_of_range if an id is >= V.
  Tensor3 forward(const Tokens& tokens) const;

  /// Cached forward of T new tokens at positions cache.length() ... cache.length() + T - 1;
  /// their keys (after RoPE) and values are appended to every layer's cache. On an empty
  /// cache it is the prefill of a prompt, and its logits equal forward(tokens).
  /// @param tokens (B, T), T >= 1
  /// @param cache  L layers of batch B; holds T more tokens afterwards
  /// @return       logits (B, T, V)
  /// @throws std::invalid_argument if T is 0 or the cache's shape does not fit the model and
  ///         batch.
  /// @throws std::out_of_range if the cache has no room for T more (it is then unchanged)
  ///         or an id is >= V.
  Tensor3 prefill(const Tokens& tokens, ModelCache& cache) const;

  /// One decode step: one token per sequence at position cache.length().
  /// @param last  (B) one token per sequence
  /// @param cache L layers of batch B; holds one more token afterwards
  /// @return      logits (B, V)
  /// @throws as prefill.
  Tensor2 decode_step(const TokenColumn& last, ModelCache& cache) const;

  /// The attention sublayer of a block on its normalized input, row t at position
  /// first_position + t: the Q/K/V projections, RoPE on q and k, grouped-query attention
  /// (with a cache: append the new keys and values, then attend over every stored position;
  /// without one: causal over these T rows alone), the output projection.
  /// @param h              (B, T, d_model): RMSNorm of the residual stream
  /// @param w              the block's weights, one of weights().layers
  /// @param first_position the position of row 0
  /// @param cache          the block's layer cache, or nullptr
  /// @return               (B, T, d_model)
  Tensor3 attention(const Tensor3& h, const LlamaLayer& w, std::size_t first_position,
                    LayerCache* cache) const;

 private:
  /// Embedding, blocks, final norm and output projection of T tokens starting at
  /// first_position; with a cache, block l appends to and reads from cache->layer(l).
  Tensor3 run(const Tokens& tokens, std::size_t first_position, ModelCache* cache) const;
  /// Checks that the cache's shape fits this model and a batch of `batch` sequences
  /// (std::invalid_argument) and that it has room for n_new more positions
  /// (std::out_of_range), naming `where`.
  void check_cache(const char* where, const ModelCache& cache, std::size_t batch,
                   std::size_t n_new) const;

  LlamaWeights w_;
};

/// How the next token is chosen from a position's logits.
struct Sampling {
  float temperature = 0.0f;  ///< 0: greedy (argmax); otherwise softmax(logits / temperature)
  float top_p = 1.0f;        ///< nucleus: keep the fewest most likely tokens whose probability
                             ///< sums to at least top_p, in (0, 1]
};

/// The id of the largest logit, the lowest id among equal maxima.
/// @param logits (V), V >= 1
std::size_t greedy_token(const Tensor1& logits);

/// softmax(logits / temperature) in float64, the maximum subtracted before the exponentials
/// (finite at logits of 1e4).
/// @param logits      (V), V >= 1
/// @param temperature > 0
/// @return            V probabilities summing to 1
std::vector<double> tempered_probabilities(const Tensor1& logits, float temperature);

/// The nucleus of top-p sampling: the ids sorted by probability, largest first (the lower id
/// first among equals), cut after the shortest prefix whose probabilities sum to at least
/// top_p; at least one id.
/// @param p     V >= 1 probabilities
/// @param top_p in (0, 1]
/// @return      the kept ids, most likely first
std::vector<std::size_t> top_p_nucleus(const std::vector<double>& p, double top_p);

/// Draws from the nucleus renormalized: the first id of `nucleus` at which the running sum
/// of its probabilities exceeds u times their sum.
/// @param p       V probabilities
/// @param nucleus ids into p, at least one, in the order to walk
/// @param u       in [0, 1)
std::size_t pick_token(const std::vector<double>& p, const std::vector<std::size_t>& nucleus,
                       double u);

/// Throws std::range_error (a std::runtime_error) "<where>: N of V logits are not finite,
/// the first at id I (NaN): ..." unless every logit is finite. A NaN or an infinity in a
/// weight, or an overflow, makes every later logit NaN; greedy would then pick id 0 (often
/// an end-of-text token) and generation would end silently.
/// @param logits (V) of one position
/// @param where  names the caller, the step and the position
void require_finite_logits(const Tensor1& logits, const std::string& where);

/// Picks a token id from one position's logits: greedy_token when the temperature is 0;
/// otherwise p = tempered_probabilities(logits, temperature) and pick_token(p,
/// top_p_nucleus(p, top_p), u).
/// @param logits (V)
/// @param s      temperature >= 0 and top_p in (0, 1]
/// @param u      a uniform number in [0, 1): the randomness, supplied by the caller
/// @throws std::invalid_argument if V is 0, the temperature is negative or not finite,
///         top_p is outside (0, 1], u is outside [0, 1), or a logit is not finite.
std::size_t sample_next(const Tensor1& logits, const Sampling& s, double u);

/// The negative log-likelihood, in nats, of each next token: for t = first ... T - 2,
/// -log softmax(logits[t])[tokens[t + 1]], computed in float64 (log-sum-exp with the
/// maximum subtracted). Perplexity is exp of their mean.
/// @param logits (T, V) of one sequence
/// @param tokens the T ids that produced them
/// @param first  the first position scored (llama.cpp's perplexity scores the second half
///               of each chunk: first = T / 2)
/// @return       T - 1 - first values
/// @throws std::invalid_argument if tokens has not T ids or first >= T - 1; std::out_of_range
///         if an id is >= V.
std::vector<double> next_token_nll(const Tensor2& logits, const std::vector<std::size_t>& tokens,
                                   std::size_t first);

/// The next-token NLLs of one sequence under the model: forward(tokens) without a cache,
/// the logits of every scored position checked finite, then next_token_nll. The perplexity
/// of a text is exp of the mean over its chunks (section 8 of the README).
/// @param model  the model
/// @param tokens T >= 2 ids: one chunk
/// @param first  the first position scored
/// @return       T - 1 - first values
/// @throws std::range_error naming the position whose logits are not finite.
/// @throws std::invalid_argument if first >= T - 1; what forward throws.
std::vector<double> sequence_nll(const LlamaModel& model, const std::vector<std::size_t>& tokens,
                                 std::size_t first);

/// What generate() measured.
struct GenerationStats {
  std::size_t prompt_tokens = 0;  ///< tokens of the prompt, run in one prefill
  std::size_t new_tokens = 0;     ///< tokens generated (the returned ones)
  double prefill_seconds = 0.0;  ///< the prompt's forward pass
  double decode_seconds = 0.0;   ///< every decode step together
};

/// Generation of one sequence with the cache: prefill of the prompt, then one decode step per
/// token, each chosen by sample_next with its own u drawn from `seed`. Stops after
/// max_new_tokens, at a token of `stop`, or when on_token returns false; the stop token is
/// returned but not fed back, and so is the last token when max_new_tokens is reached: the
/// cache holds the prompt and all new tokens but the last.
/// @param model          the model
/// @param prompt         token ids, at least one
/// @param max_new_tokens the most tokens to generate
/// @param cache          batch 1, with room for the prompt and max_new_tokens (any LayerCache)
/// @param sampling       greedy (the default), or temperature and top-p
/// @param seed           seeds the uniform numbers sample_next draws from
/// @param stop           ids that end generation (e.g. <|im_end|>)
/// @param on_token       called with each new token as soon as it is chosen (may be empty);
///                       returning false stops generation
/// @param stats          if not null, receives the counts and times
/// @return the new tokens
/// @throws std::invalid_argument if the prompt is empty; std::out_of_range if prompt plus
///         max_new_tokens do not fit in the cache (checked before any work);
///         std::range_error if the logits of a step are not finite, naming the step (k for
///         new token k) and the position they were computed at (prompt size - 1 + k).
std::vector<std::size_t> generate(const LlamaModel& model, const std::vector<std::size_t>& prompt,
                                  std::size_t max_new_tokens, ModelCache& cache,
                                  const Sampling& sampling = {}, std::uint64_t seed = 0,
                                  const std::vector<std::size_t>& stop = {},
                                  const std::function<bool(std::size_t)>& on_token = {},
                                  GenerationStats* stats = nullptr);

/// Greedy generation without a cache: n_new times, forward() over the whole sequence so far.
/// The slow path that generate() must agree with.
/// @param model  the model
/// @param prompt token ids, at least one
/// @param n_new  tokens to generate
/// @return       the n_new generated tokens
/// @throws std::invalid_argument if the prompt is empty; std::range_error as generate.
std::vector<std::size_t> generate_uncached(const LlamaModel& model,
                                           const std::vector<std::size_t>& prompt,
                                           std::size_t n_new);

}  // namespace attn
