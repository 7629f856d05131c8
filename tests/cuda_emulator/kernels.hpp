// Host launchers of the emulator's test kernels (kernels.cu). Pointers are device memory.
#pragma once

namespace emu_test {

/// partial[b] = sum of x[b*threads .. b*threads+threads) (n elements in all), a tree in shared memory.
void block_sum(const float* x, float* partial, int n, int threads, bool with_barrier);
/// The same with the block's dynamic shared memory (threads floats), after raising the opt-in limit to `optin` bytes if > 0.
void block_sum_dynamic(const float* x, float* partial, int n, int threads, int smem_bytes, int optin);
/// Reverses each chunk of `threads` elements through shared memory (n a multiple of threads).
void reverse_chunks(int* data, int n, int threads, bool with_barrier);
/// Hillis-Steele inclusive prefix sum of one block of n <= 1024 values in shared memory.
void block_scan(const unsigned* in, unsigned* out, int n, bool with_barrier);
/// c = a b for row-major (m, k) and (k, n), in 16 x 16 shared-memory tiles.
void matmul_tiled(const float* a, const float* b, float* c, int m, int k, int n, bool with_barrier);
/// out[w] = sum over warp w of x (one value per thread); three ways: xor butterfly, shfl_down, shfl_up scan.
void warp_sum_xor(const float* x, float* out, int n, int threads);
void warp_sum_down(const float* x, float* out, int n, int threads);
/// out[i] = inclusive prefix sum of x within segments of `width` lanes (shfl_up).
void segment_scan_up(const int* x, int* out, int n, int width);
/// out[i] = x[(lane of i rounded down to width) + src] : a broadcast from lane src of each segment.
void broadcast(const int* x, int* out, int n, int src, int width);
/// ballots[w] = __ballot_sync of x > 0 over warp w; any/all per warp into any_all[2w], [2w+1].
void vote(const float* x, unsigned* ballots, int* any_all, int n, int threads);
/// Per block b: out[3b] = __syncthreads_count(x > 0), out[3b+1] = _and, out[3b+2] = _or.
void barrier_votes(const float* x, int* out, int n, int threads);
/// Reverses each group of 4 floats with float4 loads and stores (n a multiple of 4).
void reverse_quads(const float* in, float* out, int n);
/// Writes, at every (row, col) of a rows x cols matrix, row * cols + col, using a 2D grid of 2D blocks.
void index_2d(int* out, int rows, int cols, int block_x, int block_y);
/// bins[v % nbins] += 1 for each v of values (atomicAdd), and *maximum = max of values (atomicMax).
void histogram(const int* values, int n, int* bins, int nbins, int* maximum);

/// Blocks of two warps that run the same warp operations; warp 1 reads at step 40 a
/// value warp 0 overwrites at step 41 (out: 64 ints per block, 1 read by warp 1 if in
/// time). Only with_barrier puts a __syncthreads between the two steps.
void warps_drift(int* out, int blocks, bool with_barrier);

// Planted bugs, each reported by the emulator.
void early_return_before_barrier(float* x, int n, int threads);
void barrier_in_branch(float* x, int threads);
void different_barriers(float* x, int threads);
void shuffle_in_branch(float* x, int threads);
void shuffle_outside_mask(float* x);
void bad_shuffle_width(float* x);
void mismatched_warp_ops(float* x);
void write_past_end(float* x, int n, int threads);
void read_before_start(const float* x, float* y, int n);
void huge_local_array(float* x);
void launch_too_many_threads(float* x);
/// Emulator only: thread 5 throws std::out_of_range (a scaffold's kernels throw attn::NotImplemented).
void throw_in_kernel(int* x);
void launch_zero_blocks(float* x);

}  // namespace emu_test
