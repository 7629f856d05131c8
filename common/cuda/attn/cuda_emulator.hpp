/// @file cuda_emulator.hpp
/// @brief The CUDA that a host compiler sees: the CPU emulator's side of attn/cuda.hpp.
///
/// Do not include this file; include attn/cuda.hpp. It declares, under their CUDA
/// names, the qualifiers, the built-in variables, the device functions (barrier,
/// warp shuffles and votes, atomics, a few math intrinsics) and the part of the
/// runtime API that the lessons use. How it runs kernels: common/cuda/README.md.
///
/// The names below that start with two underscores are CUDA's own; a host
/// compiler reserves such names, so they may be defined only here.
#pragma once

#include <bit>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <string>
#include <type_traits>

// ---------------------------------------------------------------------------
// Qualifiers. A kernel is an ordinary function. __shared__ makes a variable
// static, so all the CUDA threads of a block see the same one (blocks run one at
// a time), and thread_local: each launch runs on a new host thread, so shared
// memory starts at zero in every launch instead of keeping the last one's values.
// ---------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static thread_local
#define __align__(n) __attribute__((aligned(n)))  // GNU spelling: valid among the decl-specifiers, as CUDA places it
#define __launch_bounds__(...)

// ---------------------------------------------------------------------------
// Vector types and the built-in variables.
// ---------------------------------------------------------------------------
struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return {x, y, z}; }
};

// The vector types, with CUDA's alignment (a float4 load is one 16-byte access on a GPU).
struct alignas(8) float2 {
  float x, y;
};
struct float3 {
  float x, y, z;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) int2 {
  int x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned int x, y;
};
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return {x, y, z}; }

/// The running CUDA thread's coordinates. The scheduler sets them before it
/// switches to a thread, so a debugger shows the values of the thread it stopped in.
inline uint3 threadIdx{0, 0, 0};
inline uint3 blockIdx{0, 0, 0};
inline dim3 blockDim{1, 1, 1};
inline dim3 gridDim{1, 1, 1};
inline constexpr int warpSize = 32;

// ---------------------------------------------------------------------------
// Runtime API: types.
// ---------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidDevice = 101,
  cudaErrorLaunchFailure = 719,
};

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

/// The fields of CUDA's cudaDeviceProp that the lessons read; the emulator reports sm_90 limits.
struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  std::size_t sharedMemPerBlockOptin;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int multiProcessorCount;
  int major;
  int minor;
};

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;

// ---------------------------------------------------------------------------
// Runtime API: functions. They behave as CUDA's, with kernels run to completion
// inside the launch. Where a GPU returns an error code for a misuse (a pointer
// that is not device memory, a copy past the end of an allocation), the emulator
// throws attn::cuda::Error at once, with a message that says what was wrong.
// ---------------------------------------------------------------------------
const char* cudaGetErrorName(cudaError_t error);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaDeviceReset();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);

cudaError_t cudaMalloc(void** pointer, std::size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** pointer, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemset(void* pointer, int value, std::size_t bytes);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t end);

namespace attn::cuda::emu {

/// A kernel's identity, for per-kernel attributes: its address as `void (*)()`.
using KernelId = void (*)();
cudaError_t set_kernel_attribute(KernelId kernel, cudaFuncAttribute attribute, int value);

}  // namespace attn::cuda::emu

/// Raises the dynamic shared memory a kernel may request above 48 KiB (up to 227 KiB).
template <class... Params>
cudaError_t cudaFuncSetAttribute(void (*kernel)(Params...), cudaFuncAttribute attribute, int value) {
  return attn::cuda::emu::set_kernel_attribute(reinterpret_cast<attn::cuda::emu::KernelId>(kernel),
                                               attribute, value);
}

