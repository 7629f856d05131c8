// Tensor-core (wmma) kernels that test the emulator's model of nvcuda::wmma.
#pragma once

#include "attn/cuda_fp16.hpp"

namespace emu_test {

/// C (m x n floats, leading dimension ldc, row-major if c_row_major) = scale * (A B + C),
/// one warp per 16x16 tile of C. A (m x k) and B (k x n) are halves, each row-major
/// or column-major with its leading dimension. m, n, k are multiples of 16.
void wmma_gemm(const __half* a, const __half* b, float* c, int m, int n, int k, int lda, int ldb, int ldc,
               bool a_row_major, bool b_row_major, bool c_row_major, float scale);

/// Loads the row-major 16x16 tile `tile` into a matrix_a fragment and writes lane l's
/// x[i] to out[8 l + i]: which element of the tile each lane holds.
void wmma_fragment_layout(const __half* tile, float* out);

/// Each lane writes its share of a 16x16 tile of halves (element e = value e) to
/// shared memory, then the warp loads it with wmma, the lanes overwrite the tile with
/// -1, and the warp stores what it loaded, as floats, to out (row-major). The two
/// __syncwarp calls order the writes before the load and the load before the
/// overwriting; without either, the load races with other lanes' writes.
void wmma_shared_tile(float* out, bool syncwarp_before_load, bool syncwarp_after_load);

/// What a warp does between writing a tile and reading it back.
enum class AfterStore {
  nothing,
  shuffle,      ///< a __shfl_xor_sync, which waits for every lane but orders no memory
  syncwarp,
  syncthreads,
};

/// One warp: a shared 16x16 float tile holds -1; the warp loads `values` (16x16,
/// row-major) into an accumulator, stores it into the tile with store_matrix_sync,
/// does `after`, and reads the tile back into out (row-major): each lane copying
/// elements lane, lane + 32, ... (or, with `reload`, by load_matrix_sync and
/// store_matrix_sync). out == values when the stores were visible, -1 where not.
void wmma_store_then_read(const float* values, float* out, AfterStore after, bool reload);

/// The same with plain stores: lane l writes elements l, l + 32, ... of the tile, does
/// `after`, then writes element e + 1 of the tile (another lane's) to out[e].
void plain_store_then_read(const float* values, float* out, AfterStore after);

/// The classic misuses of wmma, each in a kernel of its own.
enum class WmmaBug {
  misaligned,          ///< a tile pointer 2 bytes off a 32-byte boundary
  bad_leading_dim,     ///< ldm = 12 halves (not a multiple of 16 bytes)
  partial_warp,        ///< a block of 48 threads: its second warp has 16 lanes
  lanes_return,        ///< lanes 16..31 return before the load
  diverged,            ///< the two halves of the warp load at different lines
  different_pointers,  ///< the two halves of the warp pass different tiles
};
void wmma_misuse(const __half* tiles, float* out, WmmaBug bug);

}  // namespace emu_test
