#pragma once
// Waiting for and ending a child on Windows.
//
// Calls: WaitForSingleObject, GetExitCodeProcess, TerminateProcess, TerminateJobObject,
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

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "proc/detail/windows/handle.hpp"
#include "proc/detail/windows/signals.hpp"
#include "proc/detail/windows/spawn.hpp"
#include "proc/detail/windows/win32.hpp"

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

/// Holds the handles of kill-on-close jobs that still have processes, until they are empty.
class KeptJobs {
 public:
  static void keep(UniqueHandle job) {
    static std::mutex* m = new std::mutex();  // leaked: used until exit
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
    return status_;
  }

  DWORD pid_;
  bool group_leader_;
  bool kill_on_close_;
  UniqueHandle process_;
  UniqueHandle job_;
  std::mutex m_;
  std::optional<int> status_;
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
