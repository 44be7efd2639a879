#pragma once
// Descriptors and the blocking I/O on them.
//
// Calls: pipe2 (pipe + fcntl where the C library has no pipe2), open, fcntl(F_DUPFD_CLOEXEC,
// F_SETFL, F_SETPIPE_SZ), read, write, close, pthread_sigmask, sigpending, sigtimedwait;
// on Linux mmap, mremap, munmap for the page regions that big captures grow in.
//
// Invariants: every descriptor created here is close-on-exec from birth (O_CLOEXEC,
// F_DUPFD_CLOEXEC), so a child spawned at the same moment by another thread never inherits it.
// Writing never raises SIGPIPE in the process: SIGPIPE is blocked in the writing thread for the
// duration of the write, and one that the write itself made pending is consumed before the mask
// is restored. The process-wide disposition is never touched.

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "proc/config.hpp"
#if defined(PROC_LINUX)
#  include <sys/mman.h>
#endif

#include <cerrno>
#include <cstddef>
#include <ctime>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "proc/config.hpp"
#include "proc/detail/posix/syscall.hpp"
#include "proc/detail/sanitizers.hpp"
#if defined(PROC_ASAN)
#  include <sanitizer/asan_interface.h>
#endif

namespace proc::detail {

/// A file descriptor.
using native_handle = int;
inline constexpr native_handle invalid_handle = -1;

[[noreturn]] inline void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::generic_category(), what);
}

/// Closes `h`. Not retried on EINTR: on Linux the descriptor is gone whatever close returns.
inline void close_handle(native_handle h) noexcept {
  if (h >= 0) ::close(h);
}

/// A handle as text, for messages.
inline std::string handle_to_string(native_handle h) { return std::to_string(h); }

/// Whether `h` names an open descriptor of this process.
inline bool handle_is_valid(native_handle h) noexcept {
  return h >= 0 && ::fcntl(h, F_GETFD) != -1;
}

struct PipePair {
  native_handle read = invalid_handle;
  native_handle write = invalid_handle;
};

/// A new pipe, both ends close-on-exec.
inline PipePair make_pipe() {
  int fds[2];
#if defined(PROC_APPLE)
  // macOS has no pipe2: there is a short window in which a concurrent fork could inherit the
  // ends. posix_spawn children are unaffected (we close every other descriptor in them).
  if (PROC_SYS(pipe, ::pipe(fds)) != 0) throw_errno(errno, "proc: pipe");
  ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#else
  if (PROC_SYS(pipe, ::pipe2(fds, O_CLOEXEC)) != 0) throw_errno(errno, "proc: pipe2");
#endif
  return {fds[0], fds[1]};
}

/// A close-on-exec duplicate of `h` numbered 3 or above (so that it can never be clobbered by
/// the child's dup2 onto 0, 1 or 2).
inline native_handle dup_above_stdio(native_handle h) {
  int r = PROC_SYS(dup, ::fcntl(h, F_DUPFD_CLOEXEC, 3));
  if (r < 0) throw_errno(errno, "proc: fcntl(F_DUPFD_CLOEXEC)");
  return r;
}

/// A close-on-exec duplicate of `h` (numbered 3 or above).
inline native_handle duplicate(native_handle h) { return dup_above_stdio(h); }

/// This process's own stdin (0), stdout (1) or stderr (2).
inline native_handle standard_handle(int i) noexcept { return i; }

/// Moves `h` to a descriptor numbered 3 or above when it is 0, 1 or 2 (the parent had closed
/// its standard descriptors, so a new one took the low number). Closes the original.
inline native_handle lift_above_stdio(native_handle h) {
  if (h < 0 || h > 2) return h;
  native_handle lifted = -1;
  try {
    lifted = dup_above_stdio(h);
  } catch (...) {
    close_handle(h);
    throw;
  }
  close_handle(h);
  return lifted;
}

/// Opens `path` close-on-exec: for reading (`in`), or for writing, truncating or appending.
inline native_handle open_file(const std::filesystem::path& path, bool for_write, bool append) {
  int flags = O_CLOEXEC | O_NOCTTY;
  if (!for_write)
    flags |= O_RDONLY;
  else
    flags |= O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
  int fd = PROC_SYS(open, ::open(path.c_str(), flags, 0666));
  if (fd < 0) throw_errno(errno, "proc: cannot open '" + path.string() + "'");
  return fd;
}

inline native_handle open_devnull(bool for_write) {
  int fd = PROC_SYS(open, ::open("/dev/null", (for_write ? O_WRONLY : O_RDONLY) | O_CLOEXEC));
  if (fd < 0) throw_errno(errno, "proc: cannot open /dev/null");
  return fd;
}

