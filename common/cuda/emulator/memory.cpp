// Device memory: every cudaMalloc gets its own pages, flanked by guard pages that
// no one may touch. The allocation ends exactly where the guard page after it
// begins, so the first byte past its end faults; a SIGSEGV handler then says
// which kernel, block and thread stepped out, and by how many bytes. Outside a
// kernel the pages are closed as well: host code that dereferences a device
// pointer faults, as it does with a GPU.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "internal.hpp"

namespace attn::cuda::emu {
namespace {

std::size_t page_bytes() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

/// One cudaMalloc: [guard page][data pages, the allocation at their end][guard page].
struct Allocation {
  char* mapping;
  std::size_t mapping_bytes;
  char* data;
  std::size_t bytes;
  char* pages() const { return mapping + page_bytes(); }
  std::size_t pages_bytes() const { return mapping_bytes - 2 * page_bytes(); }
};

std::map<std::uintptr_t, Allocation> allocations;  // by data address
bool device_access = false;                         // true while a kernel runs

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

void protect(const Allocation& a, bool open) {
  mprotect(a.pages(), a.pages_bytes(), open ? PROT_READ | PROT_WRITE : PROT_NONE);
}

/// The allocation holding [p, p + bytes), or nullptr.
const Allocation* find(const void* p, std::size_t bytes) {
  auto it = allocations.upper_bound(addr(p));
  if (it == allocations.begin()) return nullptr;
  const Allocation& a = (--it)->second;
  return addr(p) + bytes <= addr(a.data) + a.bytes ? &a : nullptr;
}

/// The allocation whose mapping (guard pages included) holds `p`, or nullptr.
const Allocation* near(std::uintptr_t p) {
  for (const auto& [start, a] : allocations)
    if (p >= addr(a.mapping) && p < addr(a.mapping) + a.mapping_bytes) return &a;
  return nullptr;
}

std::string hex(const void* p) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

/// Says what [p, p + bytes) is, for an error message.
std::string describe_range(const void* p, std::size_t bytes) {
  const std::string range = "[" + hex(p) + ", +" + std::to_string(bytes) + ")";
  if (const Allocation* a = near(addr(p))) {
    const std::string what = "a " + std::to_string(a->bytes) + "-byte device allocation at " + hex(a->data);
    if (addr(p) < addr(a->data))
      return range + " starts " + std::to_string(addr(a->data) - addr(p)) + " bytes before " + what;
    return range + " runs " + std::to_string(addr(p) + bytes - addr(a->data) - a->bytes) +
           " bytes past the end of " + what;
  }
  for (const auto& [start, a] : allocations)
    if (addr(p) < start && addr(p) + bytes > start)
      return range + " overlaps a device allocation at " + hex(a.data);
  return range + " is not device memory from cudaMalloc";
}

/// Opens an allocation to the emulator's own copies for the lifetime of the scope.
class HostAccess {
 public:
  explicit HostAccess(const Allocation* a) : a_(a) {
    if (a_ != nullptr && !device_access) protect(*a_, true);
  }
  ~HostAccess() {
    if (a_ != nullptr && !device_access) protect(*a_, false);
  }
  HostAccess(const HostAccess&) = delete;
  HostAccess& operator=(const HostAccess&) = delete;

