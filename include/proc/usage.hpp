#pragma once
/// \file
/// `proc::ResourceUsage`: what a child cost, as the kernel reports it when the child is reaped.

#include <chrono>
#include <cstddef>

namespace proc {

/// CPU time and peak memory of a child that has been reaped (Linux: the rusage that `waitid`
/// fills at reaping; macOS: `wait4`; Windows: `GetProcessTimes` and the peak working set).
struct ResourceUsage {
  /// Time spent running the child's own code.
  std::chrono::nanoseconds user_time{};
  /// Time the kernel spent working for the child.
  std::chrono::nanoseconds system_time{};
  /// The child's peak resident set size in bytes (Windows: its peak working set).
  std::size_t max_rss = 0;
};

}  // namespace proc