// ---------------------------------------------------------------------------
// The emulator's own interface: launching, scheduling, the device it models.
// ---------------------------------------------------------------------------
namespace attn::cuda::emu {

/// Limits of the modelled device (an sm_90 GPU such as the H100).
inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
inline constexpr unsigned kMaxGridDim[3] = {2147483647u, 65535, 65535};
inline constexpr std::size_t kDefaultSharedBytes = 48 * 1024;  ///< without opt-in
inline constexpr std::size_t kOptinSharedBytes = 227 * 1024;   ///< cudaFuncSetAttribute maximum

/// The order in which the threads of a block run, each to its next synchronization point.
enum class Schedule {
  shuffled,  ///< a pseudo-random order, new for every block and every phase (default)
  forward,   ///< thread 0 first: the easiest to follow in a debugger
  reverse,   ///< the last thread first
};
/// Sets the order for the launches that follow; returns the previous one.
Schedule set_schedule(Schedule schedule);

/// How many times a block barrier (__syncthreads and its _count, _and, _or forms) has
/// opened in this program so far, over every block of every launch. For tests that
/// check how much work a kernel does, as a count rather than a time: a kernel whose
/// blocks run one barrier per tile opens one more per block for each tile it visits
/// (lesson 09: a block skips the key tiles that none of its rows sees).
std::uint64_t barriers_opened();

/// What a launch is: the kernel's name and identity, the grid, the block, the dynamic shared bytes.
struct LaunchConfig {
  const char* kernel;
  KernelId id;
  dim3 grid;
  dim3 block;
  std::size_t dynamic_shared_bytes;
};

/// Runs `thread_body` once per CUDA thread of the grid, block after block; returns
/// when every block is done. Throws attn::cuda::LaunchError on a bad configuration
/// or a synchronization bug.
void run_grid(const LaunchConfig& config, const std::function<void()>& thread_body);

/// Each CUDA thread calls `kernel(args...)` with its own copy of the arguments.
template <class... Params, class... Args>
void launch(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
            const Args&... args) {
  run_grid({name, reinterpret_cast<KernelId>(kernel), grid, block, smem}, [&] { kernel(args...); });
}

/// A pointer argument of the running launch, for the report of an out-of-bounds access:
/// its position and the expression the call wrote for it (`out.get()`).
struct PointerArgument {
  int position;             ///< 1-based
  const char* expression;   ///< not null-terminated: `length` characters
  std::size_t length;
  const void* pointer;
};
/// Names the pointer arguments of the launches inside its scope (memory.cpp reports them).
class NamedPointers {
 public:
  NamedPointers(const char* kernel, const PointerArgument* arguments, std::size_t count);
  ~NamedPointers();
  NamedPointers(const NamedPointers&) = delete;
  NamedPointers& operator=(const NamedPointers&) = delete;
};
/// Where each top-level argument of "a, f(b, c), d" starts and how long it is.
std::size_t split_arguments(const char* text, std::size_t (*spans)[2], std::size_t most);

/// What ATTN_LAUNCH expands to: `launch`, with the text of the arguments, so that an
/// out-of-bounds access names the pointer argument whose allocation it stepped out of.
template <class... Params, class... Args>
void launch_named(const char* name, const char* argument_text, void (*kernel)(Params...), dim3 grid,
                  dim3 block, std::size_t smem, const Args&... args) {
  constexpr std::size_t n = sizeof...(Args);
  std::size_t spans[n + 1][2] = {};
  const std::size_t found = split_arguments(argument_text, spans, n);
  PointerArgument pointers[n + 1] = {};
  std::size_t count = 0, position = 0;
  const auto note = [&](const auto& arg) {
    if constexpr (std::is_pointer_v<std::decay_t<decltype(arg)>>) {
      const bool named = position < found;
      pointers[count++] = {static_cast<int>(position + 1), named ? argument_text + spans[position][0] : "",
                           named ? spans[position][1] : 0, static_cast<const void*>(arg)};
    }
    ++position;
  };
  (note(args), ...);
  const NamedPointers scope(name, pointers, count);
  launch(name, kernel, grid, block, smem, args...);
}

/// The running block's dynamic shared memory (ATTN_DYNAMIC_SHARED), 128-byte aligned.
void* dynamic_shared_memory();

/// The block barrier: returns, when every thread of the block has called it, how
/// many of them passed a non-zero `predicate`.
int syncthreads(std::source_location where, int predicate);

/// A warp-collective operation, as one lane asks for it.
struct WarpRequest {
  enum Kind { shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all, syncwarp, matrix } kind;
  const char* name;      ///< the intrinsic, for messages
  unsigned mask;         ///< the lanes that take part
  std::uint64_t value;   ///< the lane's value (its bytes) or predicate; for `matrix`, a pointer to its arguments
  int lane_arg;          ///< srcLane, delta or laneMask
  int width;             ///< shuffle segment width
  std::source_location where;
  /// For `matrix` (the wmma operations, which need all 32 lanes at the same call):
  /// completes the operation for the whole warp, given each lane's `value` as a
  /// pointer, while every lane waits; returns what is wrong, or an empty string.
  std::string (*complete)(void* const* lanes) = nullptr;
};
/// Waits until every lane named in the mask has made the same request, then
/// returns this lane's result (the value it reads, or the vote's bits).
std::uint64_t warp_collective(const WarpRequest& request);
/// The lanes of the caller's warp that exist and have not returned.
unsigned active_mask();
/// Throws attn::cuda::LaunchError saying `what`, after the running kernel's name,
/// block and thread: how device-side code of the emulator reports a misuse.
[[noreturn]] void misuse(const std::string& what);

template <class T>
std::uint64_t to_bits(T value) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <class T>
T from_bits(std::uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

}  // namespace attn::cuda::emu

// ---------------------------------------------------------------------------
// Device functions: barrier, warp shuffles and votes.
// ---------------------------------------------------------------------------
inline void __syncthreads(std::source_location where = std::source_location::current()) {
  attn::cuda::emu::syncthreads(where, 0);
}
inline int __syncthreads_count(int predicate, std::source_location where = std::source_location::current()) {
  return attn::cuda::emu::syncthreads(where, predicate != 0);
}
inline int __syncthreads_and(int predicate, std::source_location where = std::source_location::current()) {
  const int count = attn::cuda::emu::syncthreads(where, predicate != 0);
  return count == static_cast<int>(blockDim.x * blockDim.y * blockDim.z);
}
inline int __syncthreads_or(int predicate, std::source_location where = std::source_location::current()) {
  return attn::cuda::emu::syncthreads(where, predicate != 0) > 0;
}

inline void __syncwarp(unsigned mask = 0xffffffffu,
                       std::source_location where = std::source_location::current()) {
  using R = attn::cuda::emu::WarpRequest;
  attn::cuda::emu::warp_collective({R::syncwarp, "__syncwarp", mask, 0, 0, warpSize, where});
}

inline unsigned __activemask() { return attn::cuda::emu::active_mask(); }

template <class T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              std::source_location where = std::source_location::current()) {
  using namespace attn::cuda::emu;
  return from_bits<T>(warp_collective(
      {WarpRequest::shfl_idx, "__shfl_sync", mask, to_bits(var), src_lane, width, where}));
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 std::source_location where = std::source_location::current()) {
  using namespace attn::cuda::emu;
  return from_bits<T>(warp_collective({WarpRequest::shfl_up, "__shfl_up_sync", mask, to_bits(var),
                                       static_cast<int>(delta), width, where}));
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   std::source_location where = std::source_location::current()) {
  using namespace attn::cuda::emu;
  return from_bits<T>(warp_collective({WarpRequest::shfl_down, "__shfl_down_sync", mask,
                                       to_bits(var), static_cast<int>(delta), width, where}));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  std::source_location where = std::source_location::current()) {
  using namespace attn::cuda::emu;
  return from_bits<T>(warp_collective(
      {WarpRequest::shfl_xor, "__shfl_xor_sync", mask, to_bits(var), lane_mask, width, where}));
}

