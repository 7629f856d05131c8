// Tensor-core (wmma) kernels that test the emulator. The same file compiles with nvcc for GPUs.
#include "wmma_kernels.hpp"

#include "attn/cuda.hpp"
#include "attn/cuda_wmma.hpp"

namespace emu_test {
namespace {

using namespace nvcuda;
constexpr int kTile = 16;

template <class Layout>
using FragmentA = wmma::fragment<wmma::matrix_a, kTile, kTile, kTile, __half, Layout>;
template <class Layout>
using FragmentB = wmma::fragment<wmma::matrix_b, kTile, kTile, kTile, __half, Layout>;
using Accumulator = wmma::fragment<wmma::accumulator, kTile, kTile, kTile, float>;

template <bool kARow, bool kBRow>
__global__ void wmma_gemm_kernel(const __half* a, const __half* b, float* c, int k, int lda, int ldb, int ldc,
                                 bool c_row_major, float scale) {
  using LayoutA = std::conditional_t<kARow, wmma::row_major, wmma::col_major>;
  using LayoutB = std::conditional_t<kBRow, wmma::row_major, wmma::col_major>;
  const int i0 = blockIdx.y * kTile, j0 = blockIdx.x * kTile;  // this warp's tile of C
  const wmma::layout_t c_layout = c_row_major ? wmma::mem_row_major : wmma::mem_col_major;
  float* c_tile = c + (c_row_major ? i0 * ldc + j0 : j0 * ldc + i0);
  Accumulator acc;
  wmma::load_matrix_sync(acc, c_tile, ldc, c_layout);
  for (int k0 = 0; k0 < k; k0 += kTile) {
    FragmentA<LayoutA> fa;
    FragmentB<LayoutB> fb;
    wmma::load_matrix_sync(fa, a + (kARow ? i0 * lda + k0 : k0 * lda + i0), lda);
    wmma::load_matrix_sync(fb, b + (kBRow ? k0 * ldb + j0 : j0 * ldb + k0), ldb);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  for (int e = 0; e < acc.num_elements; ++e) acc.x[e] *= scale;  // the same for every element: allowed
  wmma::store_matrix_sync(c_tile, acc, ldc, c_layout);
}

__global__ void wmma_fragment_layout_kernel(const __half* tile, float* out) {
  FragmentA<wmma::row_major> fa;
  wmma::load_matrix_sync(fa, tile, kTile);
  for (int e = 0; e < fa.num_elements; ++e) out[threadIdx.x * fa.num_elements + e] = __half2float(fa.x[e]);
}

template <bool kSyncBefore, bool kSyncAfter>
__global__ void wmma_shared_tile_kernel(float* out) {
  __shared__ __align__(32) __half tile[kTile * kTile];
  for (int e = threadIdx.x; e < kTile * kTile; e += 32) tile[e] = __float2half(static_cast<float>(e));
  if (kSyncBefore) __syncwarp();
  FragmentB<wmma::row_major> fb;
  wmma::load_matrix_sync(fb, tile, kTile);
  if (kSyncAfter) __syncwarp();
  for (int e = threadIdx.x; e < kTile * kTile; e += 32) tile[e] = __float2half(-1.0f);  // the tile's next contents
  // Through an accumulator, to store: (I * B) with I the identity.
  __shared__ __align__(32) __half identity[kTile * kTile];
  for (int e = threadIdx.x; e < kTile * kTile; e += 32)
    identity[e] = __float2half(e / kTile == e % kTile ? 1.0f : 0.0f);
  __syncwarp();
  FragmentA<wmma::row_major> fa;
  wmma::load_matrix_sync(fa, identity, kTile);
  Accumulator acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(out, acc, kTile, wmma::mem_row_major);
}

/// What the warp does between store_matrix_sync and reading the tile back.
__device__ float after_store(AfterStore after) {
  float one = 1.0f;
  switch (after) {
    case AfterStore::nothing: break;
    case AfterStore::shuffle: one = __shfl_xor_sync(0xffffffffu, one, 1); break;  // waits for every lane
    case AfterStore::syncwarp: __syncwarp(); break;
    case AfterStore::syncthreads: __syncthreads(); break;
  }
  return one;
}

__global__ void wmma_store_then_read_kernel(const float* values, float* out, AfterStore after, bool reload) {
  __shared__ __align__(32) float tile[kTile * kTile];
  for (int e = threadIdx.x; e < kTile * kTile; e += 32) tile[e] = -1.0f;  // what the tile held before
  __syncwarp();
  Accumulator acc;
  wmma::load_matrix_sync(acc, values, kTile, wmma::mem_row_major);
  wmma::store_matrix_sync(tile, acc, kTile, wmma::mem_row_major);
  const float one = after_store(after);
  if (reload) {  // read back by the tensor cores
    Accumulator back;
    wmma::load_matrix_sync(back, tile, kTile, wmma::mem_row_major);
    wmma::store_matrix_sync(out, back, kTile, wmma::mem_row_major);
  } else {  // read back by the lanes, each element by a lane that probably did not store it
    for (int e = threadIdx.x; e < kTile * kTile; e += 32) out[e] = tile[e] * one;
  }
}

__global__ void plain_store_then_read_kernel(const float* values, float* out, AfterStore after) {
  __shared__ float tile[kTile * kTile];
  for (int e = threadIdx.x; e < kTile * kTile; e += 32) tile[e] = values[e];
  const float one = after_store(after);
  for (int e = threadIdx.x; e < kTile * kTile; e += 32) out[e] = tile[(e + 1) % (kTile * kTile)] * one;  // the next lane's
}

__global__ void wmma_misuse_kernel(const __half* tiles, float* out, WmmaBug bug) {
  const int lane = threadIdx.x % 32;
  FragmentA<wmma::row_major> fa;
  switch (bug) {
    case WmmaBug::misaligned: wmma::load_matrix_sync(fa, tiles + 1, kTile); break;
    case WmmaBug::bad_leading_dim: wmma::load_matrix_sync(fa, tiles, 12); break;
    case WmmaBug::partial_warp: wmma::load_matrix_sync(fa, tiles, kTile); break;
    case WmmaBug::lanes_return:
      if (lane >= 16) return;
      wmma::load_matrix_sync(fa, tiles, kTile);
      break;
    case WmmaBug::diverged:
      if (lane < 16) {
        wmma::load_matrix_sync(fa, tiles, kTile);
      } else {
        wmma::load_matrix_sync(fa, tiles, kTile);
      }
      break;
    case WmmaBug::different_pointers: wmma::load_matrix_sync(fa, tiles + (lane / 16) * kTile * kTile, kTile); break;
  }
  out[threadIdx.x] = __half2float(fa.x[0]);
}

void check_launch() { ATTN_CUDA_CHECK(cudaGetLastError()); }

}  // namespace

void wmma_gemm(const __half* a, const __half* b, float* c, int m, int n, int k, int lda, int ldb, int ldc,
               bool a_row_major, bool b_row_major, bool c_row_major, float scale) {
  const dim3 grid(n / kTile, m / kTile);
  if (a_row_major && b_row_major) {
    ATTN_LAUNCH((wmma_gemm_kernel<true, true>), grid, 32, 0, a, b, c, k, lda, ldb, ldc, c_row_major, scale);
  } else if (a_row_major) {
    ATTN_LAUNCH((wmma_gemm_kernel<true, false>), grid, 32, 0, a, b, c, k, lda, ldb, ldc, c_row_major, scale);
  } else if (b_row_major) {
    ATTN_LAUNCH((wmma_gemm_kernel<false, true>), grid, 32, 0, a, b, c, k, lda, ldb, ldc, c_row_major, scale);
  } else {
    ATTN_LAUNCH((wmma_gemm_kernel<false, false>), grid, 32, 0, a, b, c, k, lda, ldb, ldc, c_row_major, scale);
  }
  check_launch();
}

void wmma_fragment_layout(const __half* tile, float* out) {
  ATTN_LAUNCH(wmma_fragment_layout_kernel, 1, 32, 0, tile, out);
  check_launch();
}

void wmma_shared_tile(float* out, bool syncwarp_before_load, bool syncwarp_after_load) {
  if (syncwarp_before_load && syncwarp_after_load) {
    ATTN_LAUNCH((wmma_shared_tile_kernel<true, true>), 1, 32, 0, out);
  } else if (syncwarp_before_load) {
    ATTN_LAUNCH((wmma_shared_tile_kernel<true, false>), 1, 32, 0, out);
  } else if (syncwarp_after_load) {
    ATTN_LAUNCH((wmma_shared_tile_kernel<false, true>), 1, 32, 0, out);
  } else {
    ATTN_LAUNCH((wmma_shared_tile_kernel<false, false>), 1, 32, 0, out);
  }
  check_launch();
}

void wmma_store_then_read(const float* values, float* out, AfterStore after, bool reload) {
  ATTN_LAUNCH(wmma_store_then_read_kernel, 1, 32, 0, values, out, after, reload);
  check_launch();
}

void plain_store_then_read(const float* values, float* out, AfterStore after) {
  ATTN_LAUNCH(plain_store_then_read_kernel, 1, 32, 0, values, out, after);
  check_launch();
}

void wmma_misuse(const __half* tiles, float* out, WmmaBug bug) {
  ATTN_LAUNCH(wmma_misuse_kernel, 1, bug == WmmaBug::partial_warp ? 48 : 32, 0, tiles, out, bug);
  check_launch();
}

}  // namespace emu_test
