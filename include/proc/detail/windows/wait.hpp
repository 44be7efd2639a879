#pragma once
// Waiting for and ending a child on Windows.
//
// Calls: WaitForSingleObject, GetExitCodeProcess, TerminateProcess, TerminateJobObject,
// GenerateConsoleCtrlEvent (CTRL_BREAK_EVENT, the graceful stop of kill_grace),
// QueryInformationJobObject (JobObjectBasicAccountingInformation), CloseHandle.
//
// Invariants:
// - Waiting is event-driven: a process handle is signalled when the process ends, and waiters
//   sleep in WaitForSingleObject on it (no polling). The exit code is read only after the
//   handle is signalled, so a child that exits with 259 (STILL_ACTIVE) is not mistaken for a
//   running one.
// - The process handle stays open for the life of the Process, so the PID cannot be reused
//   while we may still terminate it: terminate()/kill() never reach another process. Ending a
//   child that has exited is harmless (TerminateProcess's ERROR_ACCESS_DENIED for it is ignored).
// - Blocking never holds the mutex, so kill() from another thread is never held up by a wait.
// - signal_group ends the child's job: the child and every descendant that did not break away,
//   even after the child itself has exited (a grandchild holding the pipes is what a timed-out
//   run() must get rid of). The job handle is ours, so no reuse question arises.
// - A job with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE (kill_on_parent_exit) is not closed while
//   processes remain in it: closing it would kill them now rather than when this process exits.
//   Such handles are kept until their jobs empty or this process ends.
// - Windows has no zombies: a detached child needs no reaper, only its handles closed.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/detail/windows/handle.hpp"
#include "proc/detail/windows/signals.hpp"
#include "proc/detail/windows/spawn.hpp"
#include "proc/detail/windows/win32.hpp"
#include "proc/usage.hpp"

