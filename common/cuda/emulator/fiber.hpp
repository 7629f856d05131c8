/// @file fiber.hpp
/// @brief A fiber: a stack of its own and the saved registers of the code on it.
///
/// Switching fibers is all the emulator needs from the machine. The portable way is
/// ucontext from the C library (makecontext/swapcontext); its swapcontext also saves
/// the signal mask with a system call, which makes it slow. On x86-64 a dozen lines
/// of assembly (fiber.cpp) switch without one, about 50 times faster. Define
/// ATTN_EMU_UCONTEXT to use ucontext everywhere.
#pragma once

#include <cstddef>

#if defined(__x86_64__) && !defined(ATTN_EMU_UCONTEXT)
#define ATTN_EMU_FIBER_ASM 1
#else
#define ATTN_EMU_FIBER_ASM 0
#include <ucontext.h>
#endif

namespace attn::cuda::emu::internal {

struct Fiber {
#if ATTN_EMU_FIBER_ASM
  void* sp = nullptr;  // its stack pointer while it is not running; its registers are on that stack
#else
  ucontext_t context{};
#endif
};

/// Prepares `fiber` to run `entry()`, which must never return, on [stack, stack + bytes).
void make_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)());

/// Saves the running code into `from` and resumes `to`; returns when something switches back to `from`.
void switch_fiber(Fiber& from, Fiber& to);

}  // namespace attn::cuda::emu::internal
