#pragma once
// proc::detail::Mutex: the mutex of the library's own state (a Lockable: std::lock_guard,
// std::unique_lock and std::scoped_lock take it).
//
// POSIX: std::mutex. Windows: an SRW lock (AcquireSRWLockExclusive, TryAcquireSRWLockExclusive,
// ReleaseSRWLockExclusive), as MSVC's std::mutex is. MinGW's std::mutex (winpthreads) creates an
// event the first time two threads contend for it and keeps it until the mutex is destroyed, so a
// long-lived mutex (a process-wide lock, a manager's, a pool's) would hold a handle that appears
// at a random moment, under load; an SRW lock holds none, ever.
//
// Invariants:
// - Not recursive, as std::mutex: locking it twice in one thread deadlocks.
// - A condition variable's mutex stays std::mutex (std::condition_variable needs it); those
//   mutexes live with one task or one call, so whatever they hold goes with them.

#include "proc/config.hpp"

#if defined(PROC_WINDOWS)
#  include "proc/detail/windows/win32.hpp"
#else
#  include <mutex>
#endif

namespace proc::detail {

#if defined(PROC_WINDOWS)
class Mutex {
 public:
  constexpr Mutex() noexcept = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void lock() noexcept { ::AcquireSRWLockExclusive(&lock_); }
  [[nodiscard]] bool try_lock() noexcept { return ::TryAcquireSRWLockExclusive(&lock_) != 0; }
  void unlock() noexcept { ::ReleaseSRWLockExclusive(&lock_); }

 private:
  SRWLOCK lock_ = SRWLOCK_INIT;
};
#else
using Mutex = std::mutex;
#endif

}  // namespace proc::detail
