/// @file timer.hpp
/// @brief A wall-clock timer and the median of repeated runs, for benchmarks.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

namespace attn {

/// Seconds since construction or the last reset(), from a monotonic clock.
class Timer {
 public:
  Timer() : start_(Clock::now()) {}
  /// Starts counting again from now.
  void reset() { start_ = Clock::now(); }
  /// Seconds elapsed since construction or the last reset().
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
};

/// Runs fn() `warmup` times untimed, then `repeats` times timed; returns the median in seconds.
template <class Fn>
double median_seconds(Fn&& fn, std::size_t repeats, std::size_t warmup = 1) {
  for (std::size_t i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  times.reserve(repeats);
  for (std::size_t i = 0; i < repeats; ++i) {
    Timer t;
    fn();
    times.push_back(t.seconds());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

}  // namespace attn