/// Switches O_NONBLOCK on or off; returns whether it was on before.
inline bool set_nonblocking(native_handle h, bool on) {
  int flags = ::fcntl(h, F_GETFL);
  if (flags < 0) throw_errno(errno, "proc: fcntl(F_GETFL)");
  bool was = (flags & O_NONBLOCK) != 0;
  if (was != on && ::fcntl(h, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK)) < 0)
    throw_errno(errno, "proc: fcntl(F_SETFL)");
  return was;
}

/// Asks the kernel for a bigger pipe buffer (Linux), which cuts the number of context switches
/// when bulk data moves. Failure (an unprivileged user over the pipe quota) is harmless.
inline void grow_pipe(native_handle h, int bytes) noexcept {
#if defined(F_SETPIPE_SZ)
  if (::fcntl(h, F_GETPIPE_SZ) < bytes) ::fcntl(h, F_SETPIPE_SZ, bytes);
#else
  (void)h;
  (void)bytes;
#endif
}

/// Reads at most `n` bytes; returns 0 at end of stream. Throws `std::system_error`. The master
/// of a pseudo-terminal whose other side has closed (the child is gone) reads EIO: that is its
/// end of stream, not an error.
inline std::size_t read_some(native_handle h, char* buf, std::size_t n) {
  ssize_t r = PROC_SYS(read, ::read(h, buf, io_limit(n)));
  if (r < 0) {
    int e = errno;  // isatty() would overwrite it
    if (e == EIO && ::isatty(h)) return 0;
    throw_errno(e, "proc: read");
  }
  return static_cast<std::size_t>(r);
}

inline void resize_pty(native_handle master, unsigned short rows, unsigned short cols) {
  winsize ws{};
  ws.ws_row = rows;
  ws.ws_col = cols;
  if (::ioctl(master, TIOCSWINSZ, &ws) < 0) throw_errno(errno, "proc: ioctl(TIOCSWINSZ)");
}

/// The parent's side of a pseudo-terminal: the master (owned).
class PtyMaster {
 public:
  PtyMaster() = default;
  explicit PtyMaster(native_handle fd) noexcept : fd_(fd) {}
  PtyMaster(PtyMaster&& o) noexcept : fd_(std::exchange(o.fd_, invalid_handle)) {}
  PtyMaster& operator=(PtyMaster&& o) noexcept {
    if (this != &o) {
      if (fd_ != invalid_handle) close_handle(fd_);
      fd_ = std::exchange(o.fd_, invalid_handle);
    }
    return *this;
  }
  ~PtyMaster() {
    if (fd_ != invalid_handle) close_handle(fd_);
  }

  [[nodiscard]] bool is_open() const noexcept { return fd_ != invalid_handle; }
  /// A new descriptor for the parent's end of any stream: the master, duplicated.
  [[nodiscard]] native_handle parent_end(int /*stream*/) const { return duplicate(fd_); }
  void resize(unsigned short rows, unsigned short cols) { resize_pty(fd_, rows, cols); }
  /// Nothing to do once the child runs (the master reads EIO when the terminal is gone).
  void started(native_handle /*exit_handle*/) noexcept {}

 private:
  native_handle fd_ = invalid_handle;
};

/// A new pseudo-terminal: the master (the parent's end) and the slave (the child's, to be closed
/// by the caller once the child has it), both close-on-exec, the slave not made our own
/// controlling terminal. Its size is set. `child` is what the child gets as its standard
/// streams and controlling terminal: the slave.
struct PtyPair {
  PtyMaster master;
  native_handle slave = invalid_handle;
  native_handle child = invalid_handle;
};

inline PtyPair make_pty(unsigned short rows, unsigned short cols, bool /*read_output*/) {
  native_handle master = PROC_SYS(open, ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (master < 0) throw_errno(errno, "proc: cannot open a pseudo-terminal (/dev/ptmx)");
  PtyPair p;
  p.master = PtyMaster(master);
  if (::grantpt(master) < 0 || ::unlockpt(master) < 0) throw_errno(errno, "proc: grantpt/unlockpt");
#if defined(TIOCGPTPEER)
  p.slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);  // no name race
#endif
  if (p.slave < 0) {
    char name[128];
    if (::ptsname_r(master, name, sizeof name) != 0) throw_errno(errno, "proc: ptsname_r");
    p.slave = PROC_SYS(open, ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (p.slave < 0) throw_errno(errno, std::string("proc: cannot open ") + name);
  }
  try {
    resize_pty(master, rows, cols);
  } catch (...) {
    close_handle(p.slave);
    throw;
  }
  p.child = p.slave;
  return p;
}

/// While alive, SIGPIPE is blocked in this thread; on destruction a SIGPIPE that arrived while
/// blocked (and was not pending before) is consumed, then the old mask comes back. This is how
/// a write to a pipe whose reader has gone becomes EPIPE instead of the death of the process,
/// without touching the process-wide disposition.
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
    blocked_before_ = sigismember(&old_, SIGPIPE) == 1;
    if (!blocked_before_) {
      sigset_t pending;
      sigpending(&pending);
      pending_before_ = sigismember(&pending, SIGPIPE) == 1;
    }
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

  /// Records that a write failed with EPIPE, so a SIGPIPE is (probably) pending for us.
  void saw_epipe() noexcept { epipe_ = true; }

  ~SigpipeGuard() {
    if (blocked_before_) return;  // the caller blocks SIGPIPE already: leave it all alone
    if (epipe_ && !pending_before_) {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGPIPE);
#if defined(PROC_APPLE)
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        int sig;
        sigwait(&set, &sig);
      }
#else
      timespec zero{0, 0};
      while (sigtimedwait(&set, nullptr, &zero) < 0 && errno == EINTR) {
      }
#endif
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t old_{};
  bool blocked_before_ = false;
  bool pending_before_ = false;
  bool epipe_ = false;
};

