// The CPU emulator of the CUDA execution model: it computes what a GPU computes,
// it makes missing barriers fail every time, and it reports each classic bug with
// the kernel, block and thread that made it.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "attn/cuda.hpp"
#include "attn/device_buffer.hpp"
#include "kernels.hpp"

using attn::cuda::DeviceBuffer;
using attn::cuda::LaunchError;
using attn::cuda::emu::Schedule;

namespace {

std::vector<float> ramp(int n, float scale = 1.0f) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = scale * static_cast<float>((i * 37) % 101 - 50);
  return v;
}

/// Sums of consecutive chunks of `chunk` elements (the last one shorter), in double.
std::vector<double> chunk_sums(const std::vector<float>& x, int chunk) {
  std::vector<double> sums((x.size() + static_cast<std::size_t>(chunk) - 1) / static_cast<std::size_t>(chunk), 0.0);
  for (std::size_t i = 0; i < x.size(); ++i) sums[i / static_cast<std::size_t>(chunk)] += x[i];
  return sums;
}

/// The values here are small integers, so every sum is exact in float.
bool equal_sums(const std::vector<float>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (static_cast<double>(got[i]) != want[i]) return false;
  return true;
}

/// Sets the schedule for one scope.
struct ScheduleScope {
  explicit ScheduleScope(Schedule s) : previous(attn::cuda::emu::set_schedule(s)) {}
  ~ScheduleScope() { attn::cuda::emu::set_schedule(previous); }
  Schedule previous;
};

std::vector<float> block_sums(const std::vector<float>& x, int threads, bool with_barrier) {
  const int n = static_cast<int>(x.size());
  DeviceBuffer<float> dx(x);
  DeviceBuffer<float> partial(static_cast<std::size_t>((n + threads - 1) / threads));
  emu_test::block_sum(dx.get(), partial.get(), n, threads, with_barrier);
  return partial.download();
}

