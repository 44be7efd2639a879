#pragma once
// Running started children to their end, one job or many at once, in the calling thread: the
// loop behind run(), run_pipeline() and run_all(). Platform-free: it drives the back end's
// pump_many() (pipes and exit handles in one wait) and detail::Process (reap, signal).
//
// A job is one command or one pipeline: its children, the parent's ends of its streams (a
// PumpState) and its deadline. It is finished when every stream has ended and every child has
// been reaped. When the deadline passes, or an error hits its streams, the job is *stopped*, the
// same way for every caller (this is the one place that does it):
//   1. stdin is closed; with a kill grace, SIGTERM goes to each child (to its group when it
//      leads one) and the streams are still read, for up to the grace;
//   2. SIGKILL to each child (group); the streams are read for timeout_drain_grace more and then
//      abandoned, so a grandchild that holds a pipe cannot hang the call;
//   3. every child is reaped; one that cannot be signalled (EPERM: it changed its ids) goes to
//      the reaper instead, so the call returns and nothing is left a zombie.
// A group leader is not reaped between steps 1 and 2: its PID reserves the group ID for the
// SIGKILL to the rest of the group.

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/popen.hpp"

namespace proc::detail {

/// How long a stopped job keeps reading its pipes after SIGKILL: long enough for the children's
/// last writes, short enough that a grandchild holding a pipe cannot hang us.
inline constexpr std::chrono::milliseconds timeout_drain_grace{250};

/// The parts of a Popen that the loops built on it use.
struct PopenAccess {
  static Process& process(Popen& p) { return *p.impl().proc; }
  /// Moves the parent's end of stream `i` (0 in, 1 out, 2 err) out; a closed end if not a pipe.
  static PipeEnd take(Popen& p, int i) {
    Popen::Impl& s = p.impl();
    PipeEnd* e[3] = {&s.in, &s.out, &s.err};
    return std::move(*e[i]);
  }
  /// Closes the parent's pipe ends (the child sees EOF / SIGPIPE).
  static void close_pipes(Popen& p) noexcept {
    if (!p.impl_) return;
    p.impl_->in.close();
    p.impl_->out.close();
    p.impl_->err.close();
  }
  /// Where a proc::tee sends the copy of stream `i` (invalid_handle: no tee).
  static native_handle tee_target(Popen& p, int i) { return p.impl().tee[i]; }
  /// Hands the child to the reaper now (it is collected when it exits); `p` is moved-from after.
  static void detach(Popen& p) noexcept {
    if (!p.impl_) return;
    p.impl_->on_destroy = OnDestroy::detach;
    p.destroy();
  }
};

class Job {
 public:
  /// `children` must outlive the job. Set `io` (handles, input, sinks) before the first step.
  Job(std::vector<Popen*> children, std::optional<Clock::time_point> deadline,
      std::optional<Clock::duration> kill_grace)
      : deadline_(deadline), kill_grace_(kill_grace) {
    for (Popen* p : children) children_.push_back({p});
  }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  PumpState io;

  [[nodiscard]] bool finished() const noexcept { return phase_ == Phase::finished; }
  [[nodiscard]] bool timed_out() const noexcept { return timed_out_; }
  /// The error that stopped the job (a stream's read error, a sink that threw), or null.
  [[nodiscard]] std::exception_ptr error() const noexcept { return error_; }

  /// Adds what this job waits on to one round of the loop.
  void collect(std::vector<PumpState*>& states, std::vector<native_handle>& exits,
               std::optional<Clock::time_point>& wake) {
    if (phase_ == Phase::finished) return;
    if (!io.done() && !io.error) states.push_back(&io);
    bool poll_by_pid = false;
    for (Child& c : children_) {
      if (c.reaped || c.gone || c.exited) continue;
      native_handle h = PopenAccess::process(*c.p).exit_handle();
      if (h != invalid_handle)
        exits.push_back(h);
      else
        poll_by_pid = true;  // no pidfd: look again after a short sleep
    }
    auto earliest = [&](Clock::time_point t) {
      if (!wake || t < *wake) wake = t;
    };
    if (phase_ == Phase::running && deadline_) earliest(*deadline_);
    if (phase_ != Phase::running) earliest(phase_deadline_);
    if (poll_by_pid) {
      earliest(Clock::now() + backoff_);
      backoff_ = std::min<Clock::duration>(backoff_ * 2, std::chrono::milliseconds(10));
    }
  }

  /// After a round of the loop: reaps what exited, and moves through the stop sequence.
  void advance() {
    if (phase_ == Phase::finished) return;
    if (io.error) {
      std::exception_ptr e = std::exchange(io.error, nullptr);
      if (phase_ == Phase::running) {
        error_ = e;
        begin_stop();
      } else {
        io.close_all();  // already stopping: what cannot be read is abandoned
      }
    }
    look_at_children();
    const auto now = Clock::now();
    switch (phase_) {
      case Phase::running:
        if (io.done() && all_reaped()) {
          phase_ = Phase::finished;
        } else if (deadline_ && now >= *deadline_) {
          timed_out_ = true;
          begin_stop();
        }
        break;
      case Phase::terminating:
        if (all_exited() || now >= phase_deadline_) kill_all();
        break;
      case Phase::draining:
      case Phase::finished:
        break;
    }
    if (phase_ == Phase::draining) {
      if (now >= phase_deadline_) io.close_all();  // abandon: a grandchild may hold them
      if (io.done()) {
        for (Child& c : children_)
          if (!c.reaped && !c.gone && c.unkillable) {
            PopenAccess::detach(*c.p);  // the reaper collects it whenever it exits
            c.gone = true;
          }
        if (all_reaped()) phase_ = Phase::finished;
      }
    }
  }

