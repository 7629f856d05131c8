// The heart of the emulator: a block's CUDA threads as fibers, the barrier,
// warp-collective operations, and the launch of a grid.
//
// A block runs in phases. In each phase every thread that is ready runs, one
// after another in the schedule's order, until it reaches a synchronization point
// (__syncthreads, a warp shuffle or vote, __syncwarp, a wmma call) or returns. Then the
// scheduler completes the warp operations whose lanes have all arrived, or, when
// none can complete, opens the barrier if every thread waits at the same one.
// When neither can happen, the block has a synchronization bug, which is reported.
// Memory is one array that every thread sees at once, except the elements of wmma
// stores, which a thread publishes at its next __syncwarp or __syncthreads (or, after
// it returns, at the end of the block).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fiber.hpp"
#include "internal.hpp"

#if ATTN_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace attn::cuda::emu {

namespace internal {
const char* running_kernel = nullptr;

std::string coords(uint3 v) {
  return '(' + std::to_string(v.x) + ',' + std::to_string(v.y) + ',' + std::to_string(v.z) + ')';
}

std::string where_str(const std::source_location& where) {
  std::string_view file = where.file_name();
  if (const auto slash = file.rfind('/'); slash != std::string_view::npos) file.remove_prefix(slash + 1);
  return std::string(file) + ':' + std::to_string(where.line());
}
}  // namespace internal

