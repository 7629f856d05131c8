// Kernels that test the emulator. The same file compiles with nvcc for GPUs.
#include "kernels.hpp"

#include "attn/cuda.hpp"

#include <stdexcept>

namespace emu_test {
namespace {

constexpr unsigned kFull = 0xffffffffu;

int blocks_for(int n, int threads) { return (n + threads - 1) / threads; }

// --- Shared memory and the barrier. ---

template <bool kBarrier>
__global__ void block_sum_kernel(const float* x, float* partial, int n) {
  __shared__ float cache[1024];
  const int tid = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  cache[tid] = i < n ? x[i] : 0.0f;
  if constexpr (kBarrier) __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) cache[tid] += cache[tid + stride];
    if constexpr (kBarrier) __syncthreads();
  }
  if (tid == 0) partial[blockIdx.x] = cache[0];
}

__global__ void block_sum_dynamic_kernel(const float* x, float* partial, int n) {
  ATTN_DYNAMIC_SHARED(float, cache);
  const int tid = threadIdx.x;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  cache[tid] = i < n ? x[i] : 0.0f;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) cache[tid] += cache[tid + stride];
    __syncthreads();
  }
  if (tid == 0) partial[blockIdx.x] = cache[0];
}

template <bool kBarrier>
__global__ void reverse_chunks_kernel(int* data) {
  __shared__ int chunk[1024];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  chunk[threadIdx.x] = data[i];
  if constexpr (kBarrier) __syncthreads();
  data[i] = chunk[blockDim.x - 1 - threadIdx.x];
}

template <bool kBarrier>
__global__ void block_scan_kernel(const unsigned* in, unsigned* out) {
  __shared__ unsigned buf[1024];  // unsigned: the racy version may add up garbage, which must wrap
  const unsigned tid = threadIdx.x;
  buf[tid] = in[tid];
  if constexpr (kBarrier) __syncthreads();
  for (unsigned offset = 1; offset < blockDim.x; offset *= 2) {
    const unsigned add = tid >= offset ? buf[tid - offset] : 0u;
    if constexpr (kBarrier) __syncthreads();
    buf[tid] += add;
    if constexpr (kBarrier) __syncthreads();
  }
  out[tid] = buf[tid];
}

// C = A B, (m, k) x (k, n), in 16 x 16 tiles staged in shared memory.
template <bool kBarrier>
__global__ void matmul_tiled_kernel(const float* a, const float* b, float* c, int m, int k, int n) {
  constexpr int kTile = 16;
  __shared__ float a_tile[kTile][kTile];
  __shared__ float b_tile[kTile][kTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx;
  float acc = 0.0f;
  for (int t = 0; t < k; t += kTile) {
    a_tile[ty][tx] = row < m && t + tx < k ? a[row * k + t + tx] : 0.0f;
    b_tile[ty][tx] = t + ty < k && col < n ? b[(t + ty) * n + col] : 0.0f;
    if constexpr (kBarrier) __syncthreads();  // the tiles are complete
    for (int j = 0; j < kTile; ++j) acc += a_tile[ty][j] * b_tile[j][tx];
    if constexpr (kBarrier) __syncthreads();  // everyone is done with them
  }
  if (row < m && col < n) c[row * n + col] = acc;
}

// --- Warps. ---

__device__ float warp_sum_by_xor(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(kFull, v, offset);
  return v;
}

__global__ void warp_sum_xor_kernel(const float* x, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const float v = warp_sum_by_xor(i < n ? x[i] : 0.0f);
  if (threadIdx.x % 32 == 0) out[i / 32] = v;
}

__global__ void warp_sum_down_kernel(const float* x, float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? x[i] : 0.0f;
  for (unsigned offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFull, v, offset);
  if (threadIdx.x % 32 == 0) out[i / 32] = v;
}

__global__ void segment_scan_up_kernel(const int* x, int* out, int width) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int lane = static_cast<int>(threadIdx.x) % width;
  int v = x[i];
  for (int delta = 1; delta < width; delta *= 2) {
    const int y = __shfl_up_sync(kFull, v, static_cast<unsigned>(delta), width);
    if (lane >= delta) v += y;
  }
  out[i] = v;
}

