// The emulator's half precision and tensor-core (wmma) model: conversions that round
// as the GPU does, matrix products against float64 loops, the fragment layout that
// follows no row or column, and each misuse reported with kernel, block and thread.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "attn/cuda.hpp"
#include "attn/cuda_fp16.hpp"
#include "attn/device_buffer.hpp"
#include "wmma_kernels.hpp"

using attn::cuda::DeviceBuffer;
using attn::cuda::LaunchError;

namespace {

std::uint16_t bits(float f) { return __half_as_ushort(__float2half(f)); }

#if defined(__FLT16_MAX__)
/// The compiler's own binary16 (_Float16, software-rounded on x86-64): an independent reference.
std::uint16_t reference_bits(float f) { return std::bit_cast<std::uint16_t>(static_cast<_Float16>(f)); }
float reference_float(std::uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }
#endif

}  // namespace

TEST_CASE("float to half rounds to nearest, ties to even, at hand-computed points") {
  CHECK(bits(1.0f) == 0x3c00);
  CHECK(bits(-2.0f) == 0xc000);
  CHECK(bits(0.0f) == 0x0000);
  CHECK(bits(-0.0f) == 0x8000);
  CHECK(bits(65504.0f) == 0x7bff);                 // the largest half
  CHECK(bits(65519.99f) == 0x7bff);                // below the midpoint to 65536: stays finite
  CHECK(bits(65520.0f) == 0x7c00);                 // the midpoint, ties to even: infinity
  CHECK(bits(INFINITY) == 0x7c00);
  CHECK(bits(-INFINITY) == 0xfc00);
  CHECK((bits(NAN) & 0x7c00) == 0x7c00);
  CHECK((bits(NAN) & 0x03ff) != 0);
  CHECK(bits(0x1p-14f) == 0x0400);                 // the smallest normal
  CHECK(bits(0x1p-24f) == 0x0001);                 // the smallest subnormal
  CHECK(bits(0x1p-25f) == 0x0000);                 // half of it, a tie: to even (zero)
  CHECK(bits(0x1.8p-25f) == 0x0001);               // above the tie
  CHECK(bits(0x1.8p-24f) == 0x0002);               // 1.5 units, a tie: to even (2)
  CHECK(bits(1.0f + 0x1p-11f) == 0x3c00);          // halfway from 1 to the next half: to even (1)
  CHECK(bits(1.0f + 0x1.8p-10f) == 0x3c02);        // 1.5 steps above 1: to even (2 steps)
  CHECK(bits(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);
  CHECK(__half2float(__ushort_as_half(0x3555)) == 0x1.554p-2f);  // 1/3 rounded: 0.333251953125
  CHECK(__half2float(__ushort_as_half(0x0001)) == 0x1p-24f);
  CHECK(__half2float(__ushort_as_half(0x7bff)) == 65504.0f);
}

#if defined(__FLT16_MAX__)
TEST_CASE("every half converts to the float the compiler's _Float16 gives, and back to itself") {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto b = static_cast<std::uint16_t>(h);
    const float mine = __half2float(__ushort_as_half(b)), theirs = reference_float(b);
    if (std::isnan(theirs)) {
      REQUIRE(std::isnan(mine));
      continue;
    }
    REQUIRE(std::bit_cast<std::uint32_t>(mine) == std::bit_cast<std::uint32_t>(theirs));
    REQUIRE(bits(mine) == b);
  }
}

TEST_CASE("float to half agrees with _Float16 at every midpoint between halves and on random floats") {
  // Midpoints are where rounding decides; one float ulp either side must go either way.
  for (std::uint32_t h = 0; h < 0x7bff; ++h) {
    const double lo = reference_float(static_cast<std::uint16_t>(h));
    const double hi = reference_float(static_cast<std::uint16_t>(h + 1));
    const auto mid = static_cast<float>((lo + hi) / 2);  // exact: a half has 11 significant bits
    for (const float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      REQUIRE(bits(f) == reference_bits(f));
      REQUIRE(bits(-f) == reference_bits(-f));
    }
  }
  std::mt19937 random(1234);
  for (int i = 0; i < 1'000'000; ++i) {
    const float f = std::bit_cast<float>(static_cast<std::uint32_t>(random()));
    if (std::isnan(f)) continue;
    REQUIRE(bits(f) == reference_bits(f));
  }
}
#endif

namespace {

struct GemmCase {
  int m, n, k;
  bool a_row, b_row, c_row;
};

std::vector<__half> random_halves(std::size_t count, unsigned seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<__half> v(count);
  for (__half& x : v) x = __float2half(uniform(random));
  return v;
}

}  // namespace

