#pragma once
// Sleeping in poll() until a deadline: ppoll with a nanosecond timeout where the system has it
// (Linux), else poll with the timeout rounded up to whole milliseconds (macOS has no ppoll).

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <optional>

namespace proc::detail {

/// poll() on `fds` until an event or `deadline` (none: no limit). Returns what poll returns;
/// EINTR is returned to the caller, whose loop re-checks its state and the deadline.
inline int poll_until(pollfd* fds, nfds_t n,
                      std::optional<std::chrono::steady_clock::time_point> deadline) {
  using namespace std::chrono;
  nanoseconds left{-1};
  if (deadline)
    left =
        std::max(nanoseconds::zero(), duration_cast<nanoseconds>(*deadline - steady_clock::now()));
#if defined(PROC_LINUX)
  timespec ts{};
  if (deadline) {
    ts.tv_sec = static_cast<time_t>(left.count() / 1000000000);
    ts.tv_nsec = static_cast<long>(left.count() % 1000000000);
  }
  return ::ppoll(fds, n, deadline ? &ts : nullptr, nullptr);
#else
  int ms = -1;
  if (deadline)
    ms = static_cast<int>(std::min<long long>((left.count() + 999999) / 1000000, INT_MAX));
  return ::poll(fds, n, ms);
#endif
}

/// Waits until `h` is readable (data, or its end) or `deadline` passes; false on timeout.
inline bool wait_readable_until(int h, std::chrono::steady_clock::time_point deadline) {
  pollfd p{h, POLLIN, 0};
  for (;;) {
    int r = poll_until(&p, 1, deadline);
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the read report the error
  }
}

}  // namespace proc::detail
