# Included by the top-level CMakeLists.txt, before common/ and the lessons: with
# ATTN_CUDA_GPU the CUDA lessons' .cu files are compiled by nvcc and run on an
# NVIDIA GPU; without it (the default) they run on the CPU emulator.
# (enable_language must run in the top-level directory, hence this file.)
option(ATTN_CUDA_GPU "Build the CUDA lessons for an NVIDIA GPU with nvcc (default: the CPU emulator)" OFF)
if(ATTN_CUDA_GPU)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  enable_language(CUDA)
  # CMake 3.25 does not know nvcc 13's flag for C++20: tell it.
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