TEST_CASE("wmma::mma_sync computes A B + C like float64 loops, for every layout of A, B and C") {
  for (const GemmCase& g : {GemmCase{16, 16, 16, true, true, true}, GemmCase{32, 48, 64, true, false, true},
                            GemmCase{48, 32, 32, false, true, false}, GemmCase{16, 64, 48, false, false, true},
                            GemmCase{64, 16, 80, true, true, false}}) {
    CAPTURE(g.m);
    CAPTURE(g.n);
    CAPTURE(g.k);
    CAPTURE(g.a_row);
    CAPTURE(g.b_row);
    CAPTURE(g.c_row);
    // Leading dimensions with padding, as tiles in shared memory have: multiples of 8 halves, 4 floats.
    const int lda = (g.a_row ? g.k : g.m) + 8, ldb = (g.b_row ? g.n : g.k) + 16, ldc = (g.c_row ? g.n : g.m) + 4;
    const std::vector<__half> a = random_halves(static_cast<std::size_t>(lda) * (g.a_row ? g.m : g.k), 7);
    const std::vector<__half> b = random_halves(static_cast<std::size_t>(ldb) * (g.b_row ? g.k : g.n), 8);
    std::vector<float> c(static_cast<std::size_t>(ldc) * (g.c_row ? g.m : g.n));
    for (std::size_t i = 0; i < c.size(); ++i) c[i] = static_cast<float>(i % 7) - 3.0f;
    const float scale = 0.5f;

    DeviceBuffer<__half> da(a), db(b);
    DeviceBuffer<float> dc(c);
    emu_test::wmma_gemm(da.get(), db.get(), dc.get(), g.m, g.n, g.k, lda, ldb, ldc, g.a_row, g.b_row, g.c_row,
                        scale);
    const std::vector<float> got = dc.download();

    auto at_a = [&](int i, int p) { return double(a[std::size_t(g.a_row ? i * lda + p : p * lda + i)]); };
    auto at_b = [&](int p, int j) { return double(b[std::size_t(g.b_row ? p * ldb + j : j * ldb + p)]); };
    auto index_c = [&](int i, int j) { return std::size_t(g.c_row ? i * ldc + j : j * ldc + i); };
    for (int i = 0; i < g.m; ++i)
      for (int j = 0; j < g.n; ++j) {
        double want = c[index_c(i, j)], magnitude = std::abs(want);
        for (int p = 0; p < g.k; ++p) {
          want += at_a(i, p) * at_b(p, j);
          magnitude += std::abs(at_a(i, p) * at_b(p, j));
        }
        want *= scale;
        // Products of halves are exact in float; k float additions and the scaling
        // each round by at most 2^-24 of what they touch (Higham's gamma_{k+1}).
        const double tol = (g.k + 1) * 0x1p-24 * magnitude * scale;
        CAPTURE(i);
        CAPTURE(j);
        REQUIRE(std::abs(got[index_c(i, j)] - want) <= tol);
      }
  }
}

TEST_CASE("which tile element a lane holds follows no row or column: every element once, in a scattered order") {
  std::vector<__half> tile(256);
  for (int e = 0; e < 256; ++e) tile[std::size_t(e)] = __float2half(static_cast<float>(e));
  DeviceBuffer<__half> dtile(tile);
  DeviceBuffer<float> out(256);
  emu_test::wmma_fragment_layout(dtile.get(), out.get());
  std::vector<float> held = out.download();
  std::vector<int> element(held.begin(), held.end());
  std::vector<int> sorted = element;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> all(256);
  std::iota(all.begin(), all.end(), 0);
  CHECK(sorted == all);                           // each element in exactly one lane
  CHECK(element != all);                          // not row-major over the lanes
  int same_row = 0;                               // lane l does not hold row l / 2
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 8; ++i) same_row += element[std::size_t(lane * 8 + i)] / 16 == lane / 2;
  CHECK(same_row < 64);
}

namespace {

using attn::cuda::emu::Schedule;
constexpr Schedule kSchedules[] = {Schedule::shuffled, Schedule::forward, Schedule::reverse};

/// Sets the schedule for one scope.
struct ScheduleScope {
  explicit ScheduleScope(Schedule s) : previous(attn::cuda::emu::set_schedule(s)) {}
  ~ScheduleScope() { attn::cuda::emu::set_schedule(previous); }
  Schedule previous;
};

/// 1, 2, ..., 256: no element is -1 or 0, what the tiles hold before.
std::vector<float> tile_values() {
  std::vector<float> v(256);
  std::iota(v.begin(), v.end(), 1.0f);
  return v;
}

/// How many elements of a tile read back still hold the tile's old -1.
long stale(const std::vector<float>& got) { return std::count(got.begin(), got.end(), -1.0f); }

}  // namespace

