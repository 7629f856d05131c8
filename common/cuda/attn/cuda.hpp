/// @file cuda.hpp
/// @brief The one header a `.cu` file includes: CUDA under nvcc, the CPU emulator elsewhere.
///
/// Kernels are written in ordinary CUDA. Two spellings differ from plain CUDA,
/// because a host compiler cannot take the CUDA ones:
///
///     ATTN_LAUNCH(kernel, grid, block, smem_bytes, args...);   // kernel<<<grid, block, smem_bytes>>>(args...)
///     ATTN_DYNAMIC_SHARED(float, tile);                        // extern __shared__ float tile[];
///
/// Under nvcc this header includes <cuda_runtime.h> and nothing else changes; so
/// does host code of a GPU build (ATTN_CUDA_GPU defined), which may call the runtime
/// but not launch kernels. Otherwise it includes attn/cuda_emulator.hpp, which runs
/// every CUDA thread of a block on its own fiber (see common/cuda/README.md).
///
/// ATTN_CUDA_CHECK(call) turns a failed runtime call into attn::cuda::Error on
/// both targets: check every runtime call, and cudaGetLastError() after every launch.
#pragma once

#include <source_location>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__) || defined(ATTN_CUDA_GPU)
#define ATTN_CUDA_RUNTIME 1
#include <cuda_runtime.h>
#else
#define ATTN_CUDA_RUNTIME 0
#endif

namespace attn::cuda {

/// A CUDA runtime call failed, or (on the emulator) a kernel did something a GPU forbids.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The emulator found a bug in a launch: its configuration (too many threads, too much
/// shared memory) or its execution (a barrier not every thread reached, a warp
/// operation whose lanes disagree). what() names the kernel, the block and the thread.
struct LaunchError : Error {
  using Error::Error;
};

/// Which machine runs the kernels of this build: "CUDA GPU" or "CPU emulator".
#if ATTN_CUDA_RUNTIME
inline constexpr const char* kTarget = "CUDA GPU";
#else
inline constexpr const char* kTarget = "CPU emulator";
#endif

}  // namespace attn::cuda

#if !ATTN_CUDA_RUNTIME
#include "attn/cuda_emulator.hpp"
#endif

namespace attn::cuda {

/// Throws Error naming the failed call and where it was made, unless `status` is cudaSuccess.
inline void check(cudaError_t status, const char* call,
                  std::source_location where = std::source_location::current()) {
  if (status == cudaSuccess) return;
  throw Error(std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status) + "\n  in " +
              call + "\n  at " + where.file_name() + ':' + std::to_string(where.line()));
}

}  // namespace attn::cuda

/// Checks a CUDA runtime call: `ATTN_CUDA_CHECK(cudaMalloc(&p, bytes));`
#define ATTN_CUDA_CHECK(call) ::attn::cuda::check((call), #call)

#if defined(__CUDACC__)
/// Launches `kernel` on a grid of `grid` blocks of `block` threads with `smem`
/// bytes of dynamic shared memory. Returns at once on a GPU; check cudaGetLastError().
#define ATTN_LAUNCH(kernel, grid, block, smem, ...) kernel<<<(grid), (block), (smem)>>>(__VA_ARGS__)
/// Declares `name`, a `T*` to the block's dynamic shared memory (the launch's `smem` bytes).
#define ATTN_DYNAMIC_SHARED(T, name)                                  \
  extern __shared__ __align__(128) unsigned char attn_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(attn_dynamic_smem_)
#elif !ATTN_CUDA_RUNTIME
#define ATTN_LAUNCH(kernel, grid, block, smem, ...)                                        \
  ::attn::cuda::emu::launch_named(#kernel, "" __VA_OPT__(#__VA_ARGS__), kernel, (grid), (block), \
                                  (smem) __VA_OPT__(, ) __VA_ARGS__)
#define ATTN_DYNAMIC_SHARED(T, name) \
  T* name = static_cast<T*>(::attn::cuda::emu::dynamic_shared_memory())
#endif