/// Runs `fn` in a child process; returns what it wrote to stderr and how it ended.
struct ChildResult {
  bool killed_by_segv = false;
  std::string stderr_text;
};
ChildResult run_in_child(const std::function<void()>& fn) {
  int pipe_fds[2];
  REQUIRE(pipe(pipe_fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    fn();
    _exit(0);
  }
  close(pipe_fds[1]);
  ChildResult result;
  char buffer[4096];
  for (ssize_t got; (got = read(pipe_fds[0], buffer, sizeof buffer)) > 0;)
    result.stderr_text.append(buffer, static_cast<std::size_t>(got));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.killed_by_segv = WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
  return result;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a block reduction in shared memory sums every block of an odd-sized array") {
  for (const int threads : {32, 256, 1024}) {
    const auto x = ramp(3001);
    CHECK(equal_sums(block_sums(x, threads, true), chunk_sums(x, threads)));
  }
}

TEST_CASE("the block reduction gives a wrong answer when its barriers are removed") {
  const auto x = ramp(3001);
  const auto want = chunk_sums(x, 256);
  for (const Schedule s : {Schedule::shuffled, Schedule::forward}) {
    ScheduleScope scope(s);
    CHECK(equal_sums(block_sums(x, 256, true), want));
    CHECK_FALSE(equal_sums(block_sums(x, 256, false), want));
  }
}

TEST_CASE("one fixed order can hide a missing barrier, which is why the default order is shuffled") {
  // Run last to first, every thread finds the partial sums it needs already done.
  const auto x = ramp(3001);
  ScheduleScope scope(Schedule::reverse);
  CHECK(equal_sums(block_sums(x, 256, false), chunk_sums(x, 256)));
}

TEST_CASE("a missing barrier fails the same way on every run") {
  // The order of the threads depends on the block and the phase, never on timing,
  // and shared memory starts at zero in every launch.
  const auto x = ramp(3001);
  const auto bytes = [](const std::vector<float>& v) {
    return std::vector<unsigned char>(reinterpret_cast<const unsigned char*>(v.data()),
                                      reinterpret_cast<const unsigned char*>(v.data() + v.size()));
  };
  const auto first = bytes(block_sums(x, 256, false));
  block_sums(x, 256, true);
  CHECK(first == bytes(block_sums(x, 256, false)));
  CHECK(first == bytes(block_sums(x, 256, false)));
}

TEST_CASE("the emulator counts the block barriers it opens, one per __syncthreads of each block") {
  // 3001 elements in blocks of 256 threads: 12 blocks, each with 1 + log2(256) = 9
  // barriers; the same kernel without barriers opens none.
  const auto x = ramp(3001);
  const auto opened = [&](bool with_barrier) {
    const std::uint64_t before = attn::cuda::emu::barriers_opened();
    block_sums(x, 256, with_barrier);
    return attn::cuda::emu::barriers_opened() - before;
  };
  CHECK(opened(true) == 12 * 9);
  CHECK(opened(false) == 0);
}

TEST_CASE("reversing chunks through shared memory needs its barrier under every schedule") {
  const int n = 3 * 128;
  std::vector<int> data(n);
  std::iota(data.begin(), data.end(), 0);
  std::vector<int> want(data);
  for (int b = 0; b < 3; ++b) std::reverse(want.begin() + b * 128, want.begin() + (b + 1) * 128);
  for (const Schedule s : {Schedule::shuffled, Schedule::forward, Schedule::reverse}) {
    ScheduleScope scope(s);
    DeviceBuffer<int> good(data), bad(data);
    emu_test::reverse_chunks(good.get(), n, 128, true);
    emu_test::reverse_chunks(bad.get(), n, 128, false);
    CHECK(good.download() == want);
    CHECK(bad.download() != want);
  }
}

TEST_CASE("a prefix sum with two barriers per step is right, and wrong without them") {
  for (const int n : {1000, 1024, 33}) {
    std::vector<unsigned> in(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) in[static_cast<std::size_t>(i)] = static_cast<unsigned>((i * 7) % 13);
    std::vector<unsigned> want(in.size());
    std::inclusive_scan(in.begin(), in.end(), want.begin());
    for (const Schedule s : {Schedule::shuffled, Schedule::forward, Schedule::reverse}) {
      ScheduleScope scope(s);
      DeviceBuffer<unsigned> din(in), good(in.size()), bad(in.size());
      emu_test::block_scan(din.get(), good.get(), n, true);
      emu_test::block_scan(din.get(), bad.get(), n, false);
      CHECK(good.download() == want);
      CHECK(bad.download() != want);
    }
  }
}

TEST_CASE("a tiled matrix product is exact with its two barriers and wrong without them, at odd sizes") {
  for (const auto& [m, k, n] : {std::array{37, 53, 29}, std::array{16, 16, 16}, std::array{1, 70, 3}}) {
    CAPTURE(m);
    CAPTURE(k);
    CAPTURE(n);
    // Small integers: every product and sum is exact in float.
    std::vector<float> a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n));
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(static_cast<int>(i % 7) - 3);
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(static_cast<int>(i % 5) - 2);
    std::vector<float> want(static_cast<std::size_t>(m * n), 0.0f);
    for (int r = 0; r < m; ++r)
      for (int c = 0; c < n; ++c)
        for (int j = 0; j < k; ++j)
          want[static_cast<std::size_t>(r * n + c)] +=
              a[static_cast<std::size_t>(r * k + j)] * b[static_cast<std::size_t>(j * n + c)];
    DeviceBuffer<float> da(a), db(b), good(want.size()), bad(want.size());
    for (const Schedule s : {Schedule::shuffled, Schedule::forward, Schedule::reverse}) {
      ScheduleScope scope(s);
      emu_test::matmul_tiled(da.get(), db.get(), good.get(), m, k, n, true);
      emu_test::matmul_tiled(da.get(), db.get(), bad.get(), m, k, n, false);
      CHECK(good.download() == want);
      CHECK(bad.download() != want);
    }
  }
}

TEST_CASE("dynamic shared memory holds what the launch asks for, and more than 48 KiB needs an opt-in") {
  const auto x = ramp(3000);
  DeviceBuffer<float> dx(x);
  DeviceBuffer<float> partial(3);
  emu_test::block_sum_dynamic(dx.get(), partial.get(), 3000, 1024, 1024 * 4, 0);
  CHECK(equal_sums(partial.download(), chunk_sums(x, 1024)));

  CHECK_THROWS_WITH_AS(emu_test::block_sum_dynamic(dx.get(), partial.get(), 3000, 1024, 64 * 1024, 0),
                       doctest::Contains("65536 bytes of dynamic shared memory; this kernel may use at most 49152"),
                       LaunchError);
  emu_test::block_sum_dynamic(dx.get(), partial.get(), 3000, 1024, 64 * 1024, 64 * 1024);
  CHECK(equal_sums(partial.download(), chunk_sums(x, 1024)));
  CHECK_THROWS_WITH_AS(emu_test::block_sum_dynamic(dx.get(), partial.get(), 3000, 1024, 64 * 1024, 228 * 1024),
                       doctest::Contains("at most 232448 on sm_90"), attn::cuda::Error);
}