TEST_CASE("a wmma load that races with other lanes' writes, before it or after it, is reported under every schedule") {
  DeviceBuffer<float> out(256);
  std::vector<float> want(256);
  std::iota(want.begin(), want.end(), 0.0f);
  for (const Schedule s : kSchedules) {
    ScheduleScope scope(s);
    emu_test::wmma_shared_tile(out.get(), true, true);
    CHECK(out.download() == want);
    // Without __syncwarp before the load, lanes that reach it first find elements
    // that later lanes have not written yet: their second read differs.
    CHECK_THROWS_WITH_AS(emu_test::wmma_shared_tile(out.get(), false, true),
                         doctest::Contains("kernel '(wmma_shared_tile_kernel<false, true>)', block (0,0,0), thread ("),
                         LaunchError);
    CHECK_THROWS_WITH_AS(emu_test::wmma_shared_tile(out.get(), false, true),
                         doctest::Contains("): wmma::load_matrix_sync at wmma_kernels.cu:"), LaunchError);
    CHECK_THROWS_WITH_AS(emu_test::wmma_shared_tile(out.get(), false, true),
                         doctest::Contains(") of the tile changed from 0 to "), LaunchError);
    // Without __syncwarp after it, lanes that go on first overwrite elements that
    // later lanes have not loaded yet.
    CHECK_THROWS_WITH_AS(emu_test::wmma_shared_tile(out.get(), true, false),
                         doctest::Contains(" to -1 while the warp gathered at the call: another thread wrote it with "
                                           "no __syncwarp() or __syncthreads() ordering that write and this load"),
                         LaunchError);
  }
}

TEST_CASE("what store_matrix_sync writes is seen only after __syncwarp or __syncthreads, under every schedule") {
  const std::vector<float> values = tile_values();
  DeviceBuffer<float> dvalues(values), out(256);
  using emu_test::AfterStore;
  for (const Schedule s : kSchedules) {
    ScheduleScope scope(s);
    for (const bool reload : {false, true}) {
      CAPTURE(reload);
      emu_test::wmma_store_then_read(dvalues.get(), out.get(), AfterStore::syncwarp, reload);
      CHECK(out.download() == values);
      emu_test::wmma_store_then_read(dvalues.get(), out.get(), AfterStore::syncthreads, reload);
      CHECK(out.download() == values);
      // Before a barrier every read finds what the tile held, even after a shuffle
      // that has waited for every lane: a shuffle orders no memory.
      emu_test::wmma_store_then_read(dvalues.get(), out.get(), AfterStore::nothing, reload);
      CHECK(stale(out.download()) == 256);
      emu_test::wmma_store_then_read(dvalues.get(), out.get(), AfterStore::shuffle, reload);
      CHECK(stale(out.download()) == 256);
    }
  }
}

TEST_CASE("plain stores read by other lanes need __syncwarp, unless a shuffle already waited for every lane") {
  // What the emulator cannot see: lanes run one after another, so once a shuffle has
  // gathered the warp, every lane's earlier stores are in memory. CUDA promises no
  // such order (only __syncwarp and __syncthreads give it): the kernel is wrong on a
  // GPU, and a test on the emulator passes.
  const std::vector<float> values = tile_values();
  std::vector<float> want(256);
  for (std::size_t e = 0; e < 256; ++e) want[e] = values[(e + 1) % 256];
  DeviceBuffer<float> dvalues(values), out(256);
  using emu_test::AfterStore;
  for (const Schedule s : kSchedules) {
    ScheduleScope scope(s);
    emu_test::plain_store_then_read(dvalues.get(), out.get(), AfterStore::syncwarp);
    CHECK(out.download() == want);
    emu_test::plain_store_then_read(dvalues.get(), out.get(), AfterStore::nothing);
    CHECK(out.download() != want);  // caught: some lane reads before its neighbour wrote
    emu_test::plain_store_then_read(dvalues.get(), out.get(), AfterStore::shuffle);
    CHECK(out.download() == want);  // not caught
  }
}

TEST_CASE("each misuse of wmma is reported with the kernel, the block and the thread") {
  using emu_test::WmmaBug;
  DeviceBuffer<__half> tiles(std::vector<__half>(512, __float2half(1.0f)));
  DeviceBuffer<float> out(48);
  const auto check = [&](WmmaBug bug, const char* message) {
    CAPTURE(message);
    try {
      emu_test::wmma_misuse(tiles.get(), out.get(), bug);
      FAIL("no error reported");
    } catch (const LaunchError& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(what.find("kernel 'wmma_misuse_kernel', block (0,0,0), thread (") != std::string::npos);
      CHECK(what.find(message) != std::string::npos);
    }
  };
  check(WmmaBug::misaligned, "is not 256-bit (32-byte) aligned");
  check(WmmaBug::bad_leading_dim, "ldm = 12 must be a non-zero multiple of 8 elements");
  check(WmmaBug::partial_warp, "need a full warp of 32 lanes, and this warp has 16");
  check(WmmaBug::lanes_return, "which has already returned");
  check(WmmaBug::diverged, "the lanes of a warp disagree");
  check(WmmaBug::different_pointers, "the lanes of the warp pass different operands");
}
