#pragma once
// Waiting for and signalling a child on POSIX.
//
// Calls: pidfd_open, pidfd_send_signal, poll/ppoll (Linux >= 5.3); kqueue/kevent with
// EVFILT_PROC (macOS); waitid(P_PID, WEXITED | WNOHANG / WNOWAIT); kill, killpg.
//
// Invariants:
// - Waiting is event-driven: on Linux the pidfd becomes readable when the child exits; on
//   macOS a kqueue reports NOTE_EXIT. No SIGCHLD handler is installed and no tick is slept.
//   (Linux < 5.3 has no pidfd: an untimed wait blocks in waitid(WNOWAIT); a timed wait falls
//   back to sleeping in growing steps from 50 us to 10 ms, the one polling loop left.)
// - Reaping happens only under the Process mutex, and signals are sent under the same mutex
//   and only while the child is unreaped: a zombie keeps its PID, so a signal never reaches a
//   reused PID. On Linux the pidfd makes this doubly sure (pidfd_send_signal).
// - Blocking never holds the mutex: waiters sleep on the pidfd (or waitid with WNOWAIT, which
//   does not reap), so kill() from another thread is never held up by a wait.

#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#if defined(PROC_LINUX)
#  include <sys/syscall.h>
#endif
#if defined(PROC_APPLE)
#  include <sys/event.h>
#endif

#include "proc/detail/posix/handle.hpp"
#include "proc/detail/posix/poll.hpp"
#include "proc/detail/posix/spawn.hpp"

namespace proc::detail {

using Clock = std::chrono::steady_clock;

/// One child: its PID, a pidfd where the kernel has them, and its status once reaped.
class Process {
 public:
  explicit Process(const SpawnResult& started)
      : pid_(started.pid), group_leader_(started.group_leader) {
#if defined(PROC_LINUX) && defined(SYS_pidfd_open)
    int e = injected_error(Sys::pidfd_open);
    if (e == 0) pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
      // ENOSYS (kernel < 5.3) or a seccomp filter: fall back to the waitid path.
#endif
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { close_handle(pidfd_); }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool group_leader() const noexcept { return group_leader_; }
  [[nodiscard]] int pidfd() const noexcept { return pidfd_; }

  /// The returncode if the child has exited (reaping it), else nullopt. Never blocks.
  std::optional<int> try_wait() {
    std::lock_guard lock(m_);
    return try_wait_locked();
  }

  /// Waits until the child exits or `deadline` passes; the returncode, or nullopt on timeout.
  std::optional<int> wait_until(std::optional<Clock::time_point> deadline) {
    int backoff_us = 50;
    for (;;) {
      if (auto rc = try_wait()) return rc;
      if (pidfd_ >= 0) {
        pollfd p{pidfd_, POLLIN, 0};
        int r = poll_until(&p, 1, deadline);
        if (r < 0 && errno != EINTR) throw_errno(errno, "proc: poll(pidfd)");
        if (r == 0) return try_wait();  // one last look at the deadline
        continue;
      }
#if defined(PROC_APPLE)
      if (auto done = kqueue_wait(deadline); !done) return try_wait();
      continue;
#else
      if (!deadline) {
        siginfo_t si{};
        int r = ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOWAIT);
        if (r < 0 && errno != EINTR && errno != ECHILD) throw_errno(errno, "proc: waitid");
        if (r < 0 && errno == ECHILD) return try_wait();
        continue;
      }
      if (Clock::now() >= *deadline) return try_wait();
      auto step = std::min<Clock::duration>(std::chrono::microseconds(backoff_us),
                                            *deadline - Clock::now());
      std::this_thread::sleep_for(step);
      backoff_us = std::min(backoff_us * 2, 10000);
#endif
    }
  }

