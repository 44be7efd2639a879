#pragma once
// Waiting for and signalling a child on POSIX.
//
// Calls: pidfd_open, pidfd_send_signal, waitid(P_PIDFD) (Linux >= 5.3 / 5.4), poll/ppoll; kqueue
// /kevent with EVFILT_PROC (macOS); waitid(P_PID) through the raw system call (for the rusage
// it fills at reaping) or wait4; kill, killpg; pthread_atfork for the reaper.
//
// Invariants:
// - Waiting is event-driven: on Linux the pidfd becomes readable when the child exits; on
//   macOS a kqueue reports NOTE_EXIT. No SIGCHLD handler is installed and no tick is slept.
//   (Linux < 5.3 has no pidfd: an untimed wait blocks in waitid(WNOWAIT); a timed wait falls
//   back to sleeping in growing steps from 50 us to 10 ms, the one polling loop left.)
// - With a pidfd, the child is reaped *through the pidfd* (waitid(P_PIDFD), Linux >= 5.4): if
//   someone else reaped it behind our back (SIGCHLD ignored, a waitpid(-1) elsewhere) and its
//   PID went to another child, we never reap, follow or report that other child. Without a
//   pidfd we can only ask by PID, as Python does.
// - Reaping happens only under the Process mutex, and signals are sent under the same mutex
//   and only while the child is unreaped: a zombie keeps its PID, so a signal never reaches a
//   reused PID. With a pidfd the signal goes through it (pidfd_send_signal), and a group is
//   signalled only after the pidfd shows the leader unreaped. Without a pidfd the child is
//   polled under the mutex first (as Python does), so one reaped elsewhere is not signalled.
// - Blocking never holds the mutex: waiters sleep on the pidfd (or waitid with WNOWAIT, which
//   does not reap), so kill() from another thread is never held up by a wait.

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "proc/config.hpp"
#if defined(PROC_LINUX)
#  include <sys/syscall.h>
#endif
#if defined(PROC_APPLE)
#  include <sys/event.h>
#endif

#include "proc/detail/posix/handle.hpp"
#include "proc/detail/posix/poll.hpp"
#include "proc/detail/posix/spawn.hpp"
#include "proc/usage.hpp"