__global__ void broadcast_kernel(const int* x, int* out, int src, int width) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = __shfl_sync(kFull, x[i], src, width);
}

__global__ void vote_kernel(const float* x, unsigned* ballots, int* any_all, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int positive = i < n && x[i] > 0.0f;
  const unsigned ballot = __ballot_sync(kFull, positive);
  const int any = __any_sync(kFull, positive);
  const int all = __all_sync(kFull, positive);
  if (threadIdx.x % 32 == 0) {
    ballots[i / 32] = ballot;
    any_all[2 * (i / 32)] = any;
    any_all[2 * (i / 32) + 1] = all;
  }
}

// --- Grids and atomics. ---

__global__ void index_2d_kernel(int* out, int rows, int cols) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  const int row = blockIdx.y * blockDim.y + threadIdx.y;
  if (row < rows && col < cols) out[row * cols + col] = row * cols + col;
}

__global__ void histogram_kernel(const int* values, int n, int* bins, int nbins, int* maximum) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  atomicAdd(&bins[values[i] % nbins], 1);
  atomicMax(maximum, values[i]);
}

__global__ void barrier_votes_kernel(const float* x, int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int positive = i < n && x[i] > 0.0f;
  const int count = __syncthreads_count(positive);
  const int all = __syncthreads_and(positive);
  const int any = __syncthreads_or(positive);
  if (threadIdx.x == 0) {
    out[3 * blockIdx.x] = count;
    out[3 * blockIdx.x + 1] = all;
    out[3 * blockIdx.x + 2] = any;
  }
}

__global__ void float4_copy_kernel(const float4* in, float4* out, int n4) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n4) {
    const float4 v = in[i];
    out[i] = make_float4(v.w, v.z, v.y, v.x);
  }
}

// --- Planted bugs. ---

__global__ void early_return_kernel(float* x, int n) {
  __shared__ float s[1024];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;  // BUG: these threads never reach the barrier below
  s[threadIdx.x] = x[i];
  __syncthreads();
  x[i] = s[(threadIdx.x + 1) % blockDim.x];
}

__global__ void barrier_in_branch_kernel(float* x) {
  if (threadIdx.x < 64) __syncthreads();  // BUG: a barrier only some threads reach
  x[threadIdx.x] = 1.0f;
}

__global__ void different_barriers_kernel(float* x) {
  if (threadIdx.x % 2 == 0) {
    x[threadIdx.x] = 1.0f;
    __syncthreads();  // BUG: two barriers, each reached by half of the block
  } else {
    x[threadIdx.x] = 2.0f;
    __syncthreads();
  }
}

__global__ void shuffle_in_branch_kernel(float* x) {
  float v = x[threadIdx.x];
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(kFull, v, 1);  // BUG: the mask names lanes 16-31
  x[threadIdx.x] = v;
}

__global__ void shuffle_outside_mask_kernel(float* x) {
  float v = x[threadIdx.x];
  if (threadIdx.x < 16) v = __shfl_xor_sync(0x0000ffffu, v, 16);  // BUG: reads lanes 16-31
  x[threadIdx.x] = v;
}

__global__ void bad_shuffle_width_kernel(float* x) {
  x[threadIdx.x] = __shfl_down_sync(kFull, x[threadIdx.x], 1u, 12);  // BUG: width 12
}

__global__ void mismatched_warp_ops_kernel(float* x) {
  float v = x[threadIdx.x];
  if (threadIdx.x % 2 == 1) {
    v = __shfl_xor_sync(kFull, v, 1);  // BUG: even lanes vote instead
  } else {
    v = static_cast<float>(__ballot_sync(kFull, v > 0.0f));
  }
  x[threadIdx.x] = v;
}

__global__ void write_past_end_kernel(float* x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) x[i] = 0.0f;  // BUG: <= writes x[n]
}

__global__ void read_before_start_kernel(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = x[i - 1];  // BUG: x[-1] for i == 0
}

__global__ void huge_local_array_kernel(float* x) {
  float big[256 * 1024];  // BUG: 1 MiB of local memory per thread
  for (int i = 0; i < 256 * 1024; ++i) big[i] = x[threadIdx.x] + static_cast<float>(i);
  x[threadIdx.x] = big[threadIdx.x * 7];
}

