// The emulator's tensor-core operations (attn/cuda_wmma.hpp): the checks a GPU
// makes of a wmma call's operands, the warp-wide half of each call, and the model of
// what a load or a store lets other threads see.
//
// Memory. CUDA promises that the lanes of a warp all reach a `_sync` call, not that
// the call orders memory between them: only __syncwarp and __syncthreads do. The
// scheduler (scheduler.cpp) already runs a phase's threads one after another, so a
// lane that reads what another lane writes, with no synchronization point between,
// sees it or not depending on which ran first. A wmma call is a synchronization
// point, though: when a lane gets past one, every lane of its warp has run up to it.
// Done naively (each lane loads or stores its elements as it reaches the call) the
// call would fence: a store would be complete for the whole warp before any lane
// goes on. So:
// - store_matrix_sync waits for the warp (and checks that all lanes pass the same
//   operands), then each lane hands its elements to the scheduler, which writes them
//   when that lane next reaches __syncwarp or __syncthreads (after it returns, when
//   the block ends: no thread can wait for it any more). Until then no other lane
//   sees them, nor the lane itself (no kernel can know which elements are its own).
//   A lane that reads the tile before a barrier reads what was there before, the
//   same under every schedule; a shuffle or vote in between does not publish the
//   stores, as it does not order them on a GPU. A missing __syncwarp after a store
//   is therefore a wrong result, never hidden by a lucky order.
// - load_matrix_sync cannot be modelled the same way: the writes before it are plain
//   stores, which the emulator cannot hold back. Each lane reads its elements when
//   it reaches the call (so it misses writes by lanes that run after it in the
//   phase), waits for the warp, and reads them again once the operands are checked.
//   If the two reads differ, some thread wrote the element while the warp gathered,
//   with no barrier to order that write and the load: a write meant to come before
//   the load (a missing __syncwarp or __syncthreads before it) or after it (lanes or
//   warps that go on to overwrite the tile). Either is a race, reported with the
//   element and both values. A race whose writes all land before the readers reach
//   the call, in the order that runs, is not seen, like any race an order hides;
//   the shuffled order and the warps' drift (scheduler.cpp) make that unlikely.
// - mma_sync works on registers only: the scheduler computes D = A B + C for the
//   warp once every lane has arrived.
#include <sstream>
#include <string>

#include "attn/cuda_wmma.hpp"
#include "internal.hpp"

