/// @file cuda_wmma.hpp
/// @brief Tensor-core matrix operations (`nvcuda::wmma`) for `.cu` files: NVIDIA's
///        <mma.h> under nvcc, the CPU emulator's model of it elsewhere.
///
/// A warp multiplies 16x16 tiles together: `load_matrix_sync` fills a *fragment*
/// (each lane holds a few of the tile's elements), `mma_sync` computes D = A B + C,
/// `store_matrix_sync` writes the result back to memory. The emulator models the
/// shape m16n16k16 with `__half` inputs and float accumulators, which is what the
/// lessons use:
///
///     using namespace nvcuda;
///     wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
///     wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;
///     wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
///     wmma::fill_fragment(c, 0.0f);
///     wmma::load_matrix_sync(a, a_tile, lda);        // __half*, 32-byte aligned, lda % 8 == 0
///     wmma::load_matrix_sync(b, b_tile, ldb);
///     wmma::mma_sync(c, a, b, c);                    // c = a b + c
///     wmma::store_matrix_sync(c_tile, c, ldc, wmma::mem_row_major);   // float*, ldc % 4 == 0
///
/// On the emulator, as on a GPU:
/// - the three `_sync` operations are warp-collective: all 32 lanes of a full warp
///   must reach the same call (same line) with the same pointer, leading dimension
///   and layout;
/// - the pointer must be 256-bit (32-byte) aligned and the leading dimension a
///   multiple of 16 bytes (8 halves, 4 floats);
/// - which element of the tile a lane's `x[i]` holds is unspecified. The emulator
///   scatters the tile over the lanes in an order that follows no row or column, so
///   a kernel that guesses the GPU's layout fails here too. Elementwise work on
///   `x[i]` that treats every element alike (scaling, converting) is fine.
/// - a `_sync` call waits for the whole warp, but orders no memory: only `__syncwarp()`
///   and `__syncthreads()` do. The emulator models that (emulator/wmma.cpp says how).
///   The elements `store_matrix_sync` writes reach memory only when the storing lane
///   next reaches `__syncwarp()` or `__syncthreads()` (or the block ends): a lane
///   that reads the stored tile before such a barrier reads what was there before,
///   under every schedule, even after a shuffle. A `load_matrix_sync` whose elements
///   another thread writes, unordered by a barrier, while the warp gathers at the
///   call (a missing `__syncwarp()` before the load, or after it when the lanes go on
///   to overwrite the tile) is reported as a race.
/// Products are exact and sums are float32, in an order that may differ from a GPU's.
#pragma once

#include "attn/cuda.hpp"
#include "attn/cuda_fp16.hpp"

#if defined(__CUDACC__)
#include <mma.h>
#elif !ATTN_CUDA_RUNTIME

#include <cstdint>
#include <cstring>
#include <source_location>
#include <string>
#include <type_traits>

