// Lesson 05, part 1: the cached attention of one layer appends, then attends over the cache.
#include "decoder.hpp"

#include <xtensor/xmanipulation.hpp>
#include <xtensor/xview.hpp>

#include "attn/testing.hpp"

using namespace attn;

TEST_CASE("attend_cached appends the new keys and values, then attends over the whole cache") {
  // A prompt of 5 tokens, a chunk of 3, then two single decode steps: each call must equal
  // causal GQA over everything appended so far, with the new queries at the end.
  const std::size_t nb = 2, nh = 8, d = 4;
  for (std::size_t ng : {std::size_t{8}, std::size_t{2}, std::size_t{1}}) {
    CAPTURE(ng);
    KVCache cache(nb, ng, 16, d);
    Tensor4 k_all({nb, ng, 0, d}), v_all({nb, ng, 0, d});
    std::size_t seed = 500;
    for (std::size_t tn : {std::size_t{5}, std::size_t{3}, std::size_t{1}, std::size_t{1}}) {
      CAPTURE(tn);
      const Tensor4 q = random_uniform<4>({nb, nh, tn, d}, ++seed);
      const Tensor4 k = random_uniform<4>({nb, ng, tn, d}, ++seed);
      const Tensor4 v = random_uniform<4>({nb, ng, tn, d}, ++seed);
      k_all = xt::concatenate(xt::xtuple(k_all, k), 2);
      v_all = xt::concatenate(xt::xtuple(v_all, v), 2);
      const std::size_t before = cache.length();
      const Tensor4 got = attend_cached(q, k, v, cache);
      CHECK(cache.length() == before + tn);
      const Tensor4 stored_k = cache.keys(), stored_v = cache.values();
      CHECK(stored_k == k_all);  // appended exactly once, in order
      CHECK(stored_v == v_all);
      const auto ref = ref::attention(q, k_all, v_all, true, before);
      ATTN_CHECK_CLOSE(got, ref, tol_relative_to_max(1e-5, ref));
    }
  }
}

TEST_CASE("attend_cached: a decode query sees every cached key, not only the newest") {
  // Values of cached position j are all j, so the output is the attention-weighted mean
  // position. With only the newest key it would be exactly the newest position.
  const std::size_t nb = 1, nh = 2, ng = 1, d = 4, t = 6;
  KVCache cache(nb, ng, 8, d);
  Tensor4 v({nb, ng, t, d});
  for (std::size_t j = 0; j < t; ++j) xt::view(v, 0, 0, j) = static_cast<float>(j);
  const Tensor4 k = random_uniform<4>({nb, ng, t, d}, 511, -0.1f, 0.1f);  // nearly uniform weights
  auto positions = [](const Tensor4& x, std::size_t from, std::size_t to) {
    return Tensor4(xt::view(x, xt::all(), xt::all(), xt::range(from, to)));
  };
  attend_cached(random_uniform<4>({nb, nh, t - 1, d}, 512), positions(k, 0, t - 1),
                positions(v, 0, t - 1), cache);  // prefill of positions 0 ... t-2
  const Tensor4 out = attend_cached(random_uniform<4>({nb, nh, 1, d}, 513),
                                    positions(k, t - 1, t), positions(v, t - 1, t), cache);
  // Close to the mean position (t-1)/2 = 2.5, far from the newest, 5.
  for (std::size_t h = 0; h < nh; ++h) CHECK(out(0, h, 0, 0) == doctest::Approx(2.5).epsilon(0.1));
}

TEST_CASE("attend_cached past the capacity is std::out_of_range and leaves the cache unchanged") {
  const std::size_t nb = 1, nh = 2, ng = 1, d = 4;
  KVCache cache(nb, ng, 4, d);
  attend_cached(random_uniform<4>({nb, nh, 3, d}, 521), random_uniform<4>({nb, ng, 3, d}, 522),
                random_uniform<4>({nb, ng, 3, d}, 523), cache);
  CHECK_THROWS_AS(attend_cached(random_uniform<4>({nb, nh, 2, d}, 524),
                                random_uniform<4>({nb, ng, 2, d}, 525),
                                random_uniform<4>({nb, ng, 2, d}, 526), cache),
                  std::out_of_range);
  CHECK(cache.length() == 3);
}