namespace attn::cuda::emu::wmma_model {

namespace {

using Tile = float[16][16];

std::string pointer_str(const void* p) {
  std::ostringstream out;
  out << p;
  return out.str();
}

/// Checks that all 32 lanes passed lane 0's pointer, leading dimension and layout.
std::string complete_memory(void* const* lanes) {
  const auto& first = *static_cast<const MemoryArgs*>(lanes[0]);
  for (unsigned l = 1; l < 32; ++l) {
    const auto& a = *static_cast<const MemoryArgs*>(lanes[l]);
    if (a.pointer != first.pointer || a.ldm != first.ldm || a.row_major != first.row_major)
      return "the lanes of the warp pass different operands: lane 0 passes pointer " +
             pointer_str(first.pointer) + ", ldm " + std::to_string(first.ldm) +
             (first.row_major ? ", row-major" : ", column-major") + "; lane " + std::to_string(l) +
             " passes pointer " + pointer_str(a.pointer) + ", ldm " + std::to_string(a.ldm) +
             (a.row_major ? ", row-major" : ", column-major") +
             ". A wmma call works on one tile for the whole warp: every lane must pass the same";
  }
  return {};
}

/// Gathers the warp's 16x16 tile from every lane's fragment elements (row * 16 + column order).
template <class T, class Get>
void gather(Tile& tile, void* const* lanes, Get get) {
  for (unsigned l = 0; l < 32; ++l) {
    const T* x = get(*static_cast<const MmaArgs*>(lanes[l]));
    for (int i = 0; i < kElementsPerLane; ++i) {
      const unsigned p = kTileMap.position[kElementsPerLane * l + i];
      tile[p / 16][p % 16] = static_cast<float>(x[i]);
    }
  }
}

/// D = A B + C for the warp: products of halves are exact in float, sums are float.
std::string complete_mma(void* const* lanes) {
  Tile a, b, c;
  gather<__half>(a, lanes, [](const MmaArgs& m) { return m.a; });
  gather<__half>(b, lanes, [](const MmaArgs& m) { return m.b; });
  gather<float>(c, lanes, [](const MmaArgs& m) { return m.c; });
  // Every lane's inputs are read before any output is written: d may be c.
  for (unsigned l = 0; l < 32; ++l) {
    float* d = static_cast<const MmaArgs*>(lanes[l])->d;
    for (int i = 0; i < kElementsPerLane; ++i) {
      const unsigned p = kTileMap.position[kElementsPerLane * l + i], r = p / 16, col = p % 16;
      float sum = c[r][col];
      for (int k = 0; k < 16; ++k) sum += a[r][k] * b[k][col];
      d[i] = sum;
    }
  }
  return {};
}

}  // namespace

unsigned lane_id() {
  return (threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) % 32;
}

void check_operand(const char* operation, const void* pointer, unsigned ldm, std::size_t element_bytes,
                   std::source_location where) {
  const std::string at = std::string(operation) + " at " + internal::where_str(where);
  if (internal::gpu_alignment_address(pointer) % 32 != 0)
    misuse(at + ": the pointer " + pointer_str(pointer) +
           " is not 256-bit (32-byte) aligned, as a wmma tile's first element must be " +
           "(for __half, an offset that is a multiple of 16 elements from an aligned start)");
  if (ldm == 0 || ldm * element_bytes % 16 != 0)
    misuse(at + ": the leading dimension ldm = " + std::to_string(ldm) + " must be a non-zero multiple of " +
           std::to_string(16 / element_bytes) + " elements (16 bytes of " +
           (element_bytes == 2 ? "__half" : "float") + ")");
}

void report_load_race(const char* operation, std::source_location where, unsigned row, unsigned column,
                      float before, float after) {
  std::ostringstream out;
  out << operation << " at " << internal::where_str(where) << ": element (row " << row << ", column " << column
      << ") of the tile changed from " << before << " to " << after
      << " while the warp gathered at the call: another thread wrote it with no __syncwarp() or __syncthreads() "
         "ordering that write and this load, a race (on a GPU the load may read either value). A write the "
         "load must see needs the barrier before the load (__syncwarp() for lanes of this warp, "
         "__syncthreads() for other warps); a write that must come after it, a barrier after the load";
  misuse(out.str());
}

void store(float* pointer, const float* x, unsigned ldm, bool row_major, std::source_location where) {
  constexpr const char* operation = "wmma::store_matrix_sync";
  check_operand(operation, pointer, ldm, sizeof(float), where);
  memory_collective(operation, {pointer, ldm, row_major}, where);
  const unsigned lane = lane_id();
  for (int i = 0; i < kElementsPerLane; ++i) {
    float* address = pointer + element(lane, i, ldm, row_major).offset;
    [[maybe_unused]] const float probe = *static_cast<volatile float*>(address);  // faults here, if out of bounds
    internal::defer_store(address, x[i]);
  }
}

void memory_collective(const char* operation, const MemoryArgs& args, std::source_location where) {
  warp_collective({WarpRequest::matrix, operation, 0xffffffffu, to_bits(&args), 0, 32, where, &complete_memory});
}

void mma_collective(const MmaArgs& args, std::source_location where) {
  warp_collective({WarpRequest::matrix, "wmma::mma_sync", 0xffffffffu, to_bits(&args), 0, 32, where, &complete_mma});
}

}  // namespace attn::cuda::emu::wmma_model