namespace {

using internal::coords;
using internal::where_str;

#if ATTN_EMU_ASAN
constexpr std::size_t kStackBytes = 256 * 1024;  // sanitizer frames are larger
#else
constexpr std::size_t kStackBytes = 64 * 1024;
#endif

/// One CUDA thread: its coordinates, its fiber, and what it waits for.
struct Thread {
  uint3 idx{};
  unsigned linear = 0;  // x + y*blockDim.x + z*blockDim.x*blockDim.y: lane = linear % 32
  enum State { ready, at_barrier, at_warp_op, exited } state = ready;
  std::source_location where;  // the synchronization point it waits at
  WarpRequest request{};       // what it asked, while at_warp_op
  std::uint64_t result = 0;    // the warp operation's answer for this lane
  int predicate = 0;           // what it passed to __syncthreads_count/_and/_or
  int barrier_count = 0;       // how many threads passed a non-zero predicate
  // Its wmma stores that no other thread may see yet: written when it next reaches
  // __syncwarp or __syncthreads, or when the block ends (wmma.cpp explains the model).
  std::vector<std::pair<float*, float>> pending_stores;
  internal::Fiber fiber;
  char* stack = nullptr;       // lowest address of its stack
  void* fake_stack = nullptr;  // AddressSanitizer's record of this stack
};

/// The fibers' stacks: one mapping with a guard page below each stack, kept for the next launch.
class StackPool {
 public:
  ~StackPool() {
    if (base_ != nullptr) munmap(base_, count_ * slot());
  }
  void reserve(std::size_t count) {
    if (count <= count_) return;
    if (base_ != nullptr) munmap(base_, count_ * slot());
    void* p = mmap(nullptr, count * slot(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw Error("attn::cuda emulator: cannot map the stacks of the CUDA threads");
    base_ = static_cast<char*>(p);
    count_ = count;
    for (std::size_t i = 0; i < count_; ++i) mprotect(base_ + i * slot(), page(), PROT_NONE);
  }
  char* stack(std::size_t i) const { return base_ + i * slot() + page(); }
  bool is_guard(std::uintptr_t address) const {
    const auto base = reinterpret_cast<std::uintptr_t>(base_);
    return base_ != nullptr && address >= base && address < base + count_ * slot() &&
           (address - base) % slot() < page();
  }

 private:
  static std::size_t page() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }
  static std::size_t slot() { return page() + kStackBytes; }
  char* base_ = nullptr;
  std::size_t count_ = 0;
};

/// The block being run, and everything its threads share.
struct Block {
  const LaunchConfig* config = nullptr;
  const std::function<void()>* body = nullptr;
  std::vector<Thread> threads;
  Thread* running = nullptr;  // the thread whose fiber is running, or nullptr in the scheduler
  internal::Fiber scheduler;  // where the scheduler waits while a thread runs
  std::string failure;       // a bug a thread found in its own call; the scheduler throws it
  std::exception_ptr thrown;  // an exception the kernel itself threw; the scheduler rethrows it
  struct alignas(128) Chunk {  // as a GPU's shared memory, aligned beyond what wmma needs (32)
    unsigned char bytes[128];
  };
  std::vector<Chunk> dynamic_shared;
  // The scheduler's stack, for AddressSanitizer, learnt on the first switch into a thread.
  const void* scheduler_stack = nullptr;
  std::size_t scheduler_stack_bytes = 0;
  void* scheduler_fake_stack = nullptr;
};

Block* current = nullptr;  // the block being run, or nullptr outside a launch
StackPool stacks;
Schedule schedule_policy = Schedule::shuffled;
std::uint64_t barriers_opened_so_far = 0;  // barriers_opened()
std::map<KernelId, std::size_t> shared_optin;  // cudaFuncAttributeMaxDynamicSharedMemorySize

// --- AddressSanitizer must be told when the stack changes under it. ---
void start_switch([[maybe_unused]] void** fake_stack_save, [[maybe_unused]] const void* bottom,
                  [[maybe_unused]] std::size_t bytes) {
#if ATTN_EMU_ASAN
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, bytes);
#endif
}
void finish_switch([[maybe_unused]] void* fake_stack_save, [[maybe_unused]] const void** old_bottom,
                   [[maybe_unused]] std::size_t* old_bytes) {
#if ATTN_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake_stack_save, old_bottom, old_bytes);
#endif
}

// --- Messages. ---
std::string thread_str(const Thread& t) { return "thread " + coords(t.idx); }

std::string lane_str(const Thread& t) {
  return "lane " + std::to_string(t.linear % 32) + " " + thread_str(t);
}

/// "attn::cuda emulator: kernel 'k', block (1,0,0), thread (5,0,0): <what>"
std::string report(const Block& b, const Thread& t, const std::string& what) {
  return "attn::cuda emulator: kernel '" + std::string(b.config->kernel) + "', block " +
         coords(blockIdx) + ", " + thread_str(t) + ": " + what;
}

std::string hex(unsigned mask) {
  std::ostringstream out;
  out << "0x" << std::hex << mask;
  return out.str();
}

// --- Switching between the scheduler and a thread's fiber. ---

/// Scheduler side: run `t` until it reaches a synchronization point or returns.
void run_thread(Block& b, Thread& t) {
  b.running = &t;
  threadIdx = t.idx;
  start_switch(&b.scheduler_fake_stack, t.stack, kStackBytes);
  internal::switch_fiber(b.scheduler, t.fiber);
  finish_switch(b.scheduler_fake_stack, nullptr, nullptr);
  b.running = nullptr;
}

/// Thread side: give control back to the scheduler; returns when the scheduler runs this thread again.
void yield_to_scheduler(Block& b, bool for_good) {
  Thread& t = *b.running;
  start_switch(for_good ? nullptr : &t.fake_stack, b.scheduler_stack, b.scheduler_stack_bytes);
  internal::switch_fiber(t.fiber, b.scheduler);
  finish_switch(t.fake_stack, &b.scheduler_stack, &b.scheduler_stack_bytes);
}

/// Thread side, after a bug in the running thread's own call has been written to
/// b.failure: leaves the thread for good. Its frames are abandoned, so no object
/// that owns memory may be alive in them (build the message in b.failure first).
[[noreturn]] void fail(Block& b) {
  yield_to_scheduler(b, true);
  std::abort();  // a failed thread is never resumed
}

/// At the thread's __syncwarp or __syncthreads, or when its block ends: its wmma stores reach memory.
void publish_stores(Thread& t) {
  for (const auto& [address, value] : t.pending_stores) *address = value;
  t.pending_stores.clear();
}

/// Every fiber starts here.
void thread_main() {
  Block& b = *current;
  finish_switch(nullptr, &b.scheduler_stack, &b.scheduler_stack_bytes);
  try {
    (*b.body)();
  } catch (...) {
    b.thrown = std::current_exception();
  }
  b.running->state = Thread::exited;
  yield_to_scheduler(b, true);
  std::abort();  // an exited thread is never resumed
}

Block& require_kernel(const char* what) {
  if (current == nullptr || current->running == nullptr)
    throw Error(std::string("attn::cuda emulator: ") + what + " called outside a kernel");
  return *current;
}

// --- The order of a phase. ---
std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// The running block's number in the grid: the seed of its schedule.
std::uint64_t block_linear() {
  return blockIdx.x + std::uint64_t{gridDim.x} * (blockIdx.y + std::uint64_t{gridDim.y} * blockIdx.z);
}

void phase_order(std::vector<unsigned>& order, std::size_t n, unsigned phase) {
  order.resize(n);
  std::iota(order.begin(), order.end(), 0u);
  if (schedule_policy == Schedule::reverse) std::reverse(order.begin(), order.end());
  if (schedule_policy != Schedule::shuffled) return;
  std::uint64_t state = block_linear() * 0x100000001B3ull + phase;
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[splitmix64(state) % i]);
}

