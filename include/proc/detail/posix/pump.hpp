#pragma once
// Moving data to and from a child's pipes at once: the poll() loop behind communicate() and
// stream_lines().
//
// Calls: poll/ppoll, read, write (non-blocking on the input end while pumping), fcntl.
//
// Invariants: all three pipes are served in one loop, so a child that fills stdout while we
// write its stdin (or fills stderr while we read stdout) never deadlocks us. The input end is
// closed as soon as all input is written (the child sees EOF), and a child that closed its
// stdin early ends the writing quietly (EPIPE, as Python). Reads go straight into the sinks.

#include <poll.h>

#include <chrono>
#include <optional>
#include <string_view>

#include "proc/detail/posix/handle.hpp"
#include "proc/detail/posix/poll.hpp"
#include "proc/detail/pump_state.hpp"

namespace proc::detail {

/// Moves data until every stream has ended (true) or `deadline` passes (false).
inline bool pump(PumpState& st, std::optional<std::chrono::steady_clock::time_point> deadline) {
  using Clock = std::chrono::steady_clock;
  if (st.in != invalid_handle && st.in_pos >= st.input.size()) {
    close_handle(st.in);
    st.in = invalid_handle;
  }
  if (st.done()) return true;

  std::optional<SigpipeGuard> guard;
  bool was_nonblocking = false;
  if (st.in != invalid_handle) {
    guard.emplace();
    was_nonblocking = set_nonblocking(st.in, true);
  }
  struct Restore {
    PumpState& st;
    bool was;
    ~Restore() {
      if (st.in != invalid_handle && !was) {
        try {
          set_nonblocking(st.in, false);
        } catch (...) {
        }
      }
    }
  } restore{st, was_nonblocking};

  auto read_into = [](native_handle& h, Sink* sink) {
    std::size_t room = 0;
    char* p = sink->prepare(room);
    std::size_t n = read_some(h, p, room);
    sink->commit(n);
    if (n == 0) {
      close_handle(h);
      h = invalid_handle;
    }
  };

  while (!st.done()) {
    pollfd fds[3];
    nfds_t n = 0;
    int idx_in = -1, idx_out = -1, idx_err = -1;
    if (st.in != invalid_handle) idx_in = static_cast<int>(n), fds[n++] = {st.in, POLLOUT, 0};
    if (st.out != invalid_handle) idx_out = static_cast<int>(n), fds[n++] = {st.out, POLLIN, 0};
    if (st.err != invalid_handle) idx_err = static_cast<int>(n), fds[n++] = {st.err, POLLIN, 0};

    if (deadline && Clock::now() >= *deadline) return false;
    int r = PROC_SYS(poll, poll_until(fds, n, deadline));  // EINTR: recomputes the time left
    if (r < 0) throw_errno(errno, "proc: poll");
    if (r == 0) continue;  // the deadline check at the top decides

    if (idx_out >= 0 && fds[idx_out].revents) read_into(st.out, st.out_sink);
    if (idx_err >= 0 && fds[idx_err].revents) read_into(st.err, st.err_sink);
    if (idx_in >= 0 && fds[idx_in].revents) {
      bool finished = (fds[idx_in].revents & (POLLERR | POLLHUP)) != 0;
      if (!finished) {
        std::size_t left = st.input.size() - st.in_pos;
        ssize_t w = write_some_guarded(*guard, st.in, st.input.data() + st.in_pos,
                                       std::min<std::size_t>(left, 1 << 20));
        if (w >= 0) {
          st.in_pos += static_cast<std::size_t>(w);
          finished = st.in_pos >= st.input.size();
        } else if (errno == EPIPE) {
          finished = true;  // the child stopped reading: not an error (as Python)
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          throw_errno(errno, "proc: write");
        }
      }
      if (finished) {
        close_handle(st.in);
        st.in = invalid_handle;
      }
    }
  }
  return true;
}

}  // namespace proc::detail
