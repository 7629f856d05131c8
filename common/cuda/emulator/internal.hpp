/// @file internal.hpp
/// @brief What the emulator's source files share; not for kernels or host code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <string>

#include "attn/cuda.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define ATTN_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ATTN_EMU_ASAN 1
#endif
#endif
#ifndef ATTN_EMU_ASAN
#define ATTN_EMU_ASAN 0
#endif

namespace attn::cuda::emu::internal {

/// The kernel being run, or nullptr outside a launch (read by the fault handler).
extern const char* running_kernel;

/// Opens device memory to loads and stores (while a kernel runs) or closes it
/// (host code may touch device memory only through cudaMemcpy and cudaMemset).
void set_device_access(bool open);

/// Installs the SIGSEGV handler that explains faults on guard pages, unless it is installed.
void install_fault_handler();

/// While it lives, the calling host thread handles signals on a stack of its own,
/// so that a fiber's stack overflow can still be reported.
class AlternateSignalStack {
 public:
  AlternateSignalStack();
  ~AlternateSignalStack();
  AlternateSignalStack(const AlternateSignalStack&) = delete;
  AlternateSignalStack& operator=(const AlternateSignalStack&) = delete;

 private:
  char* memory_;
};

/// The address whose alignment a GPU would see for `p`: its offset from the start of
/// its device allocation (a GPU aligns allocations to 256 bytes, the emulator less),
/// or `p` itself when it is not device memory.
std::uintptr_t gpu_alignment_address(const void* p);

/// The running thread's wmma store of `value` at `address`, written to memory when
/// the thread next reaches __syncwarp or __syncthreads, or when its block ends (wmma.cpp says why).
void defer_store(float* address, float value);

/// Whether `address` lies in the guard page below a CUDA thread's stack.
bool is_stack_guard(std::uintptr_t address);

/// "(x,y,z)"
std::string coords(uint3 v);

/// "file.cu:42": a call site, for messages.
std::string where_str(const std::source_location& where);

}  // namespace attn::cuda::emu::internal
