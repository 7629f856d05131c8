/// @file cuda_todo.hpp
/// @brief ATTN_KERNEL_TODO: the scaffold's body of a kernel the learner writes.
///
/// A kernel cannot throw on a GPU, so a scaffold's kernel body is
///
///     ATTN_KERNEL_TODO("08.1", "3. The naive kernel");
///
/// On the emulator it throws attn::NotImplemented (named after the kernel, with
/// the README section), which reaches the caller of the launch like any exception.
/// Under nvcc the first thread prints the same words and every thread traps: the
/// launch fails, and ATTN_CUDA_CHECK reports it.
#pragma once

#include "attn/cuda.hpp"

#if ATTN_CUDA_RUNTIME
#include <cstdio>
#define ATTN_KERNEL_TODO(todo, section)                                                      \
  do {                                                                                       \
    if (threadIdx.x + threadIdx.y + threadIdx.z + blockIdx.x + blockIdx.y + blockIdx.z == 0) \
      printf("attn::NotImplemented: TODO(%s) is not implemented yet\n  read: README.md, "    \
             "section \"%s\"\n",                                                             \
             todo, section);                                                                 \
    __trap();                                                                                \
  } while (0)
#else
#include "attn/core.hpp"
#define ATTN_KERNEL_TODO(todo, section) throw ::attn::NotImplemented(todo, section)
#endif