namespace proc::detail {

using Clock = std::chrono::steady_clock;

#if defined(PROC_LINUX)
/// Whether waitid takes P_PIDFD (Linux >= 5.4; 5.3 has pidfds without it). Asked once.
inline bool kernel_has_pidfd_waitid() noexcept {
  static const bool yes = [] {
    struct utsname u {};
    if (::uname(&u) != 0) return false;
    int major = 0, minor = 0;
    if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
    return major > 5 || (major == 5 && minor >= 4);
  }();
  return yes;
}
#endif

/// waitid's idtype for a pidfd (P_PIDFD, Linux >= 5.4; older C libraries do not name it).
inline constexpr int idtype_pidfd = 3;

inline std::chrono::nanoseconds timeval_ns(const timeval& tv) {
  return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
}

/// One child: its PID, a pidfd where the kernel has them, and its status once reaped.
class Process {
 public:
  explicit Process(const SpawnResult& started)
      : pid_(started.pid), group_leader_(started.group_leader), pidfd_(started.pidfd) {
    if (pidfd_ >= 0) {  // made with the child (clone3)
      if (injected_error(Sys::pidfd_open) == 0) return;
      close_handle(std::exchange(pidfd_, -1));  // a test asks for life without pidfds
      return;
    }
#if defined(PROC_LINUX) && defined(SYS_pidfd_open)
    int e = injected_error(Sys::pidfd_open);
    if (e == 0) pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
      // ENOSYS (kernel < 5.3), EMFILE or a seccomp filter: fall back to the PID.
#endif
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { close_handle(pidfd_); }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool group_leader() const noexcept { return group_leader_; }
  /// The pidfd (readable once the child has exited), or -1.
  [[nodiscard]] int pidfd() const noexcept { return pidfd_; }
  /// What a loop can wait on for the child's exit: the pidfd, or -1.
  [[nodiscard]] native_handle exit_handle() const noexcept { return pidfd_; }

  /// The returncode if the child has exited (reaping it), else nullopt. Never blocks.
  std::optional<int> try_wait() {
    std::lock_guard lock(m_);
    return try_wait_locked();
  }

  /// Waits until the child exits or `deadline` passes; the returncode, or nullopt on timeout.
  std::optional<int> wait_until(std::optional<Clock::time_point> deadline) {
    int backoff_us = 50;
#if defined(PROC_LINUX)
    if (!deadline && pidfd_ >= 0 && kernel_has_pidfd_waitid()) {
      // No limit: sleep in waitid itself (WNOWAIT: it does not reap, so no lock is held while
      // blocked), then reap under the lock. Two system calls, the raw minimum but one.
      for (;;) {
        if (auto rc = returncode()) return rc;
        siginfo_t si{};
        int r = waitid_child(si, WEXITED | WNOWAIT, nullptr);
        if (r < 0 && errno != ECHILD) throw_errno(errno, "proc: waitid");
        if (auto rc = try_wait()) return rc;
      }
    }
#endif
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
        if (status_ || exited_locked()) return true;
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

  /// Whether the child has exited (reaped or not), without reaping it. Never blocks.
  bool has_exited() {
    std::lock_guard lock(m_);
    return status_ || exited_locked();
  }

  /// Sends `sig` unless the child has been reaped (harmless on an exited child).
  void send_signal(int sig) {
    std::lock_guard lock(m_);
    if (status_) return;
#if defined(PROC_LINUX) && defined(SYS_pidfd_send_signal)
    if (pidfd_ >= 0) {
      // The pidfd names this child and no other: ESRCH once it has been reaped (by anyone).
      if (PROC_SYS(kill, ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0)) == 0 ||
          errno == ESRCH)
        return;
      if (errno != ENOSYS) throw_errno(errno, "proc: pidfd_send_signal");
    }
#endif
    // By PID: first make sure it is still ours and unreaped (it may have been reaped behind
    // our back, and its PID reused).
    if (pidfd_ < 0 && try_wait_locked()) return;
    if (PROC_SYS(kill, ::kill(pid_, sig)) < 0 && errno != ESRCH) throw_errno(errno, "proc: kill");
  }

  /// The first step of a graceful stop (kill_grace): SIGTERM to the group (see signal_group).
  void request_stop() { signal_group(SIGTERM); }

  /// Sends `sig` to the child's whole process group when it leads one (else to the child).
  void signal_group(int sig) {
    if (!group_leader_) return send_signal(sig);
    std::lock_guard lock(m_);
    // While the leader is unreaped its PID (= the group ID) cannot be reused. If it was reaped
    // behind our back, the group ID may belong to someone else now: do not signal it.
    if (status_ || reaped_elsewhere_locked()) return;
    if (PROC_SYS(kill, ::killpg(pid_, sig)) < 0 && errno != ESRCH && errno != EPERM)
      throw_errno(errno, "proc: killpg");
  }

  /// The returncode if already reaped (no system call).
  std::optional<int> returncode() {
    std::lock_guard lock(m_);
    return status_;
  }

  /// What the child cost, once reaped (nullopt before, or when it was reaped elsewhere).
  std::optional<ResourceUsage> resource_usage() {
    std::lock_guard lock(m_);
    return usage_;
  }

 private:
#if defined(PROC_APPLE)
  static const timespec* remaining(std::optional<Clock::time_point> deadline) {
    thread_local timespec ts;
    if (!deadline) return nullptr;
    auto left = std::max(Clock::duration::zero(), *deadline - Clock::now());
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    return &ts;
  }

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

  // waitid on this child: through the pidfd when there is one (and the kernel takes P_PIDFD),
  // else by PID. Fills `ru` when reaping (Linux: the raw system call has the rusage argument).
  int waitid_child(siginfo_t& si, int options, struct rusage* ru) {
#if defined(PROC_LINUX) && defined(SYS_waitid)
    if (pidfd_ >= 0 && kernel_has_pidfd_waitid())
      return PROC_SYS(
          waitid, static_cast<int>(::syscall(SYS_waitid, idtype_pidfd, pidfd_, &si, options, ru)));
    return PROC_SYS(waitid, static_cast<int>(::syscall(SYS_waitid, P_PID, pid_, &si, options, ru)));
#else
    if (ru && !(options & WNOWAIT)) {
      // wait4 fills the rusage; emulate WNOHANG's "nothing yet" with si_pid = 0.
      int status = 0;
      pid_t r = PROC_SYS(waitid, ::wait4(pid_, &status, (options & WNOHANG) ? WNOHANG : 0, ru));
      if (r <= 0) {
        si.si_pid = 0;
        return static_cast<int>(r);
      }
      si.si_pid = r;
      if (WIFEXITED(status)) {
        si.si_code = CLD_EXITED;
        si.si_status = WEXITSTATUS(status);
      } else {
        si.si_code = CLD_KILLED;
        si.si_status = WTERMSIG(status);
      }
      return 0;
    }
    return PROC_SYS(waitid, ::waitid(P_PID, static_cast<id_t>(pid_), &si, options));
#endif
  }

  // Exited (a zombie), without reaping. ECHILD (reaped elsewhere) counts as exited.
  bool exited_locked() {
    siginfo_t si{};
    int r = waitid_child(si, WEXITED | WNOHANG | WNOWAIT, nullptr);
    if (r < 0) return errno == ECHILD ? (status_ = 0, true) : true;
    return si.si_pid != 0;
  }

  // True (and the status recorded as 0, as Python does) when someone else reaped the child.
  bool reaped_elsewhere_locked() {
    siginfo_t si{};
    if (waitid_child(si, WEXITED | WNOHANG | WNOWAIT, nullptr) < 0 && errno == ECHILD) {
      status_ = 0;
      return true;
    }
    return false;
  }

  std::optional<int> try_wait_locked() {
    if (status_) return status_;
    siginfo_t si{};
    struct rusage ru {};
    int r = waitid_child(si, WEXITED | WNOHANG, &ru);
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
    ResourceUsage u;
    u.user_time = timeval_ns(ru.ru_utime);
    u.system_time = timeval_ns(ru.ru_stime);
#if defined(PROC_APPLE)
    u.max_rss = static_cast<std::size_t>(ru.ru_maxrss);  // bytes on macOS
#else
    u.max_rss = static_cast<std::size_t>(ru.ru_maxrss) * 1024;  // KiB on Linux
#endif
    usage_ = u;
    return status_;
  }

  pid_t pid_;
  bool group_leader_;
  int pidfd_ = -1;
  std::mutex m_;
  std::optional<int> status_;
  std::optional<ResourceUsage> usage_;
};

/// Waits until one of the exit handles (pidfds) is ready or `deadline` passes: the index of the
/// first ready one, or nullopt. Invalid handles are never ready.
inline std::optional<std::size_t> wait_exits(std::span<const native_handle> handles,
                                             std::optional<Clock::time_point> deadline) {
  std::vector<pollfd> fds;
  fds.reserve(handles.size());
  for (native_handle h : handles) fds.push_back({h, POLLIN, 0});
  for (;;) {
    int r = poll_until(fds.data(), fds.size(), deadline);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno(errno, "proc: poll(pidfd)");
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (fds[i].revents) return i;
    if (!deadline || Clock::now() >= *deadline) return std::nullopt;
  }
}

/// Collects detached children as they exit (OnDestroy::detach), so none stays a zombie.
///
/// One background thread, started on first use, sleeps in poll() on the pidfds of the children
/// it holds and on a wake-up pipe; children without a pidfd, or a reaper that could not make its
/// wake-up pipe (descriptors exhausted), make it look every 100 ms instead. A thread that cannot
/// be started is tried again on the next adoption; the children wait in the list meanwhile and
/// are never dropped. Its state is never destroyed (the thread may outlive static destructors).
///
/// fork(): the child of a fork has no reaper thread, and its copy of the list names the
/// parent's children. An atfork handler keeps the list consistent across the fork (the prepare
/// step takes the locks) and gives the child a fresh, empty reaper on first use.
class Reaper {
 public:
  static Reaper& instance() {
    static std::once_flag registered;
    std::call_once(registered, [] { ::pthread_atfork(&prepare, &parent, &child); });
    std::lock_guard lock(creation_mutex());
    Reaper*& r = current();
    if (!r) r = new Reaper();  // leaked on purpose: see above
    return *r;
  }

