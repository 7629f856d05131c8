// Lesson 04, part 2: appending tokens, the full cache, reset.
#include "kv_cache.hpp"

#include <array>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include <xtensor/xview.hpp>

#include "attn/testing.hpp"

using namespace attn;

namespace {

// A value that names its place: append number a, batch b, head g, token t, dimension c
// (v adds 0.5 so that K and V differ).
float tag(std::size_t a, std::size_t b, std::size_t g, std::size_t t, std::size_t c) {
  return static_cast<float>(10000 * (a + 1) + 1000 * b + 100 * g + 10 * t + c);
}

Tensor4 tagged(std::size_t a, std::size_t nb, std::size_t ng, std::size_t tn, std::size_t d,
               float plus = 0.0f) {
  Tensor4 x({nb, ng, tn, d});
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g)
      for (std::size_t t = 0; t < tn; ++t)
        for (std::size_t c = 0; c < d; ++c) x(b, g, t, c) = tag(a, b, g, t, c) + plus;
  return x;
}

// Every float of a buffer, stored or not: the view's data() is the buffer's start.
std::vector<float> whole_buffer(const KVView& view, std::size_t size) {
  const float* p = view.data();
  return std::vector<float>(p, p + size);
}

}  // namespace

TEST_CASE("appended tokens land at positions length ... length + Tn - 1, for every batch and head") {
  const std::size_t nb = 2, ng = 3, cap = 12, d = 4;
  KVCache cache(nb, ng, cap, d);
  const std::array<std::size_t, 5> sizes{3, 1, 4, 0, 2};  // prefill, decode, a chunk, nothing, two
  std::vector<std::size_t> append_of, token_in;           // per position: which append, which token
  for (std::size_t a = 0; a < sizes.size(); ++a) {
    CAPTURE(a);
    cache.append(tagged(a, nb, ng, sizes[a], d), tagged(a, nb, ng, sizes[a], d, 0.5f));
    for (std::size_t t = 0; t < sizes[a]; ++t) append_of.push_back(a), token_in.push_back(t);
    REQUIRE(cache.length() == append_of.size());
    const KVView k = cache.keys(), v = cache.values();
    REQUIRE(k.shape() == std::array<std::size_t, 4>{nb, ng, cache.length(), d});
    REQUIRE(v.shape() == std::array<std::size_t, 4>{nb, ng, cache.length(), d});
    std::size_t wrong = 0;
    for (std::size_t b = 0; b < nb; ++b)
      for (std::size_t g = 0; g < ng; ++g)
        for (std::size_t p = 0; p < cache.length(); ++p)
          for (std::size_t c = 0; c < d; ++c) {
            const float want = tag(append_of[p], b, g, token_in[p], c);
            wrong += k(b, g, p, c) != want;
            wrong += v(b, g, p, c) != want + 0.5f;
          }
    CHECK(wrong == 0);
  }
  CHECK(cache.length() == 10);
}

TEST_CASE("append never reallocates: the buffers keep their address up to a full cache") {
  const std::size_t nb = 2, ng = 2, cap = 9, d = 3;
  KVCache cache(nb, ng, cap, d);
  const float* k0 = cache.keys().data();
  const float* v0 = cache.values().data();
  for (std::size_t tn : {4, 1, 1, 3}) {  // 9: exactly full
    cache.append(tagged(0, nb, ng, tn, d), tagged(0, nb, ng, tn, d));
    CHECK(cache.keys().data() == k0);
    CHECK(cache.values().data() == v0);
  }
  CHECK(cache.length() == cap);
  // An element of the view is the buffer's element: (b, g, t, c) is at offset
  // ((b G + g) capacity + t) D + c, whatever the length.
  const KVView k = cache.keys();
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t g = 0; g < ng; ++g)
      for (std::size_t t = 0; t < cap; ++t)
        CHECK(&k(b, g, t, 1) == k0 + ((b * ng + g) * cap + t) * d + 1);
}

TEST_CASE("a view aliases the buffer: after reset and a new append, an old view shows the new tokens") {
  const std::size_t nb = 1, ng = 2, cap = 6, d = 3;
  KVCache cache(nb, ng, cap, d);
  cache.append(tagged(0, nb, ng, 4, d), tagged(0, nb, ng, 4, d, 0.5f));
  const KVView old_k = cache.keys();  // (1, 2, 4, 3), taken before the reset
  cache.reset();
  CHECK(cache.length() == 0);
  CHECK(cache.keys().shape(2) == 0);
  cache.append(tagged(7, nb, ng, 4, d), tagged(7, nb, ng, 4, d, 0.5f));
  for (std::size_t g = 0; g < ng; ++g)
    for (std::size_t t = 0; t < 4; ++t) CHECK(old_k(0, g, t, 2) == tag(7, 0, g, t, 2));
}