 private:
  const Allocation* a_;
};

[[noreturn]] void misuse(const std::string& call, const std::string& what) {
  throw Error("attn::cuda emulator: " + call + ": " + what);
}

// --- The pointer arguments of the running launch, copied where the fault handler can read them. ---
constexpr std::size_t kMaxNamed = 32, kMaxExpression = 96;
struct Named {
  int position;
  char expression[kMaxExpression];
  const void* pointer;
};
Named named[kMaxNamed];
std::size_t named_count = 0;
char named_kernel[96] = "";

/// The pointer argument of the running launch that points into allocation `a`, or nullptr.
const Named* argument_into(const Allocation& a) {
  for (std::size_t i = 0; i < named_count; ++i) {
    const auto p = addr(named[i].pointer);
    if (p >= addr(a.data) && p <= addr(a.data) + a.bytes) return &named[i];
  }
  return nullptr;
}

// --- The fault handler. ---
struct sigaction previous_handler {};

/// Writes why the fault happened, then lets it happen again without this handler.
/// (snprintf is not async-signal-safe; the process is about to end, so it may be used.)
void on_fault(int number, siginfo_t* info, void*) {
  const auto p = addr(info->si_addr);
  char text[768];
  int n = 0;
  const auto append = [&](const char* format, auto... args) {
    if (n < static_cast<int>(sizeof text))
      n += std::snprintf(text + n, sizeof text - static_cast<std::size_t>(n), format, args...);
  };
  const Allocation* a = near(p);
  const bool stack_overflow = internal::is_stack_guard(p);
  if (a == nullptr && !stack_overflow) {
    // Not ours: returning re-runs the access under the previous handler (a sanitizer's, or the default).
    sigaction(SIGSEGV, &previous_handler, nullptr);
    return;
  }
  append("attn::cuda emulator: ");
  if (stack_overflow) {
    append("stack overflow (each CUDA thread has a small stack; large arrays belong in shared or global memory)");
  } else if (p >= addr(a->data) + a->bytes) {
    append("out-of-bounds access at byte offset %zu of a %zu-byte device allocation at %p (valid: 0 to %zu)",
           static_cast<std::size_t>(p - addr(a->data)), a->bytes, static_cast<void*>(a->data), a->bytes - 1);
  } else if (p < addr(a->data)) {
    append("out-of-bounds access %zu bytes before the start of a %zu-byte device allocation at %p",
           static_cast<std::size_t>(addr(a->data) - p), a->bytes, static_cast<void*>(a->data));
  } else {
    append("host code touched device memory at %p (a %zu-byte allocation at %p): use cudaMemcpy",
           info->si_addr, a->bytes, static_cast<void*>(a->data));
  }
  if (a != nullptr) {
    if (const Named* arg = argument_into(*a)) {
      append("\n  the buffer is argument %d of the launch, '%s'", arg->position, arg->expression);
      if (addr(arg->pointer) != addr(a->data))
        append(" (%zu bytes into its allocation)", static_cast<std::size_t>(addr(arg->pointer) - addr(a->data)));
    }
  }
  if (internal::running_kernel != nullptr) {
    append("\n  in kernel '%s', block (%u,%u,%u), thread (%u,%u,%u)", internal::running_kernel, blockIdx.x,
           blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
  }
  append("\n");
  if (n > static_cast<int>(sizeof text)) n = static_cast<int>(sizeof text);
  [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, text, static_cast<std::size_t>(n));
  ::signal(number, SIG_DFL);  // returning re-runs the access, which now ends the process
}

}  // namespace

namespace internal {

std::uintptr_t gpu_alignment_address(const void* p) {
  const Allocation* a = find(p, 0);
  return a != nullptr && addr(p) >= addr(a->data) ? addr(p) - addr(a->data) : addr(p);
}

void set_device_access(bool open) {
  device_access = open;
  for (const auto& [start, a] : allocations) protect(a, open);
}

constexpr std::size_t kSignalStackBytes = 64 * 1024;

AlternateSignalStack::AlternateSignalStack() : memory_(new char[kSignalStackBytes]) {
  stack_t stack{};
  stack.ss_sp = memory_;
  stack.ss_size = kSignalStackBytes;
  sigaltstack(&stack, nullptr);
}

AlternateSignalStack::~AlternateSignalStack() {
  stack_t off{};
  off.ss_flags = SS_DISABLE;
  sigaltstack(&off, nullptr);
  delete[] memory_;
}

void install_fault_handler() {
  // Test frameworks install their own handler for every test case: come back on top of it.
  struct sigaction installed {};
  sigaction(SIGSEGV, nullptr, &installed);
  if ((installed.sa_flags & SA_SIGINFO) && installed.sa_sigaction == &on_fault) return;
  struct sigaction action {};
  action.sa_sigaction = &on_fault;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_handler);
}

}  // namespace internal

NamedPointers::NamedPointers(const char* kernel, const PointerArgument* arguments, std::size_t count) {
  std::snprintf(named_kernel, sizeof named_kernel, "%s", kernel);
  named_count = 0;
  for (std::size_t i = 0; i < count && named_count < kMaxNamed; ++i) {
    Named& n = named[named_count++];
    n.position = arguments[i].position;
    const std::size_t length = std::min(arguments[i].length, kMaxExpression - 1);
    std::memcpy(n.expression, arguments[i].expression, length);
    n.expression[length] = '\0';
    n.pointer = arguments[i].pointer;
  }
}

NamedPointers::~NamedPointers() { named_count = 0; }

std::size_t split_arguments(const char* text, std::size_t (*spans)[2], std::size_t most) {
  std::size_t count = 0, start = 0, i = 0;
  int depth = 0;
  const auto close = [&](std::size_t end) {
    std::size_t b = start, e = end;
    while (b < e && text[b] == ' ') ++b;
    while (e > b && text[e - 1] == ' ') --e;
    if (count < most) spans[count][0] = b, spans[count][1] = e - b;
    ++count;
  };
  for (; text[i] != '\0'; ++i) {
    const char c = text[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (c == ',' && depth == 0) {
      close(i);
      start = i + 1;
    }
  }
  if (i > 0) close(i);
  return std::min(count, most);
}

}  // namespace attn::cuda::emu

using namespace attn::cuda::emu;

cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
  if (pointer == nullptr) misuse("cudaMalloc", "the pointer to store the address in is null");
  internal::install_fault_handler();
  *pointer = nullptr;
  if (bytes == 0) return cudaSuccess;
  const std::size_t page = page_bytes();
  const std::size_t data_pages = (bytes + page - 1) / page;
  const std::size_t mapping_bytes = (data_pages + 2) * page;
  void* m = mmap(nullptr, mapping_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return cudaErrorMemoryAllocation;
  Allocation a{static_cast<char*>(m), mapping_bytes, nullptr, bytes};
  a.data = a.pages() + a.pages_bytes() - bytes;  // ends at the guard page; aligned to the lowest set bit of bytes
  protect(a, true);
  std::memset(a.data, 0xff, bytes);  // uninitialized: every float reads as NaN
  if (!device_access) protect(a, false);
  allocations.emplace(addr(a.data), a);
  *pointer = a.data;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  if (internal::running_kernel != nullptr) misuse("cudaFree", "called inside a kernel");
  const auto it = allocations.find(addr(pointer));
  if (it == allocations.end())
    misuse("cudaFree", hex(pointer) + " is not an address that cudaMalloc returned (or it was freed already)");
  munmap(it->second.mapping, it->second.mapping_bytes);
  allocations.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  static const char* const names[] = {"cudaMemcpyHostToHost", "cudaMemcpyHostToDevice",
                                      "cudaMemcpyDeviceToHost", "cudaMemcpyDeviceToDevice",
                                      "cudaMemcpyDefault"};
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) return cudaErrorInvalidMemcpyDirection;
  const std::string call = std::string("cudaMemcpy(") + names[kind] + ")";
  if (internal::running_kernel != nullptr) misuse(call, "called inside a kernel");
  if (bytes == 0) return cudaSuccess;
  const Allocation* d = find(dst, bytes);
  const Allocation* s = find(src, bytes);
  if (kind == cudaMemcpyDefault) {
    if (d == nullptr && near(addr(dst)) != nullptr) misuse(call, "destination " + describe_range(dst, bytes));
    if (s == nullptr && near(addr(src)) != nullptr) misuse(call, "source " + describe_range(src, bytes));
  }
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind != cudaMemcpyDefault) {
    if (dst_device && d == nullptr) misuse(call, "destination " + describe_range(dst, bytes));
    if (src_device && s == nullptr) misuse(call, "source " + describe_range(src, bytes));
    if (!dst_device && (d != nullptr || near(addr(dst)) != nullptr))
      misuse(call, "the destination " + hex(dst) + " is device memory; the copy's kind says host");
    if (!src_device && (s != nullptr || near(addr(src)) != nullptr))
      misuse(call, "the source " + hex(src) + " is device memory; the copy's kind says host");
  }
  HostAccess open_dst(d);
  HostAccess open_src(s == d ? nullptr : s);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemset(void* pointer, int value, std::size_t bytes) {
  if (internal::running_kernel != nullptr) misuse("cudaMemset", "called inside a kernel");
  if (bytes == 0) return cudaSuccess;
  const Allocation* a = find(pointer, bytes);
  if (a == nullptr) misuse("cudaMemset", describe_range(pointer, bytes));
  HostAccess open(a);
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}