__global__ void throwing_kernel(int* x) {
#if defined(__CUDACC__)
  x[threadIdx.x] = 0;
#else
  if (threadIdx.x == 5) throw std::out_of_range("thread 5 gave up");
  x[threadIdx.x] = 0;
#endif
}

// Two warps that run the same 64 warp operations: warp 1 reads a shared value at
// step 40, warp 0 overwrites it at step 41. In lockstep the read always comes first;
// only a barrier between the two steps makes that order a rule.
template <bool kBarrier>
__global__ void warps_drift_kernel(int* out) {
  __shared__ int slot[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (warp == 0) slot[lane] = 1;
  __syncthreads();
  int seen = 0;
  for (int step = 0; step < 64; ++step) {
    seen += __shfl_xor_sync(kFull, 0, 1);  // a warp operation: one step of the warp
    if (warp == 1 && step == 40) seen += slot[lane];
    if (kBarrier && step == 40) __syncthreads();
    if (warp == 0 && step == 41) slot[lane] = 100;
  }
  out[blockIdx.x * 64 + threadIdx.x] = seen;
}

void check_launch() { ATTN_CUDA_CHECK(cudaGetLastError()); }

}  // namespace

void block_sum(const float* x, float* partial, int n, int threads, bool with_barrier) {
  if (with_barrier) {
    ATTN_LAUNCH(block_sum_kernel<true>, blocks_for(n, threads), threads, 0, x, partial, n);
  } else {
    ATTN_LAUNCH(block_sum_kernel<false>, blocks_for(n, threads), threads, 0, x, partial, n);
  }
  check_launch();
}

void block_sum_dynamic(const float* x, float* partial, int n, int threads, int smem_bytes, int optin) {
  if (optin > 0)
    ATTN_CUDA_CHECK(cudaFuncSetAttribute(block_sum_dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         optin));
  ATTN_LAUNCH(block_sum_dynamic_kernel, blocks_for(n, threads), threads, static_cast<std::size_t>(smem_bytes), x,
              partial, n);
  check_launch();
}

void reverse_chunks(int* data, int n, int threads, bool with_barrier) {
  if (with_barrier) {
    ATTN_LAUNCH(reverse_chunks_kernel<true>, n / threads, threads, 0, data);
  } else {
    ATTN_LAUNCH(reverse_chunks_kernel<false>, n / threads, threads, 0, data);
  }
  check_launch();
}

void block_scan(const unsigned* in, unsigned* out, int n, bool with_barrier) {
  if (with_barrier) {
    ATTN_LAUNCH(block_scan_kernel<true>, 1, n, 0, in, out);
  } else {
    ATTN_LAUNCH(block_scan_kernel<false>, 1, n, 0, in, out);
  }
  check_launch();
}

void matmul_tiled(const float* a, const float* b, float* c, int m, int k, int n, bool with_barrier) {
  const dim3 grid(static_cast<unsigned>(blocks_for(n, 16)), static_cast<unsigned>(blocks_for(m, 16)));
  if (with_barrier) {
    ATTN_LAUNCH(matmul_tiled_kernel<true>, grid, dim3(16, 16), 0, a, b, c, m, k, n);
  } else {
    ATTN_LAUNCH(matmul_tiled_kernel<false>, grid, dim3(16, 16), 0, a, b, c, m, k, n);
  }
  check_launch();
}

void warp_sum_xor(const float* x, float* out, int n, int threads) {
  ATTN_LAUNCH(warp_sum_xor_kernel, blocks_for(n, threads), threads, 0, x, out, n);
  check_launch();
}

void warp_sum_down(const float* x, float* out, int n, int threads) {
  ATTN_LAUNCH(warp_sum_down_kernel, blocks_for(n, threads), threads, 0, x, out, n);
  check_launch();
}

void segment_scan_up(const int* x, int* out, int n, int width) {
  ATTN_LAUNCH(segment_scan_up_kernel, n / 64, 64, 0, x, out, width);
  check_launch();
}