// --- Warp-collective operations. ---

/// Whether a warp whose lanes have all arrived waits one more phase (shuffled
/// schedule only): about half of them do, so the warps of a block drift apart instead
/// of moving in lockstep, and a missing barrier between warps shows.
bool hold_warp(unsigned phase, std::size_t first_lane) {
  if (schedule_policy != Schedule::shuffled) return false;
  std::uint64_t state = (block_linear() * 0x9E3779B1ull + phase) * 0x10001ull + first_lane / 32;
  return (splitmix64(state) & 1u) != 0;
}

/// Completes, for every group of lanes that have all arrived, their warp operation,
/// except the groups that hold_warp keeps waiting when `may_hold`. Returns whether
/// some lanes can go on; `held`, whether a complete group was kept waiting.
bool release_warp_ops(Block& b, unsigned phase, bool may_hold, bool& held) {
  bool released = false;
  const std::size_t n = b.threads.size();
  for (std::size_t first = 0; first < n; first += 32) {
    const unsigned lanes = static_cast<unsigned>(std::min<std::size_t>(32, n - first));
    const unsigned present = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    Thread* warp = &b.threads[first];
    for (unsigned lane = 0; lane < lanes; ++lane) {
      const Thread& t = warp[lane];
      if (t.state != Thread::at_warp_op) continue;
      const WarpRequest& r = t.request;
      const unsigned group = r.mask & present;  // lanes past the end of the block do not exist
      bool all_here = true;
      for (unsigned l = 0; l < lanes; ++l) {
        if (!(group >> l & 1u)) continue;
        const Thread& o = warp[l];
        if (o.state == Thread::exited)
          throw LaunchError(report(b, t, std::string(r.name) + " at " + where_str(r.where) +
                                             " with mask " + hex(r.mask) + " waits for " +
                                             lane_str(o) + ", which has already returned"));
        if (o.state != Thread::at_warp_op) {
          all_here = false;
          continue;
        }
        const bool same_call = o.request.kind != WarpRequest::matrix ||
                               (std::string_view(o.request.name) == r.name &&
                                o.request.where.line() == r.where.line() &&
                                std::string_view(o.request.where.file_name()) == r.where.file_name());
        if (o.request.kind != r.kind || o.request.mask != r.mask || !same_call)
          throw LaunchError(report(
              b, t,
              "the lanes of a warp disagree: " + lane_str(t) + " is at " + r.name + "(mask " +
                  hex(r.mask) + ") at " + where_str(r.where) + ", " + lane_str(o) + " is at " +
                  o.request.name + "(mask " + hex(o.request.mask) + ") at " +
                  where_str(o.request.where) +
                  ". Every lane named in a mask must reach the same warp operation (for wmma: the same call) with the same mask"));
      }
      if (!all_here) continue;
      if (may_hold && hold_warp(phase, first)) {
        held = true;
        continue;
      }

      if (r.kind == WarpRequest::matrix) {
        if (lanes < 32 || group != 0xffffffffu)
          throw LaunchError(report(b, t,
                                   std::string(r.name) + " at " + where_str(r.where) +
                                       ": wmma operations need a full warp of 32 lanes, and this warp has " +
                                       std::to_string(lanes) + " (the block has " + std::to_string(n) +
                                       " threads: make it a multiple of 32)"));
        void* args[32];
        for (unsigned l = 0; l < 32; ++l) args[l] = reinterpret_cast<void*>(warp[l].request.value);
        if (const std::string wrong = r.complete(args); !wrong.empty())
          throw LaunchError(report(b, t, std::string(r.name) + " at " + where_str(r.where) + ": " + wrong));
        for (unsigned l = 0; l < 32; ++l) warp[l].state = Thread::ready;
        released = true;
        continue;
      }

      std::uint64_t votes = 0;
      for (unsigned l = 0; l < lanes; ++l)
        if ((group >> l & 1u) && warp[l].request.value != 0) votes |= 1ull << l;
      for (unsigned l = 0; l < lanes; ++l) {
        if (!(group >> l & 1u)) continue;
        Thread& o = warp[l];
        const WarpRequest& q = o.request;
        const int w = q.width;
        const int me = static_cast<int>(l);
        const int base = me & ~(w - 1);
        int src = me;
        switch (q.kind) {
          case WarpRequest::shfl_idx: src = base + (q.lane_arg & (w - 1)); break;
          case WarpRequest::shfl_up: src = me - base >= q.lane_arg ? me - q.lane_arg : me; break;
          case WarpRequest::shfl_down: src = me - base + q.lane_arg < w ? me + q.lane_arg : me; break;
          case WarpRequest::shfl_xor: src = (me ^ q.lane_arg) <= (me | (w - 1)) ? me ^ q.lane_arg : me; break;
          case WarpRequest::ballot: o.result = votes; break;
          case WarpRequest::any: o.result = votes != 0; break;
          case WarpRequest::all: o.result = votes == group; break;
          case WarpRequest::syncwarp: o.result = 0; break;
          case WarpRequest::matrix: break;  // completed above
        }
        if (q.kind <= WarpRequest::shfl_xor) {
          if (!(group >> src & 1u))
            throw LaunchError(report(
                b, o,
                std::string(q.name) + " at " + where_str(q.where) + " reads lane " + std::to_string(src) +
                    (src < static_cast<int>(lanes)
                         ? ", which is not in the mask " + hex(q.mask)
                         : ", which does not exist: the block has " + std::to_string(n) + " threads")));
          o.result = warp[src].request.value;
        }
      }
      for (unsigned l = 0; l < lanes; ++l)
        if (group >> l & 1u) warp[l].state = Thread::ready;
      released = true;
    }
  }
  return released;
}