TEST_CASE("reset is valid at any time: on a new cache, after a partial fill and on a full one, the length returns to 0") {
  const std::size_t nb = 1, ng = 2, cap = 4, d = 3;
  KVCache cache(nb, ng, cap, d);
  cache.reset();  // nothing to forget
  CHECK(cache.length() == 0);
  for (const std::size_t tn : {std::size_t{3}, cap}) {
    CAPTURE(tn);
    cache.append(tagged(tn, nb, ng, tn, d), tagged(tn, nb, ng, tn, d));
    CHECK(cache.length() == tn);
    cache.reset();
    CHECK(cache.length() == 0);
    CHECK(cache.capacity() == cap);
  }
}

TEST_CASE("reset forgets the tokens and keeps the buffers, and appends start again at position 0") {
  const std::size_t nb = 2, ng = 1, cap = 5, d = 2;
  KVCache cache(nb, ng, cap, d);
  const float* k0 = cache.keys().data();
  cache.append(tagged(0, nb, ng, 5, d), tagged(0, nb, ng, 5, d));
  cache.reset();
  CHECK(cache.length() == 0);
  CHECK(cache.capacity() == cap);
  cache.append(tagged(1, nb, ng, 2, d), tagged(1, nb, ng, 2, d, 0.5f));
  CHECK(cache.length() == 2);
  CHECK(cache.keys().data() == k0);
  for (std::size_t b = 0; b < nb; ++b)
    for (std::size_t t = 0; t < 2; ++t) {
      CHECK(cache.keys()(b, 0, t, 1) == tag(1, b, 0, t, 1));
      CHECK(cache.values()(b, 0, t, 1) == tag(1, b, 0, t, 1) + 0.5f);
    }
  // A full cache again after the reset: the whole capacity is usable.
  cache.append(tagged(2, nb, ng, 3, d), tagged(2, nb, ng, 3, d));
  CHECK(cache.length() == cap);
}

TEST_CASE("appending past capacity is std::out_of_range naming capacity, length and Tn, and leaves the cache unchanged") {
  const std::size_t nb = 2, ng = 2, cap = 6, d = 3, size = nb * ng * cap * d;
  KVCache cache(nb, ng, cap, d);
  cache.append(tagged(0, nb, ng, 4, d), tagged(0, nb, ng, 4, d, 0.5f));
  const std::vector<float> k_before = whole_buffer(cache.keys(), size);
  const std::vector<float> v_before = whole_buffer(cache.values(), size);
  CHECK_THROWS_WITH_AS(cache.append(tagged(1, nb, ng, 3, d), tagged(1, nb, ng, 3, d)),
                       "KVCache::append: no room: capacity 6, length 4, given Tn = 3 new tokens "
                       "(at most 2 fit)",
                       std::out_of_range);
  CHECK(cache.length() == 4);
  CHECK(whole_buffer(cache.keys(), size) == k_before);  // every slot, stored or free
  CHECK(whole_buffer(cache.values(), size) == v_before);
  const Tensor4 none({nb, ng, 0, d});
  cache.append(none, none);  // zero tokens always fit
  CHECK(cache.length() == 4);
  // Exactly the free slots fit; one more token does not.
  cache.append(tagged(2, nb, ng, 2, d), tagged(2, nb, ng, 2, d));
  CHECK(cache.length() == cap);
  const std::vector<float> k_full = whole_buffer(cache.keys(), size);
  CHECK_THROWS_WITH_AS(cache.append(tagged(3, nb, ng, 1, d), tagged(3, nb, ng, 1, d)),
                       "KVCache::append: no room: capacity 6, length 6, given Tn = 1 new tokens "
                       "(at most 0 fit)",
                       std::out_of_range);
  CHECK(cache.length() == cap);
  CHECK(whole_buffer(cache.keys(), size) == k_full);
}

TEST_CASE("new tokens whose B, G or D differ from the cache's, or K and V of different shapes, are std::invalid_argument") {
  const std::size_t nb = 2, ng = 2, cap = 6, d = 3;
  KVCache cache(nb, ng, cap, d);
  cache.append(tagged(0, nb, ng, 1, d), tagged(0, nb, ng, 1, d));
  const Tensor4 good = tagged(1, nb, ng, 2, d);
  CHECK_THROWS_WITH_AS(cache.append(tagged(1, nb + 1, ng, 2, d), good),
                       "KVCache::append: k_new (B, G, Tn, D): expected shape (2, 2, 2, 3), "
                       "given (3, 2, 2, 3)",
                       std::invalid_argument);
  CHECK_THROWS_AS(cache.append(tagged(1, nb, ng + 1, 2, d), good), std::invalid_argument);
  CHECK_THROWS_AS(cache.append(tagged(1, nb, ng, 2, d - 1), good), std::invalid_argument);
  CHECK_THROWS_WITH_AS(cache.append(good, tagged(1, nb, ng, 3, d)),
                       "KVCache::append: v_new (the shape of k_new): expected shape (2, 2, 2, 3), "
                       "given (2, 2, 3, 3)",
                       std::invalid_argument);
  CHECK_THROWS_AS(cache.append(good, tagged(1, nb, ng, 2, d + 1)), std::invalid_argument);
  CHECK(cache.length() == 1);
  CHECK(cache.keys()(1, 1, 0, 2) == tag(0, 1, 1, 0, 2));
}