namespace attn::cuda::emu::wmma_model {

/// Where a lane's fragment element lives in the 16x16 tile: lane `l`'s x[i] holds
/// element (p / 16, p % 16) with p = position[8 * l + i]. The order is a fixed
/// permutation (p -> 173 p + 91 mod 256) that follows no row or column on purpose.
struct TileMap {
  unsigned char position[256];
};
constexpr TileMap make_tile_map() {
  TileMap map{};
  for (unsigned p = 0; p < 256; ++p) map.position[(p * 173 + 91) % 256] = static_cast<unsigned char>(p);
  return map;
}
inline constexpr TileMap kTileMap = make_tile_map();
inline constexpr int kElementsPerLane = 8;

/// What one lane passes to a load or a store, for the check that all lanes agree.
struct MemoryArgs {
  const void* pointer;
  unsigned ldm;
  bool row_major;
};
/// What one lane passes to mma_sync: its four fragments' elements.
struct MmaArgs {
  const __half* a;
  const __half* b;
  const float* c;
  float* d;
};

/// The running thread's lane in its warp.
unsigned lane_id();
/// Throws attn::cuda::LaunchError, naming kernel, block and thread, unless `pointer`
/// is 32-byte aligned (counted from the start of its allocation for device memory,
/// which a GPU aligns to 256 bytes) and `ldm` is a non-zero multiple of 16 bytes.
void check_operand(const char* operation, const void* pointer, unsigned ldm, std::size_t element_bytes,
                   std::source_location where);
/// Waits for the other 31 lanes at the same load or store, and checks that all passed the same arguments.
void memory_collective(const char* operation, const MemoryArgs& args, std::source_location where);
/// Reports (attn::cuda::LaunchError) that element (row, column) of a loaded tile
/// changed from `before` to `after` while the warp gathered at the load.
[[noreturn]] void report_load_race(const char* operation, std::source_location where, unsigned row,
                                   unsigned column, float before, float after);
/// Waits for the other 31 lanes, then computes D = A B + C for the whole warp.
void mma_collective(const MmaArgs& args, std::source_location where);

/// What a load or a store of lane `lane`'s element i touches: (row, column) and its offset from the tile's start.
struct Element {
  unsigned row, column, offset;
};
inline Element element(unsigned lane, int i, unsigned ldm, bool row_major) {
  const unsigned p = kTileMap.position[kElementsPerLane * lane + i], r = p / 16, c = p % 16;
  return {r, c, row_major ? r * ldm + c : c * ldm + r};
}

/// load_matrix_sync: this lane reads its elements as it finds them when it reaches
/// the call, waits for the warp, then reads them again; the two must agree, else
/// another thread wrote one in between with no barrier to order it (a race).
template <class T>
void load(T* x, const T* pointer, unsigned ldm, bool row_major, const char* operation,
          std::source_location where) {
  check_operand(operation, pointer, ldm, sizeof(T), where);
  const unsigned lane = lane_id();
  T seen[kElementsPerLane];
  for (int i = 0; i < kElementsPerLane; ++i) seen[i] = pointer[element(lane, i, ldm, row_major).offset];
  memory_collective(operation, {pointer, ldm, row_major}, where);
  for (int i = 0; i < kElementsPerLane; ++i) {
    const Element e = element(lane, i, ldm, row_major);
    x[i] = pointer[e.offset];
    if (std::memcmp(&x[i], &seen[i], sizeof(T)) != 0)
      report_load_race(operation, where, e.row, e.column, static_cast<float>(seen[i]), static_cast<float>(x[i]));
  }
}

/// store_matrix_sync: waits for the warp, then hands this lane's elements to the
/// scheduler, which writes them at the lane's next __syncwarp or __syncthreads (or,
/// once it has returned, at the end of the block).
void store(float* pointer, const float* x, unsigned ldm, bool row_major, std::source_location where);

}  // namespace attn::cuda::emu::wmma_model

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

/// A warp's 16x16 tile, `num_elements` of it in each lane (which ones: unspecified).
template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the CPU emulator models the wmma shape m16n16k16 only");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float> : std::is_same_v<T, __half>,
                "the CPU emulator models __half matrix_a/matrix_b fragments and float accumulators only");
  static_assert(std::is_same_v<Use, accumulator> == std::is_void_v<Layout>,
                "matrix_a and matrix_b fragments take row_major or col_major; accumulators take no layout");

 public:
  static constexpr int num_elements = attn::cuda::emu::wmma_model::kElementsPerLane;
  T x[num_elements];
};

template <class Use, class T, class Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, const std::type_identity_t<T>& value) {
  for (T& e : f.x) e = value;
}

/// Loads a matrix_a or matrix_b tile; Layout says how it lies in memory.
template <class Use, class T, class Layout>
  requires(!std::is_same_v<Use, accumulator>)
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* pointer, unsigned ldm,
                      std::source_location where = std::source_location::current()) {
  attn::cuda::emu::wmma_model::load(f.x, pointer, ldm, std::is_same_v<Layout, row_major>,
                                    "wmma::load_matrix_sync", where);
}

/// Loads an accumulator tile laid out in memory as `layout` says.
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* pointer, unsigned ldm,
                             layout_t layout, std::source_location where = std::source_location::current()) {
  attn::cuda::emu::wmma_model::load(f.x, pointer, ldm, layout == mem_row_major, "wmma::load_matrix_sync",
                                    where);
}

/// Stores an accumulator tile, laid out in memory as `layout` says.
inline void store_matrix_sync(float* pointer, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm,
                              layout_t layout, std::source_location where = std::source_location::current()) {
  attn::cuda::emu::wmma_model::store(pointer, f.x, ldm, layout == mem_row_major, where);
}

/// d = a b + c for the warp's 16x16 tiles (d may be c).
template <class LayoutA, class LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, __half, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, __half, LayoutB>& b,
              const fragment<accumulator, 16, 16, 16, float>& c,
              std::source_location where = std::source_location::current()) {
  attn::cuda::emu::wmma_model::mma_collective({a.x, b.x, c.x, d.x}, where);
}

}  // namespace nvcuda::wmma

#endif
