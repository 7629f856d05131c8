// Lesson 08, part 1: the matrix product on the device, one thread per element,
// then in tiles staged in shared memory.
#include "cuda_basics.hpp"

#include <algorithm>
#include <span>
#include <vector>

#include "attention.hpp"
#include "attn/device_buffer.hpp"
#include "attn/testing.hpp"
#include "kernels.hpp"

using namespace attn;

namespace {

// Odd sizes: partial tiles at every edge, a single row, a single inner term.
constexpr std::array<std::array<std::size_t, 3>, 6> kShapes = {
    {{1, 1, 1}, {37, 53, 29}, {16, 16, 16}, {64, 17, 33}, {1, 300, 2}, {100, 1, 7}}};

/// Small integers in [-3, 3]: every product and sum is exact in float32.
Tensor2 small_integers(std::size_t rows, std::size_t cols, std::size_t seed) {
  Tensor2 t({rows, cols});
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<float>(static_cast<int>((i * 7 + seed) % 7) - 3);
  return t;
}

void check_against_reference(MatmulKernel kernel) {
  for (const auto& [m, k, n] : kShapes) {
    CAPTURE(m);
    CAPTURE(k);
    CAPTURE(n);
    const Tensor2 a = random_uniform<2>({m, k}, 801 + m);
    const Tensor2 b = random_uniform<2>({k, n}, 802 + n);
    // |a|, |b| <= 1, so each output sums at most k terms of magnitude <= 1.
    ATTN_CHECK_CLOSE(matmul_gpu(a, b, kernel), ref::matmul(a, b), tol_reduction(k, double(k)));
  }
}

/// The kernel alone: a and b copied to device buffers by hand and the launcher of
/// kernels.hpp called directly, without matmul_gpu (TODO 08.1).
Tensor2 launch_alone(MatmulKernel kernel, const Tensor2& a, const Tensor2& b) {
  const attn::cuda::DeviceBuffer<float> da(std::span<const float>(a.data(), a.size()));
  const attn::cuda::DeviceBuffer<float> db(std::span<const float>(b.data(), b.size()));
  attn::cuda::DeviceBuffer<float> dc(a.shape(0) * b.shape(1));
  const int m = static_cast<int>(a.shape(0)), k = static_cast<int>(a.shape(1));
  const int n = static_cast<int>(b.shape(1));
  if (kernel == MatmulKernel::naive) {
    gpu::launch_matmul_naive(da.get(), db.get(), dc.get(), m, k, n);
  } else {
    gpu::launch_matmul_tiled(da.get(), db.get(), dc.get(), m, k, n);
  }
  const std::vector<float> c = dc.download();
  Tensor2 out({a.shape(0), b.shape(1)});
  std::copy(c.begin(), c.end(), out.begin());
  return out;
}

/// The kernel alone on small integers at every shape: the product is exact.
void check_alone(MatmulKernel kernel) {
  for (const auto& [m, k, n] : kShapes) {
    CAPTURE(m);
    CAPTURE(k);
    CAPTURE(n);
    const Tensor2 a = small_integers(m, k, 2), b = small_integers(k, n, 5);
    ATTN_CHECK_CLOSE(launch_alone(kernel, a, b), ref::matmul(a, b), Tolerance{});
  }
}

}  // namespace

TEST_CASE("the naive kernel's product equals a float64 triple loop at odd sizes") {
  check_against_reference(MatmulKernel::naive);
}

TEST_CASE("matmul_gpu refuses mismatched inner dimensions, naming expected and given") {
  const Tensor2 a = xt::zeros<float>({2, 3});
  const Tensor2 b = xt::zeros<float>({4, 5});
  for (const MatmulKernel kernel : {MatmulKernel::naive, MatmulKernel::tiled})
    CHECK_THROWS_WITH_AS(matmul_gpu(a, b, kernel),
                         "matmul_gpu: rows of b (the inner dimension, columns of a): expected 3, given 4",
                         std::invalid_argument);
}

TEST_CASE("the naive kernel alone, launched on device buffers without matmul_gpu, is exact on small integers") {
  check_alone(MatmulKernel::naive);
}

TEST_CASE("the tiled kernel alone, launched on device buffers without matmul_gpu, is exact on small integers") {
  check_alone(MatmulKernel::tiled);
}

TEST_CASE("the tiled kernel's product equals a float64 triple loop at odd sizes") {
  check_against_reference(MatmulKernel::tiled);
}

TEST_CASE("on small integers the tiled product is exact, so a missing barrier cannot hide") {
  for (const auto& [m, k, n] : kShapes) {
    CAPTURE(m);
    CAPTURE(k);
    CAPTURE(n);
    const Tensor2 a = small_integers(m, k, 1), b = small_integers(k, n, 4);
    ATTN_CHECK_CLOSE(matmul_gpu(a, b, MatmulKernel::tiled), ref::matmul(a, b), Tolerance{});
    ATTN_CHECK_CLOSE(matmul_gpu(a, b, MatmulKernel::naive), ref::matmul(a, b), Tolerance{});
  }
}

TEST_CASE("both kernels agree with lesson 01's matmul on the CPU") {
  const std::size_t m = 45, k = 70, n = 19;
  const Tensor2 a = random_uniform<2>({m, k}, 811), b = random_uniform<2>({k, n}, 812);
  const Tensor2 cpu = matmul(a, b);
  // Each is within tol_reduction of the exact product, so within twice that of each other.
  const Tolerance tol = tol_reduction(k, 2.0 * double(k));
  ATTN_CHECK_CLOSE(matmul_gpu(a, b, MatmulKernel::naive), cpu, tol);
  ATTN_CHECK_CLOSE(matmul_gpu(a, b, MatmulKernel::tiled), cpu, tol);
}