/// Writes at most `n` bytes (one write call) under an active SigpipeGuard; returns the count, or
/// -1 with errno (EAGAIN on a non-blocking pipe, EPIPE when the reader has gone).
inline ssize_t write_some_guarded(SigpipeGuard& guard, native_handle h, const char* data,
                                  std::size_t n) noexcept {
  ssize_t r = PROC_SYS(write, ::write(h, data, io_limit(n)));
  if (r < 0 && errno == EPIPE) guard.saw_epipe();
  return r;
}

/// Writes all `n` bytes. Throws `std::system_error` (EPIPE when the reader has gone) — never
/// lets SIGPIPE kill the process.
inline void write_all(native_handle h, const char* data, std::size_t n) {
  SigpipeGuard guard;
  while (n > 0) {
    ssize_t r = write_some_guarded(guard, h, data, n);
    if (r < 0) throw_errno(errno, "proc: write");
    data += r;
    n -= static_cast<std::size_t>(r);
  }
}

#if defined(PROC_LINUX) && !defined(PROC_NO_PAGE_REGION) && !defined(PROC_TSAN) && \
    !defined(PROC_MSAN)
// Page regions: anonymous memory that grows without copying (mremap moves the page tables, not
// the bytes) and whose whole pages can be moved into other memory of this process. A big
// capture grows in one and its pages are then moved into the result string (detail/buffer.hpp),
// so every byte is written once and no page is touched twice, as a realloc'd buffer would be.
// The move replaces pages of the block operator new returned, which must therefore be private
// anonymous memory (it is with glibc malloc, jemalloc, tcmalloc and the sanitizers); a program
// whose operator new hands out shared or file-backed memory defines PROC_NO_PAGE_REGION, and
// captures then copy once at the end instead. Under ThreadSanitizer and MemorySanitizer there are
// no page regions either (see sanitizers.hpp).
#  define PROC_HAVE_PAGE_REGION 1

inline std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

/// A new region of `bytes` (a multiple of the page size), or nullptr.
// AddressSanitizer keeps shadow state for addresses, not mappings: a region that lands where a
// thread's stack used to be (or that mremap moves) may still carry that stack's poison, which
// would make our own writes into it look like stack overflows. The region is ours and all of it
// may be written, so its shadow is cleared whenever it is mapped or grown.
inline void region_unpoison([[maybe_unused]] char* p, [[maybe_unused]] std::size_t bytes) noexcept {
#  if defined(PROC_ASAN)
  if (p) __asan_unpoison_memory_region(p, bytes);
#  endif
}

inline char* region_map(std::size_t bytes) noexcept {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char* r = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  region_unpoison(r, bytes);
  return r;
}

/// The region grown to `bytes`, possibly at a new address (its pages move along), or nullptr
/// (the old region is left as it was).
inline char* region_grow(char* p, std::size_t old_bytes, std::size_t bytes) noexcept {
  void* q = ::mremap(p, old_bytes, bytes, MREMAP_MAYMOVE);
  char* r = q == MAP_FAILED ? nullptr : static_cast<char*>(q);
  region_unpoison(r, bytes);
  return r;
}

inline void region_unmap(char* p, std::size_t bytes) noexcept {
  if (p && bytes) ::munmap(p, bytes);
}

/// Moves the whole pages [from, from + bytes) to `to` (both page-aligned), replacing what was
/// mapped there; [from, from + bytes) is unmapped afterwards. False when the kernel refused
/// (nothing moved).
inline bool region_move_pages(char* from, std::size_t bytes, char* to) noexcept {
  return ::mremap(from, bytes, bytes, MREMAP_MAYMOVE | MREMAP_FIXED, to) != MAP_FAILED;
}
#endif

}  // namespace proc::detail