  /// Stops the job because of `why` (as on a timeout when null).
  void stop(std::exception_ptr why) {
    if (phase_ != Phase::running) return;
    error_ = why;
    begin_stop();
  }

  /// For a failure of the loop itself: kills every child, abandons the streams, reaps what dies
  /// within a moment and hands the rest to the reaper. Never throws.
  void stop_now() noexcept {
    if (phase_ == Phase::finished) return;
    io.close_all();
    for (Child& c : children_) {
      if (c.reaped || c.gone) continue;
      try {
        PopenAccess::process(*c.p).signal_group(sig_kill);
        if (PopenAccess::process(*c.p).wait_until(Clock::now() + std::chrono::seconds(1))) {
          c.reaped = true;
          continue;
        }
      } catch (...) {
      }
      PopenAccess::detach(*c.p);
      c.gone = true;
    }
    phase_ = Phase::finished;
  }

 private:
  enum class Phase { running, terminating, draining, finished };
  struct Child {
    Popen* p;
    bool exited = false;  // seen to exit but left unreaped (a group leader while terminating)
    bool reaped = false;
    bool gone = false;  // handed to the reaper
    bool unkillable = false;
  };

  bool all_reaped() const noexcept {
    return std::all_of(children_.begin(), children_.end(),
                       [](const Child& c) { return c.reaped || c.gone; });
  }
  bool all_exited() const noexcept {
    return std::all_of(children_.begin(), children_.end(),
                       [](const Child& c) { return c.reaped || c.gone || c.exited; });
  }

  void look_at_children() {
    for (Child& c : children_) {
      if (c.reaped || c.gone) continue;
      Process& proc = PopenAccess::process(*c.p);
      try {
        if (phase_ == Phase::terminating && proc.group_leader()) {
          c.exited = c.exited || proc.has_exited();
        } else if (proc.try_wait()) {
          c.reaped = true;
        }
      } catch (...) {
        if (phase_ == Phase::running) {
          error_ = std::current_exception();
          begin_stop();
        }
        c.unkillable = true;  // cannot even be waited for: the reaper gets it in the end
      }
    }
  }

  void begin_stop() {
    close_handle(io.in);
    io.in = invalid_handle;
    if (kill_grace_) {
      for (Child& c : children_) request_stop(c);
      phase_ = Phase::terminating;
      phase_deadline_ = saturating_add(Clock::now(), *kill_grace_);
    } else {
      kill_all();
    }
  }

  void kill_all() {
    for (Child& c : children_) {
      c.exited = false;  // now it may be reaped
      signal(c, sig_kill);
    }
    phase_ = Phase::draining;
    phase_deadline_ = Clock::now() + timeout_drain_grace;
  }

  static void request_stop(Child& c) {
    if (c.reaped || c.gone) return;
    try {
      PopenAccess::process(*c.p).request_stop();
    } catch (...) {
      c.unkillable = true;
    }
  }

  static void signal(Child& c, int sig) {
    if (c.reaped || c.gone) return;
    try {
      PopenAccess::process(*c.p).signal_group(sig);
    } catch (...) {
      c.unkillable = true;
    }
  }

  static Clock::time_point saturating_add(Clock::time_point t, Clock::duration d) {
    return d > Clock::time_point::max() - t ? Clock::time_point::max() : t + d;
  }

  std::vector<Child> children_;
  std::optional<Clock::time_point> deadline_;
  std::optional<Clock::duration> kill_grace_;
  Phase phase_ = Phase::running;
  Clock::time_point phase_deadline_{};
  Clock::duration backoff_ = std::chrono::microseconds(50);
  bool timed_out_ = false;
  std::exception_ptr error_;
};

/// One round over `jobs`: waits for the next event of any of them (a stream, a child's exit, a
/// deadline) and advances each. `extra_wake` bounds the wait (run_all's own bookkeeping).
inline void step_jobs(std::span<Job* const> jobs,
                      std::optional<Clock::time_point> extra_wake = std::nullopt) {
  std::vector<PumpState*> states;
  std::vector<native_handle> exits;
  states.reserve(jobs.size());
  exits.reserve(jobs.size());
  std::optional<Clock::time_point> wake = extra_wake;
  for (Job* j : jobs) j->collect(states, exits, wake);
  if (!states.empty() || !exits.empty() || wake) pump_many(states, exits, wake);
  for (Job* j : jobs) j->advance();
}

/// Runs `jobs` until each has finished. A failure of the loop itself stops every job (see
/// Job::stop_now) before it propagates.
inline void run_jobs(std::span<Job* const> jobs) {
  try {
    while (!std::all_of(jobs.begin(), jobs.end(), [](Job* j) { return j->finished(); }))
      step_jobs(jobs);
  } catch (...) {
    for (Job* j : jobs) j->stop_now();
    throw;
  }
}

}  // namespace proc::detail