  void adopt(std::unique_ptr<Process> p) {
    if (p->try_wait()) return;
    std::lock_guard lock(m_);
    children_.push_back(std::move(p));
    if (!started_) start_locked();
    if (wake_.write >= 0) {
      char c = 1;
      ssize_t ignored = ::write(wake_.write, &c, 1);
      (void)ignored;
    }
  }

  /// How many children it still holds (for tests).
  std::size_t pending() {
    std::lock_guard lock(m_);
    return children_.size();
  }

  /// The thread's body (a named type: UBSan's first check of a thread's vtable needs a pipe, so
  /// a test of descriptor exhaustion starts one `Loop{nullptr}` beforehand, which returns).
  struct Loop {
    Reaper* self;
    void operator()() const {
      if (self) self->loop();
    }
  };

 private:
  Reaper() {
    try {
      wake_ = make_pipe();
      set_nonblocking(wake_.read, true);
      set_nonblocking(wake_.write, true);
    } catch (...) {
      close_handle(wake_.read);
      close_handle(wake_.write);
      wake_ = {};  // descriptors exhausted: the thread polls every 100 ms instead
    }
  }

  void start_locked() {
    try {
      std::thread(Loop{this}).detach();
      started_ = true;
    } catch (...) {
      // No thread now (EAGAIN): the next adoption tries again; nothing is dropped.
    }
  }

