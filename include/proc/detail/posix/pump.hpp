#pragma once
// Moving data to and from children's pipes: the poll() loop behind communicate(),
// stream_lines(), run(), run_pipeline() and run_all(), and the exit handles (pidfds) watched in
// the same poll.
//
// Calls: poll/ppoll, read, write (non-blocking on the input ends while pumping), fcntl.
//
// Invariants: every stream of every state is served in one loop, so a child that fills stdout
// while we write its stdin (or fills stderr while we read stdout) never deadlocks us, and many
// children share one thread. An input end is closed as soon as all its input is written (the
// child sees EOF), and a child that closed its stdin early ends the writing quietly (EPIPE, as
// Python). Reads go straight into the sinks. An error in one state is recorded in it and stops
// that state alone.

#include <poll.h>

#include <chrono>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "proc/detail/posix/handle.hpp"
#include "proc/detail/posix/poll.hpp"
#include "proc/detail/pump_state.hpp"

namespace proc::detail {

/// Moves data on the streams of every state and watches the exit handles (pidfds) in `exits`,
/// until a state has all its streams ended or records an error, an exit handle is ready, or
/// `deadline` passes. States already done (or holding an error) are skipped; a state whose
/// stdin has nothing left to write has it closed first.
inline void pump_many(std::span<PumpState* const> states, std::span<const native_handle> exits,
                      std::optional<std::chrono::steady_clock::time_point> deadline) {
  using Clock = std::chrono::steady_clock;
  bool any_in = false;
  for (PumpState* st : states) {
    if (st->error) continue;
    if (st->in != invalid_handle && st->in_pos >= st->input.size()) {
      close_handle(st->in);
      st->in = invalid_handle;
    }
    any_in = any_in || st->in != invalid_handle;
  }

  std::optional<SigpipeGuard> guard;
  if (any_in) guard.emplace();
  // Input ends are non-blocking while we pump (one write never stalls the others), and back as
  // they were afterwards.
  struct Blocking {
    PumpState* st;
    native_handle h;
    bool was;
  };
  std::vector<Blocking> restore;
  struct Restore {
    std::vector<Blocking>& v;
    ~Restore() {
      for (auto& b : v) {
        if (b.st->in == b.h && !b.was) {
          try {
            set_nonblocking(b.h, false);
          } catch (...) {
          }
        }
      }
    }
  } restore_guard{restore};
  for (PumpState* st : states) {
    if (st->error || st->in == invalid_handle) continue;
    try {
      restore.push_back({st, st->in, set_nonblocking(st->in, true)});
    } catch (...) {
      st->error = std::current_exception();
      return;
    }
  }

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
  auto write_from = [&](PumpState& st, short revents) {
    bool finished = (revents & (POLLERR | POLLHUP)) != 0;
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
  };

  // Which state and stream each pollfd belongs to; exits come first.
  struct Slot {
    PumpState* st;  // null: an exit handle
    int stream;     // 0 in, 1 out, 2 err
  };
  std::vector<pollfd> fds;
  std::vector<Slot> slots;
  for (;;) {
    fds.clear();
    slots.clear();
    for (native_handle h : exits) {
      if (h == invalid_handle) continue;
      fds.push_back({h, POLLIN, 0});
      slots.push_back({nullptr, 0});
    }
    bool any_stream = false;
    for (PumpState* st : states) {
      if (st->error) continue;
      if (st->in != invalid_handle) fds.push_back({st->in, POLLOUT, 0}), slots.push_back({st, 0});
      if (st->out != invalid_handle) fds.push_back({st->out, POLLIN, 0}), slots.push_back({st, 1});
      if (st->err != invalid_handle) fds.push_back({st->err, POLLIN, 0}), slots.push_back({st, 2});
      any_stream = any_stream || !st->done();
    }
    if (!any_stream && exits.empty()) return;
    if (deadline && Clock::now() >= *deadline) return;
    int r = PROC_SYS(poll, poll_until(fds.data(), fds.size(), deadline));  // EINTR: time left
    if (r < 0) throw_errno(errno, "proc: poll");
    if (r == 0) continue;  // the deadline check at the top decides

    bool event = false;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      Slot s = slots[i];
      if (!s.st) {
        event = true;  // an exit handle is ready
        continue;
      }
      PumpState& st = *s.st;
      if (st.error) continue;
      const bool was_done = st.done();
      try {
        if (s.stream == 1 && st.out == fds[i].fd)
          read_into(st.out, st.out_sink);
        else if (s.stream == 2 && st.err == fds[i].fd)
          read_into(st.err, st.err_sink);
        else if (s.stream == 0 && st.in == fds[i].fd)
          write_from(st, fds[i].revents);
      } catch (...) {
        st.error = std::current_exception();
        event = true;
        continue;
      }
      if (!was_done && st.done()) event = true;
    }
    if (event) return;
  }
}

/// Moves data until every stream of `st` has ended (true) or `deadline` passes (false). An
/// error is rethrown (and cleared from the state, which can then be pumped again).
inline bool pump(PumpState& st, std::optional<std::chrono::steady_clock::time_point> deadline) {
  using Clock = std::chrono::steady_clock;
  PumpState* one[1] = {&st};
  for (;;) {
    pump_many(one, {}, deadline);
    if (st.error) std::rethrow_exception(std::exchange(st.error, nullptr));
    if (st.done()) return true;
    if (deadline && Clock::now() >= *deadline) return false;
  }
}

}  // namespace proc::detail
