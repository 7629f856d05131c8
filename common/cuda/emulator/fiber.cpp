// Fibers: make_fiber and switch_fiber (see fiber.hpp).
#include "fiber.hpp"

#include <cstdint>
#include <cstring>

#include "internal.hpp"

#if ATTN_EMU_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace attn::cuda::emu::internal {

namespace {
/// A stack is reused by the next block: AddressSanitizer must forget the frames
/// its last fiber left there (they never returned).
void forget_old_frames([[maybe_unused]] char* stack, [[maybe_unused]] std::size_t bytes) {
#if ATTN_EMU_ASAN
  __asan_unpoison_memory_region(stack, bytes);
#endif
}
}  // namespace

#if ATTN_EMU_FIBER_ASM

// attn_emu_switch(void** save_sp, void* next_sp), System V x86-64:
// push the callee-saved registers and the SSE/x87 control words on the current
// stack, store the stack pointer in *save_sp, load next_sp, pop the next fiber's
// registers and return into it. The caller-saved registers need no saving:
// the compiler assumes a call clobbers them.
extern "C" void attn_emu_switch(void** save_sp, void* next_sp);
asm(R"(
  .pushsection .text
  .globl attn_emu_switch
  .type attn_emu_switch, @function
attn_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size attn_emu_switch, .-attn_emu_switch
  .popsection
)");

void make_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)()) {
  forget_old_frames(stack, bytes);
  // The new stack, from its top down, as attn_emu_switch will pop it:
  //   0        the return address of entry(): none, which also ends a debugger's backtrace
  //   entry    where attn_emu_switch's ret goes
  //   0 x 6    rbp, rbx, r12 ... r15
  //   control  MXCSR and the x87 control word, copied from the running code
  auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t{15};
  auto* slot = reinterpret_cast<std::uint64_t*>(top);
  *--slot = 0;
  *--slot = reinterpret_cast<std::uint64_t>(entry);
  for (int i = 0; i < 6; ++i) *--slot = 0;
  std::uint32_t mxcsr = 0;
  std::uint16_t x87 = 0;
  asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(x87));
  --slot;
  std::memcpy(slot, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(slot) + 4, &x87, 2);
  fiber.sp = slot;
}

void switch_fiber(Fiber& from, Fiber& to) { attn_emu_switch(&from.sp, to.sp); }

#else

void make_fiber(Fiber& fiber, char* stack, std::size_t bytes, void (*entry)()) {
  forget_old_frames(stack, bytes);
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = stack;
  fiber.context.uc_stack.ss_size = bytes;
  fiber.context.uc_link = nullptr;
  makecontext(&fiber.context, entry, 0);
}

void switch_fiber(Fiber& from, Fiber& to) { swapcontext(&from.context, &to.context); }

#endif

}  // namespace attn::cuda::emu::internal