// --- The barrier. ---

/// Called when no thread is ready and no warp operation can complete: opens the
/// barrier if every thread waits at the same one, else reports why the block is stuck.
void release_barrier(Block& b) {
  const Thread* at_barrier = nullptr;
  const Thread* returned = nullptr;
  std::size_t waiting = 0;
  for (const Thread& t : b.threads) {
    if (t.state == Thread::at_warp_op) {
      // Its warp operation cannot complete: a lane it names waits at a barrier.
      for (const Thread& o : b.threads)
        if (o.linear / 32 == t.linear / 32 && (t.request.mask >> (o.linear % 32) & 1u) &&
            o.state == Thread::at_barrier)
          throw LaunchError(report(b, t,
                                   std::string(t.request.name) + " at " + where_str(t.where) +
                                       " waits for " + lane_str(o) + ", which waits at __syncthreads at " +
                                       where_str(o.where) + ": the warp has diverged"));
    }
    if (t.state == Thread::at_barrier) {
      ++waiting;
      if (at_barrier == nullptr) at_barrier = &t;
      if (t.where.line() != at_barrier->where.line() ||
          std::string_view(t.where.file_name()) != at_barrier->where.file_name())
        throw LaunchError(report(b, t,
                                 "threads of one block wait at different barriers: " + thread_str(t) +
                                     " at __syncthreads at " + where_str(t.where) + ", " +
                                     thread_str(*at_barrier) + " at __syncthreads at " +
                                     where_str(at_barrier->where)));
    }
    if (t.state == Thread::exited && returned == nullptr) returned = &t;
  }
  if (returned != nullptr)
    throw LaunchError(report(
        b, *returned,
        "returned while other threads wait at __syncthreads at " + where_str(at_barrier->where) + " (" +
            std::to_string(waiting) + " of " + std::to_string(b.threads.size()) +
            " threads reached it). Every thread of a block must reach every __syncthreads: "
            "guard the work with an if instead of returning early"));
  int count = 0;
  for (const Thread& t : b.threads) count += t.predicate;
  for (Thread& t : b.threads) {
    t.state = Thread::ready;
    t.barrier_count = count;
  }
  ++barriers_opened_so_far;
}

