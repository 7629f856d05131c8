// The emulator's tensor-core operations (attn/cuda_wmma.hpp): the checks a GPU
// makes of a wmma call's operands, and the warp-wide half of each call. A lane
// loads or stores its own elements itself; the scheduler then calls one of the
// functions below once the whole warp has arrived, with every lane's arguments.
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

void memory_collective(const char* operation, const MemoryArgs& args, std::source_location where) {
  warp_collective({WarpRequest::matrix, operation, 0xffffffffu, to_bits(&args), 0, 32, where, &complete_memory});
}

void mma_collective(const MmaArgs& args, std::source_location where) {
  warp_collective({WarpRequest::matrix, "wmma::mma_sync", 0xffffffffu, to_bits(&args), 0, 32, where, &complete_mma});
}

}  // namespace attn::cuda::emu::wmma_model