  /// Waits until the child has exited or `deadline` passes, *without* reaping it (so its PID,
  /// and the group it leads, stay reserved, e.g. to signal the rest of the group). True when it
  /// has exited.
  bool wait_exited(std::optional<Clock::time_point> deadline) {
    for (;;) {
      {
        std::lock_guard lock(m_);
        if (status_) return true;
        siginfo_t si{};
        int r = ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG | WNOWAIT);
        if (r < 0 && errno != EINTR) return true;  // ECHILD: gone already
        if (r == 0 && si.si_pid != 0) return true;
      }
      if (deadline && Clock::now() >= *deadline) return false;
      if (pidfd_ >= 0) {
        pollfd p{pidfd_, POLLIN, 0};
        if (poll_until(&p, 1, deadline) < 0 && errno != EINTR)
          throw_errno(errno, "proc: poll(pidfd)");
        continue;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  /// Sends `sig` unless the child has been reaped (harmless on an exited child).
  void send_signal(int sig) {
    std::lock_guard lock(m_);
    if (status_) return;
#if defined(PROC_LINUX) && defined(SYS_pidfd_send_signal)
    if (pidfd_ >= 0) {
      if (::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0) == 0 || errno == ESRCH) return;
      if (errno != ENOSYS) throw_errno(errno, "proc: pidfd_send_signal");
    }
#endif
    if (::kill(pid_, sig) < 0 && errno != ESRCH) throw_errno(errno, "proc: kill");
  }

  /// Sends `sig` to the child's whole process group when it leads one (else to the child).
  void signal_group(int sig) {
    if (!group_leader_) return send_signal(sig);
    std::lock_guard lock(m_);
    // While the leader is unreaped its PID (= the group ID) cannot be reused.
    if (status_) return;
    if (::killpg(pid_, sig) < 0 && errno != ESRCH && errno != EPERM)
      throw_errno(errno, "proc: killpg");
  }

  /// The returncode if already reaped (no system call).
  std::optional<int> returncode() {
    std::lock_guard lock(m_);
    return status_;
  }

 private:
  static const timespec* remaining(std::optional<Clock::time_point> deadline) {
    thread_local timespec ts;
    if (!deadline) return nullptr;
    auto left = std::max(Clock::duration::zero(), *deadline - Clock::now());
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    return &ts;
  }

#if defined(PROC_APPLE)
  // True when the child has exited, false on timeout.
  bool kqueue_wait(std::optional<Clock::time_point> deadline) {
    int kq = ::kqueue();
    if (kq < 0) throw_errno(errno, "proc: kqueue");
    struct kevent change;
    EV_SET(&change, pid_, EVFILT_PROC, EV_ADD | EV_ONESHOT, NOTE_EXIT, 0, nullptr);
    struct kevent event;
    int r = ::kevent(kq, &change, 1, &event, 1, remaining(deadline));
    int e = errno;
    ::close(kq);
    if (r < 0 && e == ESRCH) return true;  // already exited
    if (r < 0 && e != EINTR) throw_errno(e, "proc: kevent");
    return r > 0;
  }
#endif

  std::optional<int> try_wait_locked() {
    if (status_) return status_;
    siginfo_t si{};
    int r = PROC_SYS(waitid, ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG));
    if (r < 0) {
      // ECHILD: someone else reaped it (SIGCHLD ignored, or a waitpid(-1) elsewhere). The
      // status is lost; report 0 as Python does.
      if (errno == ECHILD) return status_ = 0;
      throw_errno(errno, "proc: waitid");
    }
    if (si.si_pid == 0) return std::nullopt;
    if (si.si_code == CLD_EXITED)
      status_ = si.si_status;
    else
      status_ = -si.si_status;  // killed or dumped: -signal, as Python
    return status_;
  }

  pid_t pid_;
  bool group_leader_;
  int pidfd_ = -1;
  std::mutex m_;
  std::optional<int> status_;
};

/// Collects detached children as they exit (OnDestroy::detach), so none stays a zombie.
///
/// One background thread, started on first use, sleeps in poll() on the pidfds of the children
/// it holds and on a wake-up pipe. Without pidfds it looks every 100 ms. Its state is never
/// destroyed (the thread may outlive static destructors at exit).
class Reaper {
 public:
  static Reaper& instance() {
    static Reaper* r = new Reaper();  // leaked on purpose: see above
    return *r;
  }

  void adopt(std::unique_ptr<Process> p) {
    if (p->try_wait()) return;
    {
      std::lock_guard lock(m_);
      children_.push_back(std::move(p));
    }
    char c = 1;
    ssize_t ignored = ::write(wake_.write, &c, 1);
    (void)ignored;
  }

  /// How many children it still holds (for tests).
  std::size_t pending() {
    std::lock_guard lock(m_);
    return children_.size();
  }

 private:
  Reaper() : wake_(make_pipe()) {
    set_nonblocking(wake_.read, true);
    set_nonblocking(wake_.write, true);
    std::thread([this] { loop(); }).detach();
  }

  void loop() {
    std::vector<pollfd> fds;
    for (;;) {
      bool any_without_pidfd = false;
      fds.assign(1, pollfd{wake_.read, POLLIN, 0});
      {
        std::lock_guard lock(m_);
        std::erase_if(children_, [](const auto& p) { return p->try_wait().has_value(); });
        for (const auto& p : children_) {
          if (p->pidfd() >= 0)
            fds.push_back(pollfd{p->pidfd(), POLLIN, 0});
          else
            any_without_pidfd = true;
        }
      }
      int r = ::poll(fds.data(), fds.size(), any_without_pidfd ? 100 : -1);
      if (r > 0 && (fds[0].revents & POLLIN)) {
        char buf[64];
        while (::read(wake_.read, buf, sizeof buf) > 0) {
        }
      }
    }
  }

  PipePair wake_;
  std::mutex m_;
  std::vector<std::unique_ptr<Process>> children_;
};

}  // namespace proc::detail