void run_block(Block& b) {
  const std::size_t n = b.threads.size();
  for (Thread& t : b.threads) {
    t.state = Thread::ready;
    t.fake_stack = nullptr;
    t.pending_stores.clear();  // what a launch that failed left
    internal::make_fiber(t.fiber, t.stack, kStackBytes, &thread_main);
  }
  // __shared__ variables start with what the last block left, as on a GPU; the
  // dynamic shared memory starts as NaN.
  if (!b.dynamic_shared.empty())
    std::memset(b.dynamic_shared.data(), 0xff, b.dynamic_shared.size() * sizeof(Block::Chunk));

  std::vector<unsigned> order;
  std::size_t finished = 0;
  for (unsigned phase = 0; finished < n; ++phase) {
    phase_order(order, n, phase);
    for (unsigned i : order) {
      Thread& t = b.threads[i];
      if (t.state != Thread::ready) continue;
      run_thread(b, t);
      if (!b.failure.empty()) throw LaunchError(b.failure);
      if (b.thrown) std::rethrow_exception(b.thrown);
    }
    finished = static_cast<std::size_t>(std::count_if(
        b.threads.begin(), b.threads.end(), [](const Thread& t) { return t.state == Thread::exited; }));
    if (finished == n) {
      // No thread can wait for a thread that has returned: its last wmma stores are
      // for the host (or a later kernel) only.
      for (Thread& t : b.threads) publish_stores(t);
      continue;
    }
    bool held = false;
    if (release_warp_ops(b, phase, true, held)) continue;
    if (held && release_warp_ops(b, phase, false, held)) continue;  // never hold them all
    release_barrier(b);
  }
}

// --- The launch. ---

std::string dims(dim3 d) { return coords(uint3(d)); }

void check_config(const LaunchConfig& c) {
  const std::string head = "attn::cuda emulator: kernel '" + std::string(c.kernel) + "' launched with grid " +
                           dims(c.grid) + ", block " + dims(c.block) + ": ";
  const unsigned block[3] = {c.block.x, c.block.y, c.block.z};
  const unsigned grid[3] = {c.grid.x, c.grid.y, c.grid.z};
  for (int i = 0; i < 3; ++i) {
    if (block[i] == 0 || grid[i] == 0)
      throw LaunchError(head + "every dimension of grid and block must be at least 1");
    if (block[i] > kMaxBlockDim[i])
      throw LaunchError(head + "block dimension " + "xyz"[i] + " is " + std::to_string(block[i]) +
                        ", at most " + std::to_string(kMaxBlockDim[i]));
    if (grid[i] > kMaxGridDim[i])
      throw LaunchError(head + "grid dimension " + "xyz"[i] + " is " + std::to_string(grid[i]) +
                        ", at most " + std::to_string(kMaxGridDim[i]));
  }
  const std::uint64_t threads = std::uint64_t{c.block.x} * c.block.y * c.block.z;
  if (threads > kMaxThreadsPerBlock)
    throw LaunchError(head + "a block of " + std::to_string(threads) + " threads; at most " +
                      std::to_string(kMaxThreadsPerBlock) + " threads per block");
  const auto optin = shared_optin.find(c.id);
  const std::size_t limit = optin == shared_optin.end() ? kDefaultSharedBytes : optin->second;
  if (c.dynamic_shared_bytes > limit)
    throw LaunchError(head + std::to_string(c.dynamic_shared_bytes) +
                      " bytes of dynamic shared memory; this kernel may use at most " + std::to_string(limit) +
                      (optin == shared_optin.end()
                           ? " without cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, "
                             "bytes), which allows up to " + std::to_string(kOptinSharedBytes)
                           : std::string(" (its cudaFuncAttributeMaxDynamicSharedMemorySize)")));
}

/// Sets up the emulator's state for one launch and restores it, even when the launch throws.
struct LaunchScope {
  explicit LaunchScope(Block& b) {
    current = &b;
    internal::running_kernel = b.config->kernel;
    internal::set_device_access(true);
  }
  ~LaunchScope() {
    internal::set_device_access(false);
    internal::running_kernel = nullptr;
    current = nullptr;
    threadIdx = blockIdx = {0, 0, 0};
  }
  LaunchScope(const LaunchScope&) = delete;
  LaunchScope& operator=(const LaunchScope&) = delete;
};

}  // namespace

namespace internal {
bool is_stack_guard(std::uintptr_t address) { return stacks.is_guard(address); }
}  // namespace internal

Schedule set_schedule(Schedule schedule) { return std::exchange(schedule_policy, schedule); }

std::uint64_t barriers_opened() { return barriers_opened_so_far; }