TEST_CASE("warp sums by xor butterfly and by shfl_down agree with the plain sums, partial warps included") {
  for (const int n : {1000, 64, 37}) {
    const auto x = ramp(n);
    const auto want = chunk_sums(x, 32);
    for (const int threads : {64, 96}) {
      const std::size_t warps = static_cast<std::size_t>((n + threads - 1) / threads * (threads / 32));
      DeviceBuffer<float> dx(x), by_xor(warps), by_down(warps);
      emu_test::warp_sum_xor(dx.get(), by_xor.get(), n, threads);
      emu_test::warp_sum_down(dx.get(), by_down.get(), n, threads);
      auto a = by_xor.download(), b = by_down.download();
      a.resize(want.size());
      b.resize(want.size());
      CHECK(equal_sums(a, want));
      CHECK(equal_sums(b, want));
    }
  }
}

TEST_CASE("shfl_up scans and shfl broadcasts stay inside segments of width lanes") {
  const int n = 4 * 64;
  std::vector<int> x(n);
  for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = (i * 5) % 11;
  DeviceBuffer<int> dx(x), out(static_cast<std::size_t>(n));
  for (const int width : {32, 16, 8, 1}) {
    emu_test::segment_scan_up(dx.get(), out.get(), n, width);
    std::vector<int> want(x.size());
    for (int i = 0; i < n; ++i)
      want[static_cast<std::size_t>(i)] = (i % width == 0 ? 0 : want[static_cast<std::size_t>(i - 1)]) + x[static_cast<std::size_t>(i)];
    CHECK(out.download() == want);
  }
  for (const auto& [src, width] : {std::pair{3, 32}, std::pair{5, 8}, std::pair{35, 32}, std::pair{-1, 16}}) {
    emu_test::broadcast(dx.get(), out.get(), n, src, width);
    std::vector<int> want(x.size());
    for (int i = 0; i < n; ++i)
      want[static_cast<std::size_t>(i)] = x[static_cast<std::size_t>(i / width * width + (src & (width - 1)))];
    CHECK(out.download() == want);
  }
}

TEST_CASE("ballot, any and all report each lane's predicate") {
  const int n = 100;  // the last warp has 4 live lanes
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = (i % 3 == 0 || i >= 64) ? 1.0f : -1.0f;
  DeviceBuffer<float> dx(x);
  DeviceBuffer<unsigned> ballots(4);
  DeviceBuffer<int> any_all(8);
  emu_test::vote(dx.get(), ballots.get(), any_all.get(), n, 128);
  std::vector<unsigned> want(4, 0);
  for (int i = 0; i < n; ++i)
    if (x[static_cast<std::size_t>(i)] > 0) want[static_cast<std::size_t>(i / 32)] |= 1u << (i % 32);
  CHECK(ballots.download() == want);
  CHECK(any_all.download() == std::vector<int>{1, 0, 1, 0, 1, 1, 1, 0});
}

TEST_CASE("__syncthreads_count, _and and _or count the block's predicates") {
  const int n = 200;  // blocks of 64: the last has 8 threads with data
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = (i < 64 || i % 5 == 0) ? 1.0f : -1.0f;
  DeviceBuffer<float> dx(x);
  DeviceBuffer<int> out(12);
  emu_test::barrier_votes(dx.get(), out.get(), n, 64);
  std::vector<int> want;
  for (int b = 0; b < 4; ++b) {
    int count = 0;
    for (int i = b * 64; i < std::min(n, (b + 1) * 64); ++i) count += x[static_cast<std::size_t>(i)] > 0;
    want.insert(want.end(), {count, count == 64, count > 0});
  }
  CHECK(out.download() == want);
}

TEST_CASE("float4 loads and stores move four floats at once") {
  const int n = 4 * 37;
  const auto x = ramp(n);
  DeviceBuffer<float> in(x), out(x.size());
  emu_test::reverse_quads(in.get(), out.get(), n);
  std::vector<float> want(x);
  for (int i = 0; i < n; i += 4) std::reverse(want.begin() + i, want.begin() + i + 4);
  CHECK(out.download() == want);
}

TEST_CASE("a 2D grid of 2D blocks covers an odd-sized matrix exactly once") {
  for (const auto& [bx, by] : {std::pair{16, 8}, std::pair{32, 32}, std::pair{7, 3}}) {
    const int rows = 37, cols = 53;
    DeviceBuffer<int> out(static_cast<std::size_t>(rows * cols));
    ATTN_CUDA_CHECK(cudaMemset(out.get(), 0xff, out.bytes()));
    emu_test::index_2d(out.get(), rows, cols, bx, by);
    std::vector<int> want(out.size());
    std::iota(want.begin(), want.end(), 0);
    CHECK(out.download() == want);
  }
}