namespace proc::detail {

using Clock = std::chrono::steady_clock;

/// Milliseconds for a Win32 wait until `deadline` (rounded up; INFINITE for none).
inline DWORD wait_millis(std::optional<Clock::time_point> deadline) {
  if (!deadline) return INFINITE;
  const auto now = Clock::now();
  // Compared before subtracting: time_point::min() - now would overflow.
  if (*deadline <= now) return 0;
  const auto left = *deadline - now;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms >= static_cast<long long>(INFINITE) ? INFINITE - 1 : static_cast<DWORD>(ms);
}

/// Waits until one of `handles` is signalled or `deadline` passes: its index, or nullopt. Any
/// number of handles: past what one WaitForMultipleObjects takes (64), helper threads each wait
/// on a share of them plus a stop event, and the first to see one signalled reports it.
inline std::optional<std::size_t> wait_for_any(std::span<const HANDLE> handles,
                                               std::optional<Clock::time_point> deadline) {
  constexpr std::size_t direct = MAXIMUM_WAIT_OBJECTS;
  if (handles.size() <= direct) {
    DWORD r = ::WaitForMultipleObjects(static_cast<DWORD>(handles.size()), handles.data(), FALSE,
                                       wait_millis(deadline));
    if (r == WAIT_TIMEOUT) return std::nullopt;
    if (r >= WAIT_OBJECT_0 && r < WAIT_OBJECT_0 + handles.size()) return r - WAIT_OBJECT_0;
    if (r >= WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + handles.size()) return r - WAIT_ABANDONED_0;
    throw_last_error("proc: WaitForMultipleObjects");
  }
  struct Shared {
    UniqueHandle stop{::CreateEventW(nullptr, TRUE, FALSE, nullptr)};
    UniqueHandle found{::CreateEventW(nullptr, TRUE, FALSE, nullptr)};
    std::atomic<std::size_t> index{static_cast<std::size_t>(-1)};
  } shared;
  if (!shared.stop || !shared.found) throw_last_error("proc: CreateEvent");
  struct Group {
    Shared* shared;
    std::size_t base;
    std::vector<HANDLE> waits;  // [stop, handles...]
    HANDLE thread = nullptr;
    void run() noexcept {
      DWORD r =
          ::WaitForMultipleObjects(static_cast<DWORD>(waits.size()), waits.data(), FALSE, INFINITE);
      std::size_t k = static_cast<std::size_t>(-1);
      if (r > WAIT_OBJECT_0 && r < WAIT_OBJECT_0 + waits.size()) k = r - WAIT_OBJECT_0;
      if (r > WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + waits.size()) k = r - WAIT_ABANDONED_0;
      if (k == static_cast<std::size_t>(-1)) return;
      std::size_t none = static_cast<std::size_t>(-1);
      shared->index.compare_exchange_strong(none, base + k - 1);
      ::SetEvent(shared->found.get());
    }
    static DWORD WINAPI main(void* self) {
      static_cast<Group*>(self)->run();
      return 0;
    }
  };
  std::vector<Group> groups;
  for (std::size_t b = 0; b < handles.size(); b += direct - 1) {
    Group g{&shared, b, {shared.stop.get()}};
    for (std::size_t k = b; k < std::min(handles.size(), b + direct - 1); ++k)
      g.waits.push_back(handles[k]);
    groups.push_back(std::move(g));
  }
  struct Join {
    std::vector<Group>& groups;
    HANDLE stop;
    ~Join() {
      ::SetEvent(stop);
      for (Group& g : groups)
        if (g.thread) {
          ::WaitForSingleObject(g.thread, INFINITE);
          ::CloseHandle(g.thread);
        }
    }
  } join{groups, shared.stop.get()};
  for (Group& g : groups) {
    g.thread = ::CreateThread(nullptr, 64 * 1024, &Group::main, &g,
                              STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr);
    if (!g.thread) throw_last_error("proc: CreateThread");
  }
  DWORD r = ::WaitForSingleObject(shared.found.get(), wait_millis(deadline));
  if (r == WAIT_FAILED) throw_last_error("proc: WaitForSingleObject");
  std::size_t k = shared.index.load();
  if (k == static_cast<std::size_t>(-1)) return std::nullopt;
  return k;
}

/// Waits until one of the exit handles (process handles) is signalled or `deadline` passes: the
/// index of the first, or nullopt. Any number of handles (see wait_for_any).
inline std::optional<std::size_t> wait_exits(std::span<const HANDLE> handles,
                                             std::optional<Clock::time_point> deadline) {
  for (;;) {
    auto i = wait_for_any(handles, deadline);
    if (i || !deadline || Clock::now() >= *deadline) return i;
  }
}

/// Holds the handles of kill-on-close jobs that still have processes, until they are empty.
class KeptJobs {
 public:
  static void keep(UniqueHandle job) {
    static Mutex* m = new Mutex();  // leaked: used until exit
    static auto* jobs = new std::vector<UniqueHandle>();
    std::lock_guard lock(*m);
    std::erase_if(*jobs, [](const UniqueHandle& j) { return active_processes(j.get()) == 0; });
    jobs->push_back(std::move(job));
  }
  static DWORD active_processes(HANDLE job) noexcept {
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION info{};
    if (!::QueryInformationJobObject(job, JobObjectBasicAccountingInformation, &info, sizeof info,
                                     nullptr))
      return 0;
    return info.ActiveProcesses;
  }
};

/// One child: its process handle, its job, and its status once it has exited.
class Process {
 public:
  explicit Process(SpawnResult&& started)
      : pid_(started.pid),
        group_leader_(started.group_leader),
        own_console_(started.own_console),
        kill_on_close_(started.kill_on_close),
        process_(std::move(started.process)),
        job_(std::move(started.job)) {}
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    if (job_ && kill_on_close_ && KeptJobs::active_processes(job_.get()) > 0) {
      try {
        KeptJobs::keep(std::move(job_));
      } catch (...) {
        // Out of memory: the job closes now and its processes die early rather than never.
      }
    }
  }

  [[nodiscard]] DWORD pid() const noexcept { return pid_; }
  [[nodiscard]] bool group_leader() const noexcept { return group_leader_; }
  [[nodiscard]] HANDLE process_handle() const noexcept { return process_.get(); }
  /// What a loop can wait on for the child's exit: the process handle (signalled at exit).
  [[nodiscard]] HANDLE exit_handle() const noexcept { return process_.get(); }
  [[nodiscard]] HANDLE job_handle() const noexcept { return job_.get(); }

  /// The returncode if the child has exited, else nullopt. Never blocks.
  std::optional<int> try_wait() {
    std::lock_guard lock(m_);
    return try_wait_locked();
  }

  /// Waits until the child exits or `deadline` passes; the returncode, or nullopt on timeout.
  std::optional<int> wait_until(std::optional<Clock::time_point> deadline) {
    for (;;) {
      if (auto rc = try_wait()) return rc;
      DWORD r = ::WaitForSingleObject(process_.get(), wait_millis(deadline));
      if (r == WAIT_FAILED) throw_last_error("proc: WaitForSingleObject(process)");
      if (r == WAIT_TIMEOUT && deadline && Clock::now() >= *deadline) return try_wait();
    }
  }