void broadcast(const int* x, int* out, int n, int src, int width) {
  ATTN_LAUNCH(broadcast_kernel, n / 64, 64, 0, x, out, src, width);
  check_launch();
}

void vote(const float* x, unsigned* ballots, int* any_all, int n, int threads) {
  ATTN_LAUNCH(vote_kernel, blocks_for(n, threads), threads, 0, x, ballots, any_all, n);
  check_launch();
}

void barrier_votes(const float* x, int* out, int n, int threads) {
  ATTN_LAUNCH(barrier_votes_kernel, blocks_for(n, threads), threads, 0, x, out, n);
  check_launch();
}

void reverse_quads(const float* in, float* out, int n) {
  ATTN_LAUNCH(float4_copy_kernel, blocks_for(n / 4, 64), 64, 0, reinterpret_cast<const float4*>(in),
              reinterpret_cast<float4*>(out), n / 4);
  check_launch();
}

void index_2d(int* out, int rows, int cols, int block_x, int block_y) {
  const dim3 block(static_cast<unsigned>(block_x), static_cast<unsigned>(block_y));
  const dim3 grid(static_cast<unsigned>(blocks_for(cols, block_x)), static_cast<unsigned>(blocks_for(rows, block_y)));
  ATTN_LAUNCH(index_2d_kernel, grid, block, 0, out, rows, cols);
  check_launch();
}

void histogram(const int* values, int n, int* bins, int nbins, int* maximum) {
  ATTN_LAUNCH(histogram_kernel, blocks_for(n, 128), 128, 0, values, n, bins, nbins, maximum);
  check_launch();
}

void early_return_before_barrier(float* x, int n, int threads) {
  ATTN_LAUNCH(early_return_kernel, blocks_for(n, threads), threads, 0, x, n);
  check_launch();
}

void barrier_in_branch(float* x, int threads) {
  ATTN_LAUNCH(barrier_in_branch_kernel, 1, threads, 0, x);
  check_launch();
}

void different_barriers(float* x, int threads) {
  ATTN_LAUNCH(different_barriers_kernel, 1, threads, 0, x);
  check_launch();
}

void shuffle_in_branch(float* x, int threads) {
  ATTN_LAUNCH(shuffle_in_branch_kernel, 1, threads, 0, x);
  check_launch();
}

void shuffle_outside_mask(float* x) {
  ATTN_LAUNCH(shuffle_outside_mask_kernel, 1, 32, 0, x);
  check_launch();
}

void bad_shuffle_width(float* x) {
  ATTN_LAUNCH(bad_shuffle_width_kernel, 1, 32, 0, x);
  check_launch();
}

void mismatched_warp_ops(float* x) {
  ATTN_LAUNCH(mismatched_warp_ops_kernel, 1, 32, 0, x);
  check_launch();
}

void write_past_end(float* x, int n, int threads) {
  ATTN_LAUNCH(write_past_end_kernel, blocks_for(n + 1, threads), threads, 0, x, n);
  check_launch();
}

void read_before_start(const float* x, float* y, int n) {
  ATTN_LAUNCH(read_before_start_kernel, blocks_for(n, 128), 128, 0, x, y, n);
  check_launch();
}

void huge_local_array(float* x) {
  ATTN_LAUNCH(huge_local_array_kernel, 1, 32, 0, x);
  check_launch();
}

void warps_drift(int* out, int blocks, bool with_barrier) {
  if (with_barrier) {
    ATTN_LAUNCH(warps_drift_kernel<true>, blocks, 64, 0, out);
  } else {
    ATTN_LAUNCH(warps_drift_kernel<false>, blocks, 64, 0, out);
  }
  check_launch();
}

void throw_in_kernel(int* x) {
  ATTN_LAUNCH(throwing_kernel, 1, 32, 0, x);
  check_launch();
}

void launch_too_many_threads(float* x) {
  ATTN_LAUNCH(barrier_in_branch_kernel, 1, dim3(32, 32, 2), 0, x);
  check_launch();
}

void launch_zero_blocks(float* x) {
  ATTN_LAUNCH(barrier_in_branch_kernel, 0, 32, 0, x);
  check_launch();
}

}  // namespace emu_test