TEST_CASE("atomics from every thread of many blocks add up") {
  const int n = 10007, nbins = 7;
  std::vector<int> values(n);
  for (int i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = (i * 7919) % 1000;
  DeviceBuffer<int> dv(values), bins(nbins), maximum(1);
  ATTN_CUDA_CHECK(cudaMemset(bins.get(), 0, bins.bytes()));
  ATTN_CUDA_CHECK(cudaMemset(maximum.get(), 0, maximum.bytes()));
  emu_test::histogram(dv.get(), n, bins.get(), nbins, maximum.get());
  std::vector<int> want(nbins, 0);
  for (int v : values) ++want[static_cast<std::size_t>(v % nbins)];
  CHECK(bins.download() == want);
  CHECK(maximum.download()[0] == *std::max_element(values.begin(), values.end()));
}

TEST_CASE("a thread that returns before a barrier is reported with its kernel, block and thread") {
  DeviceBuffer<float> x(ramp(300));
  CHECK_THROWS_WITH_AS(emu_test::early_return_before_barrier(x.get(), 300, 256),
                       doctest::Contains("kernel 'early_return_kernel', block (1,0,0), thread (44,0,0): returned "
                                         "while other threads wait at __syncthreads at kernels.cu:"),
                       LaunchError);
}

TEST_CASE("a barrier inside a branch that not every thread takes is reported") {
  DeviceBuffer<float> x(128);
  CHECK_THROWS_WITH_AS(emu_test::barrier_in_branch(x.get(), 128),
                       doctest::Contains("block (0,0,0), thread (64,0,0): returned while other threads wait at "
                                         "__syncthreads"),
                       LaunchError);
  CHECK_THROWS_WITH_AS(emu_test::barrier_in_branch(x.get(), 128), doctest::Contains("(64 of 128 threads reached it)"),
                       LaunchError);
  CHECK_THROWS_WITH_AS(emu_test::different_barriers(x.get(), 128),
                       doctest::Contains("threads of one block wait at different barriers"), LaunchError);
}

TEST_CASE("a warp shuffle that not every lane of its mask reaches is reported") {
  DeviceBuffer<float> x(ramp(64));
  CHECK_THROWS_WITH_AS(emu_test::shuffle_in_branch(x.get(), 64),
                       doctest::Contains("__shfl_xor_sync at kernels.cu:"), LaunchError);
  CHECK_THROWS_WITH_AS(emu_test::shuffle_in_branch(x.get(), 64),
                       doctest::Contains("with mask 0xffffffff waits for lane 16 thread (16,0,0), which has already "
                                         "returned"),
                       LaunchError);
}

TEST_CASE("a shuffle from a lane outside the mask, a bad width and lanes at different warp operations are reported") {
  DeviceBuffer<float> x(ramp(32));
  CHECK_THROWS_WITH_AS(emu_test::shuffle_outside_mask(x.get()),
                       doctest::Contains("thread (0,0,0): __shfl_xor_sync at kernels.cu:"), LaunchError);
  CHECK_THROWS_WITH_AS(emu_test::shuffle_outside_mask(x.get()),
                       doctest::Contains("reads lane 16, which is not in the mask 0xffff"), LaunchError);
  CHECK_THROWS_WITH_AS(emu_test::bad_shuffle_width(x.get()),
                       doctest::Contains("width 12 is not a power of two from 1 to 32"), LaunchError);
  CHECK_THROWS_WITH_AS(emu_test::mismatched_warp_ops(x.get()), doctest::Contains("the lanes of a warp disagree"),
                       LaunchError);
}

TEST_CASE("warps drift apart: a barrier missing between warps that run the same warp operations is caught") {
  // In lockstep (Schedule::forward) warp 1's read at step 40 always precedes warp 0's
  // write at step 41; the shuffled schedule keeps some complete warps waiting a phase,
  // so in some blocks warp 0 gets ahead and the read sees the new value.
  const int blocks = 16;
  DeviceBuffer<int> out(blocks * 64);
  auto reads_in_time = [&] {
    const std::vector<int> got = out.download();
    for (int b = 0; b < blocks; ++b)
      for (int t = 32; t < 64; ++t)
        if (got[std::size_t(b * 64 + t)] != 1) return false;
    return true;
  };
  emu_test::warps_drift(out.get(), blocks, true);
  CHECK(reads_in_time());
  emu_test::warps_drift(out.get(), blocks, false);
  CHECK_FALSE(reads_in_time());
  {
    ScheduleScope lockstep(Schedule::forward);
    emu_test::warps_drift(out.get(), blocks, false);
    CHECK(reads_in_time());  // why a fixed order is not enough
  }
}

TEST_CASE("a block of more than 1024 threads or an empty grid is refused") {
  DeviceBuffer<float> x(64);
  CHECK_THROWS_WITH_AS(emu_test::launch_too_many_threads(x.get()),
                       doctest::Contains("kernel 'barrier_in_branch_kernel' launched with grid (1,1,1), block "
                                         "(32,32,2): a block of 2048 threads; at most 1024"),
                       LaunchError);
  CHECK_THROWS_WITH_AS(emu_test::launch_zero_blocks(x.get()), doctest::Contains("must be at least 1"), LaunchError);
}

TEST_CASE("after a reported bug the emulator runs the next launch normally") {
  DeviceBuffer<float> x(ramp(300));
  CHECK_THROWS_AS(emu_test::early_return_before_barrier(x.get(), 300, 256), LaunchError);
  const auto data = ramp(3001);
  CHECK(equal_sums(block_sums(data, 256, true), chunk_sums(data, 256)));
}

TEST_CASE("an exception thrown in a kernel reaches the host with its own type") {
  DeviceBuffer<int> x(32);
  CHECK_THROWS_WITH_AS(emu_test::throw_in_kernel(x.get()), "thread 5 gave up", std::out_of_range);
  const auto data = ramp(3001);
  CHECK(equal_sums(block_sums(data, 256, true), chunk_sums(data, 256)));
}

TEST_CASE("a write one element past the end of a device array stops the program, naming block and thread") {
  const auto child = run_in_child([] {
    DeviceBuffer<float> x(1000);
    emu_test::write_past_end(x.get(), 1000, 256);
  });
  CHECK(child.killed_by_segv);
  CHECK(contains(child.stderr_text, "out-of-bounds access at byte offset 4000 of a 4000-byte device allocation"));
  CHECK(contains(child.stderr_text, "in kernel 'write_past_end_kernel', block (3,0,0), thread (232,0,0)"));
  CHECK(contains(child.stderr_text, "the buffer is argument 1 of the launch, 'x'"));
}

TEST_CASE("a read before the start of a page-sized device array stops the program") {
  const auto child = run_in_child([] {
    DeviceBuffer<float> x(1024), y(1024);
    emu_test::read_before_start(x.get(), y.get(), 1024);
  });
  CHECK(child.killed_by_segv);
  CHECK(contains(child.stderr_text, "4 bytes before the start of a 4096-byte device allocation"));
  CHECK(contains(child.stderr_text, "block (0,0,0), thread (0,0,0)"));
  CHECK(contains(child.stderr_text, "the buffer is argument 1 of the launch, 'x'"));
}

TEST_CASE("host code that dereferences a device pointer stops the program, as on a GPU") {
  const auto child = run_in_child([] {
    DeviceBuffer<float> x(16);
    volatile float v = x.get()[3];
    (void)v;
  });
  CHECK(child.killed_by_segv);
  CHECK(contains(child.stderr_text, "host code touched device memory"));
}

TEST_CASE("a kernel whose local array overflows its thread's stack stops the program, naming the thread") {
  const auto child = run_in_child([] {
    DeviceBuffer<float> x(32);
    emu_test::huge_local_array(x.get());
  });
  CHECK(child.killed_by_segv);
  CHECK(contains(child.stderr_text, "stack overflow"));
  CHECK(contains(child.stderr_text, "in kernel 'huge_local_array_kernel', block (0,0,0), thread ("));
}

TEST_CASE("cudaMemcpy and cudaFree refuse ranges and pointers that are not device allocations") {
  DeviceBuffer<float> x(10);
  std::vector<float> host(11, 1.0f);
  CHECK_THROWS_WITH_AS(cudaMemcpy(x.get(), host.data(), 11 * sizeof(float), cudaMemcpyHostToDevice),
                       doctest::Contains("runs 4 bytes past the end of a 40-byte device allocation"), attn::cuda::Error);
  CHECK_THROWS_WITH_AS(cudaMemcpy(host.data(), x.get(), 40, cudaMemcpyHostToDevice),
                       doctest::Contains("is not device memory from cudaMalloc"), attn::cuda::Error);
  CHECK_THROWS_WITH_AS(cudaFree(host.data()), doctest::Contains("is not an address that cudaMalloc returned"),
                       attn::cuda::Error);
  CHECK_THROWS_WITH_AS(__syncthreads(), doctest::Contains("__syncthreads called outside a kernel"), attn::cuda::Error);
}

TEST_CASE("device memory starts as NaN, so a kernel that reads what no one wrote shows it") {
  DeviceBuffer<float> x(5);
  for (const float v : x.download()) CHECK(std::isnan(v));
}
