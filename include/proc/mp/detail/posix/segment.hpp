#pragma once
// Unnamed shared memory for proc::mp (Lock, SharedMemory, Shared, SharedArray, big Queue
// messages) and the robust process-shared mutex that lives in it.
//
// Calls: memfd_create (MFD_CLOEXEC | MFD_ALLOW_SEALING), ftruncate, fcntl (F_ADD_SEALS,
// F_GET_SEALS), fstat, mmap (MAP_SHARED), munmap, close; pthread_mutexattr_setpshared,
// pthread_mutexattr_setrobust, pthread_mutexattr_settype (ERRORCHECK), pthread_mutex_init,
// pthread_mutex_lock / trylock / clocklock (CLOCK_MONOTONIC), pthread_mutex_consistent,
// pthread_mutex_unlock.
//
// Invariants:
// - A segment has no name anywhere (memfd): nothing is ever left in /dev/shm, and the memory
//   goes with the last descriptor and the last mapping, however the processes holding them end.
// - A segment's size is sealed (F_SEAL_SHRINK | F_SEAL_GROW) before it is shared, so a size
//   read with fstat in a child stays true (no SIGBUS from a peer shrinking it).
// - A robust mutex whose owner dies (or execs) is handed to the next locker with EOWNERDEAD by
//   the kernel's robust futex list; it is never left locked forever.

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "proc/detail/platform.hpp"

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define PROC_MP_TSAN 1
#  endif
#endif
#if !defined(PROC_MP_TSAN) && defined(__SANITIZE_THREAD__)
#  define PROC_MP_TSAN 1
#endif
#if !defined(PROC_MP_TSAN)
#  define PROC_MP_TSAN 0
#endif

namespace proc::mp::detail {

/// One mapping of an unnamed shared memory object, with its descriptor (passed to children).
class Segment {
 public:
  /// A new zero-filled segment of `bytes` bytes (> 0); `what` names it in errors.
  static std::shared_ptr<Segment> create(std::size_t bytes, const char* what) {
    int fd = ::memfd_create(what, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) proc::detail::throw_errno(errno, std::string("proc::mp: memfd_create for ") + what);
    auto s = std::shared_ptr<Segment>(new Segment(fd));
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0)
      proc::detail::throw_errno(
          errno, "proc::mp: ftruncate of " + std::to_string(bytes) + " bytes of shared memory");
    if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
      proc::detail::throw_errno(errno, "proc::mp: fcntl(F_ADD_SEALS)");
    s->map(bytes);
    return s;
  }

  /// Takes over `fd` (received from a parent) and maps it whole. Its size must be at least
  /// `min_bytes`, else `std::runtime_error` (the caller turns it into a SerializationError).
  static std::shared_ptr<Segment> adopt(int fd, std::size_t min_bytes) {
    auto s = std::shared_ptr<Segment>(new Segment(fd));
    struct stat st {};
    if (::fstat(fd, &st) != 0) proc::detail::throw_errno(errno, "proc::mp: fstat");
    if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) < min_bytes || st.st_size == 0)
      throw std::runtime_error("the shared memory passed is " + std::to_string(st.st_size) +
                               " bytes, expected at least " + std::to_string(min_bytes));
    s->map(static_cast<std::size_t>(st.st_size));
    return s;
  }

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment() {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    proc::detail::close_handle(fd_);
  }

  [[nodiscard]] void* data() const noexcept { return addr_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] int handle() const noexcept { return fd_; }

 private:
  explicit Segment(int fd) noexcept : fd_(fd) {}
  void map(std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED)
      proc::detail::throw_errno(
          errno, "proc::mp: mmap of " + std::to_string(bytes) + " bytes of shared memory");
    addr_ = p;
    size_ = bytes;
  }

  int fd_ = -1;
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

/// What a robust mutex said when it was locked.
enum class LockResult { acquired, owner_died, not_recoverable, busy, timed_out, deadlock };

/// A robust, process-shared, error-checking mutex placed in shared memory.
struct RobustMutex {
  pthread_mutex_t m;

  /// Initialises the mutex in place (in a new, zero-filled segment).
  void init() {
    pthread_mutexattr_t a;
    ::pthread_mutexattr_init(&a);
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    ::pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    ::pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    int e = ::pthread_mutex_init(&m, &a);
    ::pthread_mutexattr_destroy(&a);
    if (e != 0) proc::detail::throw_errno(e, "proc::mp: pthread_mutex_init");
  }