void run_grid(const LaunchConfig& config, const std::function<void()>& thread_body) {
  if (current != nullptr)
    throw LaunchError("attn::cuda emulator: kernel '" + std::string(config.kernel) +
                      "' launched from inside kernel '" + current->config->kernel +
                      "' (dynamic parallelism is not emulated)");
  check_config(config);
  internal::install_fault_handler();

  Block b;
  b.config = &config;
  b.body = &thread_body;
  const dim3 d = config.block;
  b.threads.resize(std::size_t{d.x} * d.y * d.z);
  stacks.reserve(b.threads.size());
  for (unsigned z = 0, i = 0; z < d.z; ++z)
    for (unsigned y = 0; y < d.y; ++y)
      for (unsigned x = 0; x < d.x; ++x, ++i) {
        b.threads[i].idx = {x, y, z};
        b.threads[i].linear = i;
        b.threads[i].stack = stacks.stack(i);
      }
  b.dynamic_shared.resize((config.dynamic_shared_bytes + sizeof(Block::Chunk) - 1) / sizeof(Block::Chunk));

  // The blocks run on a host thread of their own, made for this launch: the
  // __shared__ variables (thread_local) start at zero in every launch.
  std::exception_ptr error;
  std::thread launch_thread([&] {
    internal::AlternateSignalStack signal_stack;
    try {
      LaunchScope scope(b);
      gridDim = config.grid;
      blockDim = config.block;
      for (unsigned z = 0; z < config.grid.z; ++z)
        for (unsigned y = 0; y < config.grid.y; ++y)
          for (unsigned x = 0; x < config.grid.x; ++x) {
            blockIdx = {x, y, z};
            run_block(b);
          }
    } catch (...) {
      error = std::current_exception();
    }
  });
  launch_thread.join();
  if (error) std::rethrow_exception(error);
}

cudaError_t set_kernel_attribute(KernelId kernel, cudaFuncAttribute attribute, int value) {
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize)
    throw Error("attn::cuda emulator: cudaFuncSetAttribute: only cudaFuncAttributeMaxDynamicSharedMemorySize "
                "is emulated");
  if (value < 0 || static_cast<std::size_t>(value) > kOptinSharedBytes)
    throw Error("attn::cuda emulator: cudaFuncSetAttribute: " + std::to_string(value) +
                " bytes of dynamic shared memory asked, at most " + std::to_string(kOptinSharedBytes) +
                " on sm_90");
  shared_optin[kernel] = static_cast<std::size_t>(value);
  return cudaSuccess;
}

void* dynamic_shared_memory() {
  Block& b = require_kernel("ATTN_DYNAMIC_SHARED");
  return b.dynamic_shared.empty() ? nullptr : b.dynamic_shared.data();
}

int syncthreads(std::source_location where, int predicate) {
  Block& b = require_kernel("__syncthreads");
  Thread& t = *b.running;
  publish_stores(t);
  t.state = Thread::at_barrier;
  t.where = where;
  t.predicate = predicate;
  yield_to_scheduler(b, false);
  return t.barrier_count;
}

std::uint64_t warp_collective(const WarpRequest& request) {
  Block& b = require_kernel(request.name);
  Thread& t = *b.running;
  const unsigned lane = t.linear % 32;
  if (request.width < 1 || request.width > 32 || !std::has_single_bit(static_cast<unsigned>(request.width)))
    b.failure = report(b, t,
                       std::string(request.name) + " at " + where_str(request.where) + ": width " +
                           std::to_string(request.width) + " is not a power of two from 1 to 32");
  else if (!(request.mask >> lane & 1u))
    b.failure = report(b, t,
                       std::string(request.name) + " at " + where_str(request.where) + ": the mask " +
                           hex(request.mask) + " does not name the calling lane " + std::to_string(lane));
  if (!b.failure.empty()) fail(b);
  if (request.kind == WarpRequest::syncwarp) publish_stores(t);  // shuffles and votes order no memory
  t.state = Thread::at_warp_op;
  t.request = request;
  t.where = request.where;
  yield_to_scheduler(b, false);
  return t.result;
}

namespace internal {
void defer_store(float* address, float value) {
  require_kernel("wmma::store_matrix_sync").running->pending_stores.emplace_back(address, value);
}
}  // namespace internal

void misuse(const std::string& what) {
  Block& b = require_kernel("a device function");
  throw LaunchError(report(b, *b.running, what));
}

unsigned active_mask() {
  Block& b = require_kernel("__activemask");
  const std::size_t first = b.running->linear / 32 * 32;
  unsigned mask = 0;
  for (std::size_t l = 0; l < 32 && first + l < b.threads.size(); ++l)
    if (b.threads[first + l].state != Thread::exited) mask |= 1u << l;
  return mask;
}

}  // namespace attn::cuda::emu
