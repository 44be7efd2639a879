#pragma once
// The system-call seam of the POSIX back end.
//
// Every call the library makes that can fail goes through `PROC_SYS(call, name, args...)`,
// which retries on EINTR. A test binary that defines PROC_FAULT_INJECTION before including proc
// can install `proc::detail::fault_hook` to make a named call fail with a chosen errno, so the
// error paths (EMFILE from pipe2, EAGAIN from spawn, short reads, ...) are exercised for real.
// Only that one test executable defines the macro, so the One Definition Rule holds elsewhere.

#include <cerrno>
#include <cstddef>

#if defined(PROC_FAULT_INJECTION)
#  include <atomic>
#endif

namespace proc::detail {

/// The calls the seam knows by name (for fault injection and error messages).
enum class Sys {
  pipe,
  open,
  read,
  write,
  poll,
  spawn,
  fork,
  dup,
  fcntl,
  pidfd_open,
  waitid,
  kill,
  access,
  close,
};

#if defined(PROC_FAULT_INJECTION)
// Returns 0 to let the call run, or an errno to make it fail without running. Returning EINTR
// makes the seam go round its retry loop once (the hook is asked again).
inline std::atomic<int (*)(Sys)> fault_hook{nullptr};
// When positive, every read and write moves at most this many bytes (see io_limit), so the
// loops around them are exercised with short transfers as a pipe under load would give.
inline std::atomic<long> fault_short_io{0};

template <class F>
auto sys_call(Sys which, F&& f) -> decltype(f()) {
  for (;;) {
    if (auto hook = fault_hook.load()) {
      if (int e = hook(which)) {
        if (e == EINTR) {
          errno = EINTR;
          continue;  // the retry loop must cope; count the injected EINTR and go round
        }
        errno = e;
        return decltype(f())(-1);
      }
    }
    auto r = f();
    if (r == decltype(r)(-1) && errno == EINTR) continue;
    return r;
  }
}
#else
template <class F>
inline auto sys_call(Sys /*which*/, F&& f) -> decltype(f()) {
  for (;;) {
    auto r = f();
    if (r == decltype(r)(-1) && errno == EINTR) continue;
    return r;
  }
}
#endif

}  // namespace proc::detail

/// Calls `expr` (a system call returning -1 with errno on failure), retrying on EINTR.
#define PROC_SYS(which, expr) \
  ::proc::detail::sys_call(::proc::detail::Sys::which, [&] { return (expr); })

namespace proc::detail {

/// How many of `n` bytes one read or write may move: `n`, or fewer when a fault-injection test
/// asks for short transfers (`fault_short_io`). Callers pass their count through this.
inline std::size_t io_limit(std::size_t n) noexcept {
#if defined(PROC_FAULT_INJECTION)
  long cap = fault_short_io.load();
  if (cap > 0 && static_cast<std::size_t>(cap) < n) return static_cast<std::size_t>(cap);
#endif
  return n;
}

/// For calls that return an error number instead of setting errno (posix_spawn) or that cannot
/// be retried (fork): the errno a fault-injection hook asks for, else 0.
inline int injected_error([[maybe_unused]] Sys which) noexcept {
#if defined(PROC_FAULT_INJECTION)
  if (auto hook = fault_hook.load()) {
    int e = hook(which);
    return e == EINTR ? 0 : e;
  }
#endif
  return 0;
}

}  // namespace proc::detail
