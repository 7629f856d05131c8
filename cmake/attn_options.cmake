# Compiler options shared by every target of the project.
add_library(attn_options INTERFACE)
target_compile_features(attn_options INTERFACE cxx_std_20)
# (C++ only: in a GPU build, nvcc compiles the .cu files with its own options.)
target_compile_options(attn_options INTERFACE
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<CXX_COMPILER_ID:GNU,Clang>>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${ATTN_WERROR}>>:-Werror>)
# Every target sees the same definitions, so that they can share one precompiled header.
target_compile_definitions(attn_options INTERFACE
  ATTN_FIXTURE_DIR="${CMAKE_SOURCE_DIR}/tests/fixtures")
# xtensor's own assertions catch out-of-range views in debug builds.
target_compile_definitions(attn_options INTERFACE $<$<CONFIG:Debug>:XTENSOR_ENABLE_ASSERT>)
if(ATTN_SANITIZE)
  target_compile_options(attn_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer>)
  target_link_options(attn_options INTERFACE -fsanitize=address,undefined)
endif()