  /// Blocks until locked (`deadline` none), or until the deadline (`timed_out`); with
  /// `try_only`, never blocks (`busy`).
  LockResult lock(bool try_only, std::optional<std::chrono::steady_clock::time_point> deadline) {
    int e;
    if (try_only) {
      e = ::pthread_mutex_trylock(&m);
    } else if (deadline) {
      // CLOCK_MONOTONIC, the clock of steady_clock on Linux: immune to changes of the time.
      auto left = *deadline - std::chrono::steady_clock::now();
      timespec now{};
      ::clock_gettime(CLOCK_MONOTONIC, &now);
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      if (ns < 0) ns = 0;
      long long total = static_cast<long long>(now.tv_nsec) + ns % 1000000000;
      timespec at{now.tv_sec + static_cast<time_t>(ns / 1000000000 + total / 1000000000),
                  static_cast<long>(total % 1000000000)};
#if PROC_MP_TSAN
      // ThreadSanitizer (clang 14) does not intercept pthread_mutex_clocklock, so it would not
      // see this lock taken; timedlock it knows, at the cost of following CLOCK_REALTIME.
      timespec real{};
      ::clock_gettime(CLOCK_REALTIME, &real);
      long long rt = static_cast<long long>(real.tv_nsec) + ns % 1000000000;
      timespec rat{real.tv_sec + static_cast<time_t>(ns / 1000000000 + rt / 1000000000),
                   static_cast<long>(rt % 1000000000)};
      (void)at;
      e = ::pthread_mutex_timedlock(&m, &rat);
#else
      e = ::pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &at);
#endif
    } else {
      e = ::pthread_mutex_lock(&m);
    }
    return result_of(e);
  }

  /// `lock(false, nullopt)`: the uncontended case is pthread_mutex_lock and one compare.
  LockResult lock_blocking() {
    int e = ::pthread_mutex_lock(&m);
    if (e == 0) [[likely]]
      return LockResult::acquired;
    return result_of(e);
  }

  /// What pthread_mutex_*lock's result means.
  [[gnu::noinline]] static LockResult result_of(int e) {
    switch (e) {
      case 0:
        return LockResult::acquired;
      case EOWNERDEAD:
        return LockResult::owner_died;
      case ENOTRECOVERABLE:
        return LockResult::not_recoverable;
      case EBUSY:
        return LockResult::busy;
      case ETIMEDOUT:
        return LockResult::timed_out;
      case EDEADLK:
        // This thread holds it — or, from glibc's pthread_mutex_clocklock, the mutex is not
        // recoverable (glibc 2.36 says EDEADLK there): the caller tells the two apart.
        return LockResult::deadlock;
      default:
        break;
    }
    proc::detail::throw_errno(e, "proc::mp: pthread_mutex_lock");
  }

  /// After `owner_died`: the protected state is consistent again.
  void make_consistent() {
    if (int e = ::pthread_mutex_consistent(&m); e != 0)
      proc::detail::throw_errno(e, "proc::mp: pthread_mutex_consistent");
  }

  void unlock() {
    if (int e = ::pthread_mutex_unlock(&m); e != 0) [[unlikely]]
      unlock_failed(e);
  }

  [[noreturn, gnu::noinline]] static void unlock_failed(int e) {
    if (e == EPERM)
      throw std::logic_error("proc::mp::Lock: unlock by a thread that does not hold it");
    proc::detail::throw_errno(e, "proc::mp: pthread_mutex_unlock");
  }
};

/// The part of a process mutex that lives in the lock's shared memory: on POSIX, all of it.
using MutexState = RobustMutex;

/// A process-shared mutex as this process sees it (the same names as detail/windows/segment.hpp).
/// Here a pointer to the robust mutex in shared memory: nothing else to pass to a child.
class ProcessMutex {
 public:
  static constexpr bool has_handle = false;
  /// A holder's death left unrepaired makes the mutex itself refuse every later locker.
  static constexpr bool keeps_poison = true;

  ProcessMutex() = default;
  /// Initialises the mutex of a new (zero-filled) segment.
  static ProcessMutex create(MutexState* state) {
    state->init();
    return ProcessMutex(state);
  }
  /// The mutex of a segment received from a parent.
  static ProcessMutex adopt(MutexState* state) noexcept { return ProcessMutex(state); }

  LockResult lock(bool try_only, std::optional<std::chrono::steady_clock::time_point> deadline) {
    return state_->lock(try_only, deadline);
  }
  LockResult lock_blocking() { return state_->lock_blocking(); }
  void make_consistent() { state_->make_consistent(); }
  void unlock() { state_->unlock(); }

 private:
  explicit ProcessMutex(MutexState* state) noexcept : state_(state) {}
  MutexState* state_ = nullptr;
};

}  // namespace proc::mp::detail
