/// @file counting_new.hpp
/// @brief A counting replacement of the global operator new and delete, for lesson 11's memory
///        test and the benchmark that draws its figure. Include it in exactly one source file
///        of an executable: it defines the replaceable allocation functions.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace attn::counting {
/// Bytes allocated by operator new and not yet freed, and the largest value it reached.
inline std::size_t g_live = 0;
inline std::size_t g_peak = 0;
/// Each block carries its size in a header of one max_align_t, so that delete can subtract it.
inline constexpr std::size_t kHeader = alignof(std::max_align_t);

inline void* counted_new(std::size_t n) noexcept {
  void* base = std::malloc(n + kHeader);
  if (base == nullptr) return nullptr;
  *static_cast<std::size_t*>(base) = n;
  g_live += n;
  g_peak = std::max(g_peak, g_live);
  return static_cast<char*>(base) + kHeader;
}

inline void counted_delete(void* p) noexcept {
  if (p == nullptr) return;
  void* base = static_cast<char*>(p) - kHeader;
  g_live -= *static_cast<std::size_t*>(base);
  std::free(base);
}

inline void* counted_new_or_throw(std::size_t n) {
  void* p = counted_new(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

/// The peak number of bytes allocated during f() beyond those allocated before it (its
/// results included, while they live).
template <class F>
std::size_t peak_extra_bytes(F&& f) {
  const std::size_t before = g_live;
  g_peak = g_live;
  f();
  return g_peak - before;
}
}  // namespace attn::counting

void* operator new(std::size_t n) { return attn::counting::counted_new_or_throw(n); }
void* operator new[](std::size_t n) { return attn::counting::counted_new_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return attn::counting::counted_new(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return attn::counting::counted_new(n); }
void operator delete(void* p) noexcept { attn::counting::counted_delete(p); }
void operator delete[](void* p) noexcept { attn::counting::counted_delete(p); }
void operator delete(void* p, std::size_t) noexcept { attn::counting::counted_delete(p); }
void operator delete[](void* p, std::size_t) noexcept { attn::counting::counted_delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { attn::counting::counted_delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { attn::counting::counted_delete(p); }
