/// @file model_cache.hpp
/// @brief Lesson 07: the cache seam. The model's attention reaches the past keys and values
///        of a layer only through LayerCache: append a step's keys and values, attend the
///        step's queries over everything stored, report the length and the bytes. ModelCache
///        holds one per layer. KVCacheLayer (lesson 04's KVCache, attended in place by
///        gqa_attention_cached) is the first implementation; another one (a quantized cache,
///        a paged one, one that rolls back) plugs into the same model through
///        LlamaModel::make_cache without a change to the model.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attn/core.hpp"
#include "kv_cache.hpp"  // lesson 04: KVCache, gqa_attention_cached

namespace attn {

/// The sizes a model's cache is made for: every one of its L layers holds B sequences of
/// G key/value heads of D numbers, with room for `capacity` positions.
struct CacheShape {
  std::size_t layers = 0;    ///< L
  std::size_t batch = 0;     ///< B
  std::size_t kv_heads = 0;  ///< G
  std::size_t capacity = 0;  ///< positions each layer has room for
  std::size_t head_dim = 0;  ///< D
};

/// The past keys and values of one attention layer, as the model uses them: each step
/// appends its keys (after RoPE) and values, then attends its queries over everything
/// stored. The model checks the room (ModelCache::capacity) and the sizes (the
/// ModelCache's shape) before any layer appends, so an implementation may assume both.
class LayerCache {
 public:
  LayerCache() = default;
  LayerCache(const LayerCache&) = delete;
  LayerCache& operator=(const LayerCache&) = delete;
  virtual ~LayerCache() = default;

  /// Stores Tn new positions after the length() stored ones.
  /// @param k_new (B, G, Tn, D) keys, after RoPE
  /// @param v_new (B, G, Tn, D) values
  virtual void append(const Tensor4& k_new, const Tensor4& v_new) = 0;
  /// Causal grouped-query attention of the Tq positions appended last over all stored ones:
  /// query row i sits at position length() - Tq + i and sees keys 0 ... length() - Tq + i;
  /// query head h reads KV head h / (H/G).
  /// @param q (B, H, Tq, D), Tq <= length()
  /// @return  (B, H, Tq, D)
  virtual Tensor4 attend(const Tensor4& q) const = 0;
  /// Positions stored, T.
  virtual std::size_t length() const = 0;
  /// Bytes that hold the stored positions (2 B G T D sizeof(float) for float32 K and V).
  virtual std::size_t bytes_used() const = 0;
};

/// Makes the cache of one layer for a shape: the one choice a different cache changes.
using LayerCacheMaker = std::function<std::unique_ptr<LayerCache>(const CacheShape&)>;

/// Lesson 04's cache behind the seam: a KVCache of (B, G, capacity, D) per layer, read in
/// place by gqa_attention_cached.
class KVCacheLayer final : public LayerCache {
 public:
  /// Allocates K and V of (shape.batch, shape.kv_heads, shape.capacity, shape.head_dim).
  explicit KVCacheLayer(const CacheShape& shape)
      : kv_(shape.batch, shape.kv_heads, shape.capacity, shape.head_dim) {}
  /// The maker for ModelCache (LlamaModel::make_cache's default).
  static std::unique_ptr<LayerCache> make(const CacheShape& shape) {
    return std::make_unique<KVCacheLayer>(shape);
  }

  void append(const Tensor4& k_new, const Tensor4& v_new) override { kv_.append(k_new, v_new); }
  Tensor4 attend(const Tensor4& q) const override { return gqa_attention_cached(q, kv_); }
  std::size_t length() const override { return kv_.length(); }
  std::size_t bytes_used() const override { return kv_.bytes_used(); }

  /// Lesson 04's cache itself: keys(), values(), bytes_allocated().
  const KVCache& kv() const { return kv_; }

 private:
  KVCache kv_;
};

/// A model's cache: one LayerCache per layer, all made for one shape, advancing together
/// (every step appends the same positions to every layer).
class ModelCache {
 public:
  /// shape.layers layer caches, each make_layer(shape).
  /// @throws std::invalid_argument if a size of the shape is 0 or make_layer returns none.
  explicit ModelCache(const CacheShape& shape, const LayerCacheMaker& make_layer = KVCacheLayer::make)
      : shape_(shape) {
    const CacheShape& s = shape;
    require(s.layers > 0 && s.batch > 0 && s.kv_heads > 0 && s.capacity > 0 && s.head_dim > 0,
            "ModelCache",
            "every size must be positive, given layers " + std::to_string(s.layers) + ", batch " +
                std::to_string(s.batch) + ", kv_heads " + std::to_string(s.kv_heads) +
                ", capacity " + std::to_string(s.capacity) + ", head_dim " +
                std::to_string(s.head_dim));
    for (std::size_t l = 0; l < s.layers; ++l) {
      layers_.push_back(make_layer(s));
      require(layers_.back() != nullptr, "ModelCache",
              "the maker returned no cache for layer " + std::to_string(l));
    }
  }

  /// The sizes it was made for.
  const CacheShape& shape() const { return shape_; }
  /// Number of layers, L.
  std::size_t layers() const { return layers_.size(); }
  /// The cache of layer l. @throws std::out_of_range if l >= layers().
  LayerCache& layer(std::size_t l) { return *layers_[checked(l)]; }
  /// The cache of layer l. @throws std::out_of_range if l >= layers().
  const LayerCache& layer(std::size_t l) const { return *layers_[checked(l)]; }
  /// Positions stored: layer 0's (after a whole step every layer holds as many).
  std::size_t length() const { return layers_.front()->length(); }
  /// Positions each layer has room for.
  std::size_t capacity() const { return shape_.capacity; }
  /// Sum of bytes_used() over the layers.
  std::size_t bytes_used() const {
    std::size_t n = 0;
    for (const auto& layer : layers_) n += layer->bytes_used();
    return n;
  }

 private:
  std::size_t checked(std::size_t l) const {
    require_in_range(l < layers_.size(), "ModelCache::layer",
                     "expected a layer < " + std::to_string(layers_.size()) + ", given " +
                         std::to_string(l));
    return l;
  }

  CacheShape shape_;
  std::vector<std::unique_ptr<LayerCache>> layers_;
};

}  // namespace attn