inline unsigned __ballot_sync(unsigned mask, int predicate,
                              std::source_location where = std::source_location::current()) {
  using R = attn::cuda::emu::WarpRequest;
  return static_cast<unsigned>(attn::cuda::emu::warp_collective(
      {R::ballot, "__ballot_sync", mask, predicate != 0, 0, warpSize, where}));
}
inline int __any_sync(unsigned mask, int predicate,
                      std::source_location where = std::source_location::current()) {
  using R = attn::cuda::emu::WarpRequest;
  return static_cast<int>(attn::cuda::emu::warp_collective(
      {R::any, "__any_sync", mask, predicate != 0, 0, warpSize, where}));
}
inline int __all_sync(unsigned mask, int predicate,
                      std::source_location where = std::source_location::current()) {
  using R = attn::cuda::emu::WarpRequest;
  return static_cast<int>(attn::cuda::emu::warp_collective(
      {R::all, "__all_sync", mask, predicate != 0, 0, warpSize, where}));
}

// ---------------------------------------------------------------------------
// Atomics. One CUDA thread runs at a time and none is interrupted inside a
// device function, so a plain read-modify-write is atomic here.
// ---------------------------------------------------------------------------
template <class T>
T atomicAdd(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = static_cast<T>(old + value);
  return old;
}
template <class T>
T atomicSub(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = static_cast<T>(old - value);
  return old;
}
template <class T>
T atomicExch(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = value;
  return old;
}
template <class T>
T atomicMin(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = value < old ? value : old;
  return old;
}
template <class T>
T atomicMax(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = value > old ? value : old;
  return old;
}
template <class T>
T atomicCAS(T* address, std::type_identity_t<T> compare, std::type_identity_t<T> value) {
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}
template <class T>
T atomicAnd(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = old & value;
  return old;
}
template <class T>
T atomicOr(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = old | value;
  return old;
}
template <class T>
T atomicXor(T* address, std::type_identity_t<T> value) {
  const T old = *address;
  *address = old ^ value;
  return old;
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---------------------------------------------------------------------------
// Math and bit intrinsics (expf, sqrtf, fmaxf ... come from <cmath>).
// ---------------------------------------------------------------------------
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
template <class T>
T __ldg(const T* address) {
  return *address;
}
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(unsigned x) { return std::countl_zero(x); }
inline int __ffs(unsigned x) { return x == 0 ? 0 : std::countr_zero(x) + 1; }

// CUDA's min and max for operands of one type (mixed types: cast one).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