  static std::mutex& creation_mutex() {
    static auto* m = new std::mutex();
    return *m;
  }
  static Reaper*& current() {
    static Reaper* r = nullptr;
    return r;
  }
  static void prepare() {
    creation_mutex().lock();
    if (Reaper* r = current()) r->m_.lock();
  }
  static void parent() {
    if (Reaper* r = current()) r->m_.unlock();
    creation_mutex().unlock();
  }
  static void child() {
    // This thread took both locks in prepare(), so it may release them. The copied children
    // are the parent's: close our copies of their pidfds and forget them, without waiting.
    if (Reaper* r = current()) {
      r->children_.clear();
      close_handle(r->wake_.read);
      close_handle(r->wake_.write);
      r->wake_ = {};
      r->m_.unlock();
      current() = nullptr;  // the old shell is leaked: its thread does not exist here
    }
    creation_mutex().unlock();
  }

  void loop() {
    std::vector<pollfd> fds;
    for (;;) {
      bool tick = false;
      fds.clear();
      {
        std::lock_guard lock(m_);
        if (wake_.read >= 0)
          fds.push_back(pollfd{wake_.read, POLLIN, 0});
        else
          tick = true;
        std::erase_if(children_, [](const auto& p) {
          try {
            return p->try_wait().has_value();
          } catch (...) {
            return false;  // a transient waitid failure: look again later
          }
        });
        for (const auto& p : children_) {
          if (p->pidfd() >= 0)
            fds.push_back(pollfd{p->pidfd(), POLLIN, 0});
          else
            tick = true;
        }
      }
      int r = ::poll(fds.data(), fds.size(), tick ? 100 : -1);
      if (r > 0 && wake_.read >= 0 && (fds[0].revents & POLLIN)) {
        char buf[64];
        while (::read(wake_.read, buf, sizeof buf) > 0) {
        }
      }
    }
  }

  PipePair wake_;
  bool started_ = false;
  std::mutex m_;
  std::vector<std::unique_ptr<Process>> children_;
};

}  // namespace proc::detail
