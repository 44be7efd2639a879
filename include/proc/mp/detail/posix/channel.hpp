#pragma once
// The byte channel under proc::mp on POSIX: one AF_UNIX stream socket of a socketpair, for a
// Connection and for the control channel between a parent and a child Process.
//
// Calls: socketpair (SOCK_CLOEXEC), sendmsg (MSG_NOSIGNAL) over iovecs, read, shutdown,
// poll/ppoll, fcntl, close.
//
// Invariants:
// - Both ends are close-on-exec from birth: a child gets one only when it is passed on purpose
//   (pass_fds), and then sets it close-on-exec again (set_inheritable(false)), so programs it
//   runs in turn do not hold it.
// - Writing never raises SIGPIPE (MSG_NOSIGNAL): a reader that has gone is `closed`.
// - A stream socket delivers what was written before the writer went away, then EOF: a reader
//   sees every whole message first, and a message cut short by the writer's death as EOF in its
//   middle (which the framing above reports as PeerDiedMidMessage).

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "proc/detail/platform.hpp"

namespace proc::mp::detail {

using proc::detail::Clock;
using proc::detail::invalid_handle;
using proc::detail::native_handle;

/// Two connected ends. Duplex: both read and write; one-way: `first` reads, `second` writes.
struct HandlePair {
  native_handle first = invalid_handle;
  native_handle second = invalid_handle;
};

inline HandlePair channel_pair(bool duplex) {
  int sv[2];
  if (PROC_SYS(pipe, ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) != 0)
    proc::detail::throw_errno(errno, "proc::mp: socketpair");
  if (!duplex) {
    ::shutdown(sv[0], SHUT_WR);
    ::shutdown(sv[1], SHUT_RD);
  }
  return {sv[0], sv[1]};
}

inline void close_channel(native_handle h) noexcept { proc::detail::close_handle(h); }

/// Whether `h` reaches a child started with it in `pass_fds` (POSIX: close-on-exec off).
inline void set_inheritable(native_handle h, bool on) {
  int flags = ::fcntl(h, F_GETFD);
  if (flags < 0 || ::fcntl(h, F_SETFD, on ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC)) < 0)
    proc::detail::throw_errno(errno, "proc::mp: fcntl(F_SETFD)");
}

/// A piece of a message to write.
struct Chunk {
  const char* data;
  std::size_t size;
};

/// Writes every chunk in order, whole, blocking as needed. False when the reader has gone
/// (EPIPE, ECONNRESET): nothing more can be sent.
inline bool write_chunks(native_handle h, std::span<const Chunk> chunks) {
  std::vector<iovec> iov;
  iov.reserve(std::min<std::size_t>(chunks.size(), IOV_MAX));
  std::size_t i = 0, off = 0;  // the first byte not yet written: chunks[i].data + off
  while (i < chunks.size()) {
    iov.clear();
    for (std::size_t k = i; k < chunks.size() && iov.size() < IOV_MAX; ++k) {
      const char* p = chunks[k].data + (k == i ? off : 0);
      std::size_t n = chunks[k].size - (k == i ? off : 0);
      if (n) iov.push_back({const_cast<char*>(p), n});
    }
    if (iov.empty()) break;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    ssize_t w = PROC_SYS(write, ::sendmsg(h, &msg, MSG_NOSIGNAL));
    if (w < 0) {
      if (errno == EPIPE || errno == ECONNRESET) return false;
      proc::detail::throw_errno(errno, "proc::mp: sendmsg");
    }
    auto left = static_cast<std::size_t>(w);
    while (i < chunks.size() && left >= chunks[i].size - off) {
      left -= chunks[i].size - off;
      ++i;
      off = 0;
    }
    off += left;
  }
  return true;
}

/// Reads at most `n` bytes (at least one unless at the end); 0 at the end of the stream (a reset
/// by a peer that died with unread data counts as the end).
inline std::size_t read_some(native_handle h, char* p, std::size_t n) {
  ssize_t r = PROC_SYS(
      read, ::read(h, p, proc::detail::io_limit(std::min<std::size_t>(n, std::size_t{1} << 30))));
  if (r < 0) {
    if (errno == ECONNRESET) return 0;
    proc::detail::throw_errno(errno, "proc::mp: read");
  }
  return static_cast<std::size_t>(r);
}

/// The indices of `handles` that are readable (data, or the end of the stream), waiting until
/// one is or `deadline` passes (then none). Also wakes for an exit handle (a pidfd) in the set.
inline std::vector<std::size_t> wait_readable(std::span<const native_handle> handles,
                                              std::optional<Clock::time_point> deadline) {
  std::vector<pollfd> fds;
  fds.reserve(handles.size());
  for (native_handle h : handles) fds.push_back({h, POLLIN, 0});
  std::vector<std::size_t> ready;
  for (;;) {
    if (deadline && Clock::now() >= *deadline && !fds.empty()) {
      // One look without sleeping, so that a zero timeout still reports what is ready.
      if (::poll(fds.data(), fds.size(), 0) <= 0) return ready;
    } else {
      int r = proc::detail::poll_until(fds.data(), fds.size(), deadline);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) proc::detail::throw_errno(errno, "proc::mp: poll");
      if (r == 0) {
        if (deadline && Clock::now() >= *deadline) return ready;
        continue;
      }
    }
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (fds[i].revents) ready.push_back(i);
    return ready;
  }
}

}  // namespace proc::mp::detail

namespace proc::mp::detail {

/// Wakes a thread sleeping in wait_readable() from another thread: a non-blocking pipe whose read
/// end is in the wait set.
class Waker {
 public:
  Waker() {
    proc::detail::PipePair p = proc::detail::make_pipe();
    r_ = p.read;
    w_ = p.write;
    proc::detail::set_nonblocking(r_, true);
    proc::detail::set_nonblocking(w_, true);
  }
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  ~Waker() {
    proc::detail::close_handle(r_);
    proc::detail::close_handle(w_);
  }
  /// What to add to the wait set.
  [[nodiscard]] native_handle handle() const noexcept { return r_; }
  void wake() noexcept {
    char c = 1;
    ssize_t ignored = ::write(w_, &c, 1);  // a full pipe is awake already
    (void)ignored;
  }
  /// After a wake-up: empties the pipe.
  void drain() noexcept {
    char buf[64];
    while (::read(r_, buf, sizeof buf) > 0) {
    }
  }

 private:
  native_handle r_ = invalid_handle, w_ = invalid_handle;
};

}  // namespace proc::mp::detail