  /// Waits until the child has exited or `deadline` passes; true when it has exited. (On POSIX
  /// this does not reap; a Windows process handle keeps the PID reserved either way.)
  bool wait_exited(std::optional<Clock::time_point> deadline) {
    return wait_until(deadline).has_value();
  }

  /// Whether the child has exited. Never blocks.
  bool has_exited() { return try_wait().has_value(); }

  /// What the child cost, once it has exited: process times and peak working set.
  std::optional<ResourceUsage> resource_usage() {
    std::lock_guard lock(m_);
    return usage_;
  }

  /// terminate()/kill(): TerminateProcess with exit code 1, unless the child has exited.
  /// Signal 0 does nothing; any other number is std::invalid_argument.
  void send_signal(int sig) {
    if (!check_signal(sig)) return;
    std::lock_guard lock(m_);
    if (try_wait_locked()) return;
    if (!::TerminateProcess(process_.get(), terminated_exit_code)) {
      DWORD e = ::GetLastError();
      if (::WaitForSingleObject(process_.get(), 0) == WAIT_OBJECT_0) return;  // it just exited
      throw_win32(e, "proc: TerminateProcess");
    }
  }

  /// The first step of a graceful stop (kill_grace): CTRL_BREAK_EVENT to a child that leads its
  /// own console process group and shares our console — a request it can handle; for any other
  /// child, or when the event cannot be delivered, the job ends at once.
  void request_stop() {
    if (group_leader_ && !own_console_ && !has_exited() &&
        ::GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid_))
      return;
    signal_group(sig_kill);
  }

  /// Ends the child's job — the child and all its descendants — for SIGTERM/SIGKILL; without a
  /// job (it could not be made), the child alone.
  void signal_group(int sig) {
    if (!job_) return send_signal(sig);
    if (!check_signal(sig)) return;
    if (!::TerminateJobObject(job_.get(), terminated_exit_code))
      throw_last_error("proc: TerminateJobObject");
  }

  /// The returncode if already known (no system call).
  std::optional<int> returncode() {
    std::lock_guard lock(m_);
    return status_;
  }

 private:
  // True for the two "signals" that end the child, false for 0; throws for the rest.
  static bool check_signal(int sig) {
    if (sig == sig_term || sig == sig_kill) return true;
    if (sig == 0) return false;
    throw std::invalid_argument("proc: signal " + std::to_string(sig) +
                                " is not supported on Windows: only SIGTERM (15) and SIGKILL (9), "
                                "which both call TerminateProcess");
  }

  std::optional<int> try_wait_locked() {
    if (status_) return status_;
    DWORD r = ::WaitForSingleObject(process_.get(), 0);
    if (r == WAIT_TIMEOUT) return std::nullopt;
    if (r != WAIT_OBJECT_0) throw_last_error("proc: WaitForSingleObject(process)");
    DWORD code = 0;
    if (!::GetExitCodeProcess(process_.get(), &code)) throw_last_error("proc: GetExitCodeProcess");
    status_ = static_cast<int>(code);  // NTSTATUS crash codes come out negative
    ResourceUsage u;
    FILETIME created, exited, kernel, user;
    if (::GetProcessTimes(process_.get(), &created, &exited, &kernel, &user)) {
      auto ticks = [](const FILETIME& f) {
        return std::chrono::nanoseconds(
            ((static_cast<long long>(f.dwHighDateTime) << 32) | f.dwLowDateTime) * 100);
      };
      u.user_time = ticks(user);
      u.system_time = ticks(kernel);
    }
    PROCESS_MEMORY_COUNTERS mem{};
    mem.cb = sizeof mem;
    if (::GetProcessMemoryInfo(process_.get(), &mem, sizeof mem))
      u.max_rss = mem.PeakWorkingSetSize;
    usage_ = u;
    return status_;
  }

  DWORD pid_;
  bool group_leader_;
  bool own_console_;
  bool kill_on_close_;
  UniqueHandle process_;
  UniqueHandle job_;
  Mutex m_;
  std::optional<int> status_;
  std::optional<ResourceUsage> usage_;
};

/// OnDestroy::detach. A Windows process leaves no zombie, so adopting a child only closes our
/// handles to it (a kill_on_parent_exit job is kept open: see KeptJobs).
class Reaper {
 public:
  static Reaper& instance() {
    static Reaper r;
    return r;
  }
  void adopt(std::unique_ptr<Process> p) { p.reset(); }
  /// How many children it still holds (for tests): none, ever.
  std::size_t pending() { return 0; }
};

}  // namespace proc::detail
