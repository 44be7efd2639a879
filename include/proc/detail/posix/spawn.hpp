#pragma once
// Starting a child on POSIX.
//
// Calls: posix_spawn with file actions (adddup2, addclose, addchdir_np, addclosefrom_np) and
// attributes (SETSIGDEF, SETSIGMASK, SETSID, SETPGROUP); on Linux clone(CLONE_VM|CLONE_VFORK)
// for what posix_spawn cannot express; fork only for a user `pre_exec` callback; execve;
// pidfd_open; getpwnam_r/getgrnam_r (in the parent); access/stat for the PATH search.
//
// Invariants:
// - The cheapest correct path is chosen per request: posix_spawn (glibc runs it with
//   clone(CLONE_VM|CLONE_VFORK), so its cost does not grow with the parent's memory), else our
//   own CLONE_VM|CLONE_VFORK child (Linux; same property), else fork (pre_exec, non-Linux).
// - Everything the child needs (argv, envp, the program path, resolved ids) is built in the
//   parent before the child exists. Code that runs in the child is async-signal-safe: no
//   allocation, no locks, no exceptions, only system calls and plain loops over prepared data.
// - Exec and chdir failures are reported as an errno in the parent: posix_spawn returns it
//   (glibc >= 2.24); the clone/fork child writes {stage, errno} to a close-on-exec pipe that
//   the parent reads after the child has exec'd (EOF) or died.
// - The clone child runs on a stack kept per thread (the thread is suspended while its child
//   uses it), so a spawn maps and faults in no new stack memory.
// - The PATH search happens in the parent, over the child's PATH (after env and env_update),
//   falling back to confstr(_CS_PATH), so the message can name the directories searched.

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "proc/config.hpp"
#if defined(PROC_LINUX)
#  include <sched.h>
#  include <sys/mman.h>
#  include <sys/prctl.h>
#  include <sys/syscall.h>
#endif

#include "proc/detail/posix/environ.hpp"
#include "proc/detail/posix/handle.hpp"
#include "proc/detail/posix/syscall.hpp"
#include "proc/detail/spawn_request.hpp"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#  define PROC_HAVE_ADDCLOSEFROM 1
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#  define PROC_HAVE_ADDCHDIR 1
#endif

// ThreadSanitizer cannot follow a CLONE_VM child: a TSan build takes the fork path wherever it
// would use clone (PROC_TSAN, see sanitizers.hpp).
#include "proc/detail/sanitizers.hpp"

namespace proc::detail {

using SpawnRequest = BasicSpawnRequest<native_handle>;

/// Thrown by spawn(); carries what SpawnError needs. popen.hpp turns it into proc::SpawnError.
struct SpawnFailure {
  int code;
  std::string program;
  std::string message;      // "cannot run 'x' (searched: ...)"
  bool exec_stage = false;  // execve itself failed (the PATH search may go on)
};

/// Which way a request is spawned (exposed for tests and benchmarks).
enum class SpawnPath { posix_spawn, clone_vfork, fork };

/// The argv of a shell command line.
inline std::vector<std::string> shell_argv(const std::string& command) {
  return {"/bin/sh", "-c", command};
}

// ---------------------------------------------------------------------------------------------
// Parent-side preparation.

struct PreparedIds {
  bool set_uid = false, set_gid = false, set_groups = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

inline std::uint32_t resolve_id(const IdSpec& id, bool is_group) {
  if (!id.is_name) return id.id;
  long size = ::sysconf(is_group ? _SC_GETGR_R_SIZE_MAX : _SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(size > 0 ? static_cast<std::size_t>(size) : 16384);
  for (;;) {
    int rc;
    std::uint32_t result = 0;
    bool found = false;
    if (is_group) {
      struct group g, *gp = nullptr;
      rc = ::getgrnam_r(id.name.c_str(), &g, buf.data(), buf.size(), &gp);
      if (rc == 0 && gp) found = true, result = gp->gr_gid;
    } else {
      struct passwd p, *pp = nullptr;
      rc = ::getpwnam_r(id.name.c_str(), &p, buf.data(), buf.size(), &pp);
      if (rc == 0 && pp) found = true, result = pp->pw_uid;
    }
    if (rc == ERANGE) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (found) return result;
    throw std::invalid_argument(std::string("proc: no such ") + (is_group ? "group" : "user") +
                                ": '" + id.name + "'");
  }
}

inline PreparedIds prepare_ids(const SpawnRequest& rq) {
  PreparedIds ids;
  if (rq.user) ids.set_uid = true, ids.uid = resolve_id(*rq.user, false);
  if (rq.group) ids.set_gid = true, ids.gid = resolve_id(*rq.group, true);
  if (rq.extra_groups) {
    ids.set_groups = true;
    for (const auto& g : *rq.extra_groups) ids.groups.push_back(resolve_id(g, true));
  }
  return ids;
}

inline std::string default_search_path() {
  std::size_t n = ::confstr(_CS_PATH, nullptr, 0);
  if (n == 0) return "/bin:/usr/bin";
  std::string s(n, '\0');
  ::confstr(_CS_PATH, s.data(), n);
  s.resize(n - 1);
  return s;
}

/// One place exec may find the program: a path to try, or (`error` set) a PATH entry that
/// cannot be run (not executable), kept so that the first such error can be reported.
struct Candidate {
  std::string path;
  int error = 0;
};

/// The files exec should try, in order. A name with a '/' is used as given (relative to the
/// child's cwd, as exec would); otherwise each PATH entry in turn. As Python does, an entry whose
/// exec fails with anything but ENOENT/ENOTDIR does not end the search: the next one is tried,
/// and the first such error is the one reported when none runs. Directories are skipped.
inline std::vector<Candidate> program_candidates(const SpawnRequest& rq, std::string& searched) {
  const std::string& prog = rq.program;
  if (prog.find('/') != std::string::npos) return {{prog, 0}};
  if (rq.env) {
    searched = rq.env_path ? *rq.env_path : default_search_path();
  } else if (const char* p = ::getenv("PATH")) {
    searched = p;
  } else {
    searched = default_search_path();
  }
  std::vector<Candidate> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = searched.find(':', start);
    std::string dir = searched.substr(start, colon == std::string::npos ? colon : colon - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + prog;
    std::string probe = candidate;
    if (rq.cwd && candidate.front() != '/') probe = (*rq.cwd / candidate).string();
    struct stat st;
    if (::stat(probe.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (PROC_SYS(access, ::access(probe.c_str(), X_OK)) == 0)
        out.push_back({std::move(candidate), 0});
      else if (errno != ENOENT && errno != ENOTDIR)  // ENOENT: deleted since the stat
        out.push_back({std::move(candidate), errno});
    }
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

inline void check_cwd(const SpawnRequest& rq) {
  if (!rq.cwd) return;
  struct stat st;
  int code = 0;
  if (::stat(rq.cwd->c_str(), &st) != 0)
    code = errno;
  else if (!S_ISDIR(st.st_mode))
    code = ENOTDIR;
  if (code)
    throw SpawnFailure{code, rq.program,
                       "proc: cannot run '" + rq.program + "': cannot change directory to '" +
                           rq.cwd->string() + "'"};
}

/// A NULL-terminated char* array pointing into strings that outlive it.
inline std::vector<char*> c_array(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// The source descriptor for each of the child's 0, 1, 2 (-1: leave as inherited), after moving
// any source that sits on a low number other than its target out of the way, so no dup2 can
// clobber a source another dup2 still needs. `temps` owns the moved copies.
struct StdioPlan {
  int src[3] = {-1, -1, -1};
  std::vector<int> temps;
  StdioPlan() = default;
  StdioPlan(const StdioPlan&) = delete;
  StdioPlan& operator=(const StdioPlan&) = delete;
  ~StdioPlan() {
    for (int fd : temps) close_handle(fd);
  }
};

inline void plan_stdio(const SpawnRequest& rq, StdioPlan& plan) {
  for (int i = 0; i < 3; ++i) {
    int fd = rq.stdio[i];
    if (fd >= 0 && fd <= 2 && fd != i) {
      fd = dup_above_stdio(fd);
      plan.temps.push_back(fd);
    }
    plan.src[i] = fd;
  }
}

// ---------------------------------------------------------------------------------------------
// The child side of the clone/fork paths. Only async-signal-safe calls below this line.

enum class ChildStage : int { setup = 1, chdir, ids, pre_exec, exec };

struct ChildReport {
  int stage;
  int error;
};

struct ChildArgs {
  const char* path;
  char* const* argv;
  char* const* envp;  // null: this process's environ as it is at exec (after pre_exec)
  const int* src;     // 3 entries
  bool err_to_stdout;
  const char* cwd;
  bool close_fds;
  const int* keep;  // sorted pass_fds: close-on-exec cleared in the child
  std::size_t nkeep;
  const int* survivors;  // sorted: pass_fds and the report pipe, which close_fds spares
  std::size_t nsurvivors;
  bool new_session;
  int ctty;  // after setsid, this pty slave becomes the controlling terminal (-1: none)
  bool set_pgroup;
  pid_t pgroup;
  bool restore_signals;
  bool set_umask;
  mode_t umask_value;
  const PreparedIds* ids;
  const std::function<void()>* pre_exec;
  bool pdeathsig;
  pid_t parent_pid;
  int report_fd;          // the fork path: {stage, errno} goes down this pipe
  ChildReport* shared;    // the CLONE_VM paths: straight into the parent's memory instead
  bool handlers_cleared;  // clone3 with CLONE_CLEAR_SIGHAND reset the caught signals already
  const sigset_t* parent_mask;
};

// Ends the child before exec with the raw system call: nothing of the parent's may run in it
// (a sanitizer's or another library's _exit hook would, for instance flush a copy of the
// parent's stdio buffers into the child's stdout).
[[noreturn]] inline void child_exit(int status) noexcept {
#if defined(PROC_LINUX)
  for (;;) ::syscall(SYS_exit_group, status);
#else
  ::_exit(status);
#endif
}

[[noreturn]] inline void child_fail(const ChildArgs& a, ChildStage stage, int err) noexcept {
  ChildReport rep{static_cast<int>(stage), err};
  if (a.shared) {
    // CLONE_VM|CLONE_VFORK: this is the parent's memory, and the parent sleeps until we exit.
    *a.shared = rep;
  } else {
    ssize_t ignored = ::write(a.report_fd, &rep, sizeof rep);
    (void)ignored;
  }
  child_exit(127);
}

// Closes [low, high] with one system call where the kernel has close_range (Linux >= 5.9).
inline bool child_close_range(unsigned low, unsigned high) noexcept {
#if defined(PROC_LINUX) && defined(SYS_close_range)
  if (::syscall(SYS_close_range, low, high, 0) == 0) return true;
#endif
  (void)low;
  (void)high;
  return false;
}

// Closes every descriptor from 3 up except the survivors (pass_fds and the report pipe): one
// close_range per gap between them, however many there are.
inline void child_close_fds(const ChildArgs& a) noexcept {
  const int* keep = a.survivors;
  const std::size_t n = a.nsurvivors;
  unsigned low = 3;
  bool ok = true;
  for (std::size_t i = 0; i <= n && ok; ++i) {
    if (i < n && keep[i] < static_cast<int>(low)) {
      if (keep[i] >= 3) low = static_cast<unsigned>(keep[i]) + 1;
      continue;
    }
    unsigned high = i < n ? static_cast<unsigned>(keep[i]) - 1 : ~0u;
    if (high >= low) ok = child_close_range(low, high);
    if (i < n) low = static_cast<unsigned>(keep[i]) + 1;
  }
  if (ok) return;
  // No close_range (old kernel, or not Linux): close up to the descriptor limit. This is the
  // slow fallback that the posix_spawn path and Linux >= 5.9 never take.
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > 65536) max = 65536;
  std::size_t k = 0;
  for (int fd = 3; fd < max; ++fd) {
    while (k < n && keep[k] < fd) ++k;
    if (k < n && keep[k] == fd) continue;
    ::close(fd);
  }
}

// Changing ids in the child. glibc's setuid/setgid/setgroups are process-wide: they signal every
// thread of the *calling process* (SIGSETXID) and take its thread-list lock. In a
// clone(CLONE_VM) child that process is the parent's memory: the child would wait for the
// parent's threads and locks and could deadlock while another thread of the parent changes its
// own ids. The raw system calls change only the calling task, which is exactly the child.
inline int child_set_ids(const PreparedIds& ids) noexcept {
#if defined(PROC_LINUX)
  if (ids.set_groups && ::syscall(SYS_setgroups, ids.groups.size(),
                                  ids.groups.empty() ? nullptr : ids.groups.data()) < 0)
    return errno;
  if (ids.set_gid && ::syscall(SYS_setresgid, ids.gid, ids.gid, ids.gid) < 0) return errno;
  if (ids.set_uid && ::syscall(SYS_setresuid, ids.uid, ids.uid, ids.uid) < 0) return errno;
#else
  // Only the fork path exists here: a private copy with one thread, so the libc calls are safe.
  if (ids.set_groups && ::setgroups(static_cast<int>(ids.groups.size()),
                                    ids.groups.empty() ? nullptr : ids.groups.data()) < 0)
    return errno;
  if (ids.set_gid && ::setgid(ids.gid) < 0) return errno;
  if (ids.set_uid && ::setuid(ids.uid) < 0) return errno;
#endif
  return 0;
}

inline int child_main(void* arg) noexcept {
  const ChildArgs& a = *static_cast<const ChildArgs*>(arg);

  // Signal handlers of the parent must not run in this copy: reset every caught signal (clone3
  // did it already with CLONE_CLEAR_SIGHAND, which keeps ignored signals ignored).
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  if (a.handlers_cleared && a.restore_signals) {
    ::sigaction(SIGPIPE, &dfl, nullptr);
#if defined(SIGXFSZ)
    ::sigaction(SIGXFSZ, &dfl, nullptr);
#endif
  }
  for (int sig = 1; sig < NSIG && !a.handlers_cleared; ++sig) {
    struct sigaction old;
    if (::sigaction(sig, nullptr, &old) != 0) continue;
    bool caught = (old.sa_flags & SA_SIGINFO)
                      ? old.sa_sigaction != nullptr
                      : (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN);
    bool restore = a.restore_signals && (sig == SIGPIPE
#if defined(SIGXFSZ)
                                         || sig == SIGXFSZ
#endif
                                        );
    if (caught || restore) ::sigaction(sig, &dfl, nullptr);
  }

  if (a.new_session && ::setsid() < 0) child_fail(a, ChildStage::setup, errno);
  if (a.ctty >= 0 && ::ioctl(a.ctty, TIOCSCTTY, 0) < 0) child_fail(a, ChildStage::setup, errno);
  if (a.set_pgroup && ::setpgid(0, a.pgroup) < 0) child_fail(a, ChildStage::setup, errno);

#if defined(PROC_LINUX)
  if (a.pdeathsig) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(a, ChildStage::setup, errno);
    // The parent may have gone before prctl: then nobody would kill us.
    if (::getppid() != a.parent_pid) child_exit(127);
  }
#endif

  for (int i = 0; i < 3; ++i) {
    int src = a.src[i];
    if (src < 0) continue;
    if (src == i) {
      int flags = ::fcntl(i, F_GETFD);
      if (flags < 0 || ::fcntl(i, F_SETFD, flags & ~FD_CLOEXEC) < 0)
        child_fail(a, ChildStage::setup, errno);
    } else if (::dup2(src, i) < 0) {
      child_fail(a, ChildStage::setup, errno);
    }
  }
  if (a.err_to_stdout && ::dup2(1, 2) < 0) child_fail(a, ChildStage::setup, errno);

  if (a.cwd && ::chdir(a.cwd) < 0) child_fail(a, ChildStage::chdir, errno);
  if (a.set_umask) ::umask(a.umask_value);

  if (a.ids) {
    if (int e = child_set_ids(*a.ids)) child_fail(a, ChildStage::ids, e);
  }

  if (a.pre_exec && *a.pre_exec) {
    // Only on the fork path (a private copy of the parent), so catching is allowed here. It runs
    // before close_fds (a descriptor it opens does not reach the program) and before exec reads
    // the environment (its setenv/putenv calls do), as in Python.
    try {
      (*a.pre_exec)();
    } catch (const std::system_error& e) {
      child_fail(a, ChildStage::pre_exec, e.code().value() ? e.code().value() : ECANCELED);
    } catch (...) {
      child_fail(a, ChildStage::pre_exec, ECANCELED);
    }
  }

  for (std::size_t i = 0; i < a.nkeep; ++i) {
    int flags = ::fcntl(a.keep[i], F_GETFD);
    if (flags < 0 || ::fcntl(a.keep[i], F_SETFD, flags & ~FD_CLOEXEC) < 0)
      child_fail(a, ChildStage::setup, errno);
  }
  if (a.close_fds) child_close_fds(a);

  // The signal mask last, so no handler could run between the resets above and here.
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, a.restore_signals ? &empty : a.parent_mask, nullptr);

  ::execve(a.path, a.argv, a.envp ? a.envp : process_environ());
  child_fail(a, ChildStage::exec, errno);
}

// ---------------------------------------------------------------------------------------------
// The three paths.

inline bool leads_group(const SpawnRequest& rq) {
  return rq.start_new_session || rq.ctty.has_value() ||
         (rq.process_group && *rq.process_group == 0);
}

#if defined(PROC_LINUX)
inline bool fast_clone_available() noexcept;
#endif

inline SpawnPath choose_path(const SpawnRequest& rq) {
  if (rq.pre_exec && *rq.pre_exec) return SpawnPath::fork;
  bool needs_child_code = rq.umask || rq.user || rq.group || rq.extra_groups ||
                          rq.kill_on_parent_exit || rq.ctty.has_value();
#if !defined(PROC_HAVE_ADDCLOSEFROM) && !defined(PROC_APPLE)
  needs_child_code = needs_child_code || rq.close_fds;
#endif
#if !defined(PROC_HAVE_ADDCHDIR) && !defined(PROC_APPLE)
  needs_child_code = needs_child_code || rq.cwd.has_value();
#endif
  // pass_fds with close_fds: posix_spawn can express it as closes of the gaps between the kept
  // descriptors; a huge gap list is cheaper as child code.
  if (rq.close_fds && !rq.pass_fds.empty()) {
    int top = *std::max_element(rq.pass_fds.begin(), rq.pass_fds.end());
    if (top > 256) needs_child_code = true;
  }
#if defined(PROC_LINUX)
  if (!needs_child_code && !fast_clone_available()) return SpawnPath::posix_spawn;
  return SpawnPath::clone_vfork;
#else
  if (!needs_child_code) return SpawnPath::posix_spawn;
  return SpawnPath::fork;
#endif
}

inline std::string stage_message(ChildStage stage, const SpawnRequest& rq,
                                 const std::string& path) {
  switch (stage) {
    case ChildStage::chdir:
      return "proc: cannot run '" + rq.program + "': cannot change directory to '" +
             (rq.cwd ? rq.cwd->string() : std::string()) + "'";
    case ChildStage::ids:
      return "proc: cannot run '" + rq.program + "': cannot switch user/group";
    case ChildStage::pre_exec:
      return "proc: cannot run '" + rq.program + "': the pre_exec callback failed";
    case ChildStage::setup:
      return "proc: cannot run '" + rq.program + "': setting up the child failed";
    case ChildStage::exec:
      break;
  }
  return "proc: cannot run '" + path + "'";
}

struct SpawnResult {
  pid_t pid = -1;
  SpawnPath path = SpawnPath::posix_spawn;
  bool group_leader = false;  // the child leads its own process group
  int pidfd = -1;             // made with the child (clone3), else -1: Process opens one
};

/// The category of SpawnError codes: errno values.
inline const std::error_category& spawn_error_category() noexcept {
  return std::generic_category();
}

/// Windows-only options are refused here, as POSIX-only ones are on Windows.
inline void check_windows_only_options(std::uint32_t creation_flags, bool hide_window) {
  if (creation_flags != 0)
    throw std::invalid_argument("proc: creation_flags is a Windows option (CreateProcessW)");
  if (hide_window) throw std::invalid_argument("proc: hide_window is a Windows option");
}

/// Rejects options this platform cannot honour. On POSIX all exist; pass_fds must be open.
inline void check_platform_options(const std::vector<int>& pass_fds, bool /*umask*/, bool /*user*/,
                                   bool /*group*/, bool /*extra_groups*/, bool /*pre_exec*/,
                                   bool /*new_session*/, bool /*process_group*/) {
  for (int fd : pass_fds)
    if (!handle_is_valid(fd))
      throw std::invalid_argument("proc: pass_fds: " + std::to_string(fd) +
                                  " is not an open descriptor");
}

inline SpawnResult spawn_posix_spawn(const SpawnRequest& rq, const std::string& path,
                                     char* const* argv, char* const* envp, const StdioPlan& plan) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  if (int e = posix_spawn_file_actions_init(&fa))
    throw_errno(e, "proc: posix_spawn_file_actions_init");
  if (int e = posix_spawnattr_init(&attr)) {
    posix_spawn_file_actions_destroy(&fa);
    throw_errno(e, "proc: posix_spawnattr_init");
  }
  struct Cleanup {
    posix_spawn_file_actions_t* fa;
    posix_spawnattr_t* attr;
    ~Cleanup() {
      posix_spawn_file_actions_destroy(fa);
      posix_spawnattr_destroy(attr);
    }
  } cleanup{&fa, &attr};

  int e = 0;
  auto check = [&](int rc) {
    if (rc != 0 && e == 0) e = rc;
  };
  // dup2 onto the same number clears close-on-exec (glibc >= 2.29, macOS, POSIX 2024).
  for (int i = 0; i < 3; ++i)
    if (plan.src[i] >= 0) check(posix_spawn_file_actions_adddup2(&fa, plan.src[i], i));
  if (rq.err_to_stdout) check(posix_spawn_file_actions_adddup2(&fa, 1, 2));
  for (int fd : rq.pass_fds) check(posix_spawn_file_actions_adddup2(&fa, fd, fd));
  if (rq.cwd) {
#if defined(PROC_HAVE_ADDCHDIR) || defined(PROC_APPLE)
    check(posix_spawn_file_actions_addchdir_np(&fa, rq.cwd->c_str()));
#endif
  }
  short flags = 0;
  if (rq.close_fds) {
#if defined(PROC_APPLE)
    flags |= POSIX_SPAWN_CLOEXEC_DEFAULT;
    for (int i = 0; i < 3; ++i)
      if (plan.src[i] < 0) check(posix_spawn_file_actions_addinherit_np(&fa, i));
    for (int fd : rq.pass_fds) check(posix_spawn_file_actions_addinherit_np(&fa, fd));
#elif defined(PROC_HAVE_ADDCLOSEFROM)
    // Close the gaps between kept descriptors, then everything above the last (after the dup2
    // actions, which read their sources from those numbers).
    std::vector<int> keep(rq.pass_fds.begin(), rq.pass_fds.end());
    std::sort(keep.begin(), keep.end());
    int low = 3;
    for (int k : keep) {
      for (int fd = low; fd < k; ++fd) check(posix_spawn_file_actions_addclose(&fa, fd));
      low = std::max(low, k + 1);
    }
    check(posix_spawn_file_actions_addclosefrom_np(&fa, low));
#endif
  }
  sigset_t mask;
  sigemptyset(&mask);
  if (rq.restore_signals) {
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
#if defined(SIGXFSZ)
    sigaddset(&def, SIGXFSZ);
#endif
    check(posix_spawnattr_setsigdefault(&attr, &def));
    check(posix_spawnattr_setsigmask(&attr, &mask));
    flags |= POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
  }
  if (rq.start_new_session) {
#if defined(POSIX_SPAWN_SETSID)
    flags |= POSIX_SPAWN_SETSID;
#endif
  }
  if (rq.process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    check(posix_spawnattr_setpgroup(&attr, *rq.process_group));
  }
  check(posix_spawnattr_setflags(&attr, flags));
  if (e) throw_errno(e, "proc: preparing posix_spawn");

  pid_t pid = -1;
  int rc = injected_error(Sys::spawn);
  if (rc == 0) rc = ::posix_spawn(&pid, path.c_str(), &fa, &attr, argv, envp);
  if (rc != 0) throw SpawnFailure{rc, rq.program, stage_message(ChildStage::exec, rq, path), true};
  return {pid, SpawnPath::posix_spawn, leads_group(rq)};
}

#if defined(PROC_LINUX)
// clone() with CLONE_VM|CLONE_VFORK: the child borrows the parent's memory (nothing is copied,
// so the cost does not grow with the parent's size) and the parent sleeps until the child has
// exec'd or exited. The child runs child_main on a stack of its own.
// The child's stack, one per thread, mapped on the thread's first clone and unmapped when the
// thread ends. Reusing it is safe: the thread is suspended for as long as its child runs on it.
class ChildStack {
 public:
  static constexpr std::size_t size = 64 * 1024;
  ChildStack() = default;
  ChildStack(const ChildStack&) = delete;
  ChildStack& operator=(const ChildStack&) = delete;
  ~ChildStack() {
    if (base_) ::munmap(base_, size);
  }
  /// The top of the stack (it grows down).
  char* top() {
    if (!base_) {
      void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (p == MAP_FAILED) throw_errno(errno, "proc: mmap (child stack)");
      base_ = static_cast<char*>(p);
    }
#  if defined(PROC_ASAN)
    // The previous child ended in _exit without unwinding, leaving its frames' redzones
    // poisoned in this stack's shadow (which the CLONE_VM child shares with us): the next child
    // would trip over them and die before it could report. Start clean.
    __asan_unpoison_memory_region(base_, size);
#  endif
    return base_ + size;
  }

 private:
  char* base_ = nullptr;
};

#  if defined(__x86_64__) && !defined(PROC_TSAN) && !defined(PROC_NO_CLONE3)
// clone3(CLONE_VM|CLONE_VFORK|CLONE_PIDFD|CLONE_CLEAR_SIGHAND): the kernel resets the caught
// signals itself (glibc's posix_spawn child makes ~120 rt_sigaction calls for that) and hands
// back a pidfd (no pidfd_open afterwards). glibc does not export clone3, and a raw system call
// that returns twice cannot go back into C on a new stack, so the child's side runs in the
// assembly below: on its stack it calls child_main(args), which execs or _exits.
#    define PROC_HAVE_CLONE3 1
struct Clone3Args {
  std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};
#    if !defined(CLONE_PIDFD)
#      define CLONE_PIDFD 0x00001000
#    endif
#    if !defined(CLONE_CLEAR_SIGHAND)
#      define CLONE_CLEAR_SIGHAND 0x100000000ULL
#    endif

/// Returns the child's pid, or -errno. The child runs fn(arg) and exits with its result.
inline long raw_clone3(Clone3Args* ca, int (*fn)(void*) noexcept, void* arg) noexcept {
  long ret;
  asm volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      // The child, on its own stack (rsp = stack + stack_size, 16-byte aligned).
      // fn and arg may sit in rbp (free without a frame pointer): read both before clearing it.
      "mov %[arg], %%rdi\n\t"
      "mov %[fn], %%rax\n\t"
      "xor %%ebp, %%ebp\n\t"
      "call *%%rax\n\t"
      "mov %%eax, %%edi\n\t"
      "mov $60, %%eax\n\t"  // exit
      "syscall\n\t"
      "hlt\n\t"
      "1:\n\t"
      : "=a"(ret)
      : "a"(435L /* SYS_clone3 */), "D"(ca), "S"(sizeof(Clone3Args)), [fn] "r"(fn), [arg] "r"(arg)
      : "rcx", "r11", "memory");
  return ret;
}

/// 0: not tried yet, 1: works, -1: the kernel (or a seccomp filter, or valgrind) refuses it.
inline std::atomic<int>& clone3_state() noexcept {
  static std::atomic<int> s{0};
  return s;
}
#  endif

/// Whether the default spawn path is our own clone3 child (cheaper than posix_spawn). The plain
/// twin is posix_spawn: taken where clone3 is missing, under the sanitizers, and when a test
/// asks for it (prefer_posix_spawn).
inline std::atomic<bool>& prefer_posix_spawn() noexcept {
  static std::atomic<bool> b{false};
  return b;
}
inline bool fast_clone_available() noexcept {
#  if defined(PROC_HAVE_CLONE3) && !defined(PROC_ASAN)
  return clone3_state().load(std::memory_order_relaxed) >= 0 && !prefer_posix_spawn().load();
#  else
  return false;
#  endif
}

/// Starts the CLONE_VM|CLONE_VFORK child; sets `pidfd` when clone3 made one.
inline pid_t clone_vfork(ChildArgs& args, int& pidfd) {
  thread_local ChildStack stack;
  char* top = stack.top();
  int e = injected_error(Sys::fork);
  pid_t pid = -1;
  pidfd = -1;
#  if defined(PROC_HAVE_CLONE3)
  if (e == 0 && clone3_state().load(std::memory_order_relaxed) >= 0) {
    Clone3Args ca{};
    ca.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    ca.pidfd = reinterpret_cast<std::uintptr_t>(&pidfd);
    ca.exit_signal = SIGCHLD;
    ca.stack = reinterpret_cast<std::uintptr_t>(top - ChildStack::size);
    ca.stack_size = ChildStack::size;
    args.handlers_cleared = true;
    long r = raw_clone3(&ca, &child_main, &args);
    if (r > 0) {
      clone3_state().store(1, std::memory_order_relaxed);
      return static_cast<pid_t>(r);
    }
    args.handlers_cleared = false;
    pidfd = -1;
    if (r == -ENOSYS || r == -EINVAL || r == -E2BIG || r == -EPERM) {
      clone3_state().store(-1, std::memory_order_relaxed);  // old kernel, seccomp, valgrind
    } else if (r != -EMFILE && r != -ENFILE) {
      e = static_cast<int>(-r);
    }  // no descriptor for the pidfd: clone() below needs none (and Process tries pidfd_open)
  }
#  endif
  if (e == 0) {
    pid = ::clone(&child_main, top, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    if (pid < 0) e = errno;
  }
  if (e) throw_errno(e, "proc: clone");
  return pid;
}
#endif

/// Starts one attempt: the child for `path` on the path `how`. Throws SpawnFailure.
inline SpawnResult spawn_at(const SpawnRequest& rq, SpawnPath how, const std::string& path,
                            char* const* argv, char* const* env_ptr, const StdioPlan& plan) {
  if (how == SpawnPath::posix_spawn) return spawn_posix_spawn(rq, path, argv, env_ptr, plan);

  PreparedIds ids = prepare_ids(rq);
  std::vector<int> keep(rq.pass_fds.begin(), rq.pass_fds.end());
  std::sort(keep.begin(), keep.end());

  // How the child reports a failure before exec: a CLONE_VM child writes {stage, errno} straight
  // into `shared` (our memory; we sleep until it has exec'd or exited); a forked one, a copy,
  // writes it to a close-on-exec pipe, which reads as EOF once it has exec'd. The pipe must not
  // sit on 0..2, where the child's dup2s would overwrite it.
  const bool shares_memory = how == SpawnPath::clone_vfork;
  ChildReport shared{0, 0};
  PipePair report;
  struct CloseReport {
    PipePair& p;
    ~CloseReport() {
      close_handle(p.read);
      close_handle(p.write);
    }
  } close_report{report};
  if (!shares_memory) {
    report = make_pipe();
    report.read = lift_above_stdio(report.read);
    report.write = lift_above_stdio(report.write);
  }
  std::vector<int> survivors = keep;
  if (!shares_memory)
    survivors.insert(std::upper_bound(survivors.begin(), survivors.end(), report.write),
                     report.write);

  ChildArgs a{};
  a.path = path.c_str();
  a.argv = argv;
  // With pre_exec and no env of our own, exec reads environ in the child after the callback.
  a.envp = (!rq.env && how == SpawnPath::fork) ? nullptr : env_ptr;
  a.src = plan.src;
  a.err_to_stdout = rq.err_to_stdout;
  a.cwd = rq.cwd ? rq.cwd->c_str() : nullptr;
  a.close_fds = rq.close_fds;
  a.keep = keep.data();
  a.nkeep = keep.size();
  a.survivors = survivors.data();
  a.nsurvivors = survivors.size();
  a.new_session = rq.start_new_session || rq.ctty.has_value();
  a.ctty = rq.ctty.value_or(-1);
  a.set_pgroup = rq.process_group.has_value();
  a.pgroup = rq.process_group.value_or(0);
  a.restore_signals = rq.restore_signals;
  a.set_umask = rq.umask.has_value();
  a.umask_value = static_cast<mode_t>(rq.umask.value_or(0));
  a.ids = (ids.set_uid || ids.set_gid || ids.set_groups) ? &ids : nullptr;
  a.pre_exec = rq.pre_exec;
  a.pdeathsig = rq.kill_on_parent_exit;
  a.parent_pid = rq.kill_on_parent_exit ? ::getpid() : 0;  // only the pdeathsig check needs it
  a.report_fd = report.write;
  a.shared = shares_memory ? &shared : nullptr;
  a.handlers_cleared = false;

  // Block every signal while the child shares (or copies) our state, so that no handler of
  // ours runs in it before child_main has reset them; the child sets its own mask last.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  a.parent_mask = &old;

  pid_t pid = -1;
  int pidfd = -1;
  int fork_error = 0;
#if defined(PROC_LINUX)
  if (how == SpawnPath::clone_vfork) {
    try {
      pid = clone_vfork(a, pidfd);
    } catch (const std::system_error& e) {
      fork_error = e.code().value();
    }
  } else
#endif
  {
    fork_error = injected_error(Sys::fork);
    if (fork_error == 0) {
      pid = ::fork();
      if (pid == 0) {
        child_main(&a);
        child_exit(127);  // not reached
      }
      if (pid < 0) fork_error = errno;
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close_handle(std::exchange(report.write, invalid_handle));

  if (fork_error)
    throw SpawnFailure{fork_error, rq.program, stage_message(ChildStage::setup, rq, path)};

  // A report means the child failed before exec: reap it, so that the failed copy is neither
  // left running nor a zombie. (Pipe: EOF means it exec'd, the write end was close-on-exec.)
  ChildReport rep{0, 0};
  if (shares_memory) {
    rep = shared;
  } else {
    std::size_t got = 0;
    while (got < sizeof rep) {
      ssize_t r = ::read(report.read, reinterpret_cast<char*>(&rep) + got, sizeof rep - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    if (got != sizeof rep) rep = {0, 0};
  }
  if (rep.stage != 0) {
    close_handle(pidfd);
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    auto stage = static_cast<ChildStage>(rep.stage);
    throw SpawnFailure{rep.error, rq.program, stage_message(stage, rq, path),
                       stage == ChildStage::exec};
  }
  return {pid, how, leads_group(rq), pidfd};
}

/// Starts the child described by `rq`. Throws SpawnFailure when the program cannot be started
/// (the errno of the failed exec/chdir), std::system_error for other failures.
inline SpawnResult spawn(const SpawnRequest& rq, SpawnPath forced = SpawnPath::posix_spawn,
                         bool force = false);

/// Handles to inherit at their values are pass_fds on POSIX.
inline SpawnResult spawn_inheriting(const SpawnRequest& rq) {
  SpawnRequest with = rq;
  with.pass_fds.insert(with.pass_fds.end(), rq.inherit.begin(), rq.inherit.end());
  with.inherit.clear();
  with.close_fds = true;
  return spawn(with);
}

inline SpawnResult spawn(const SpawnRequest& rq, SpawnPath forced, bool force) {
  if (!rq.inherit.empty()) return spawn_inheriting(rq);
#if !defined(PROC_LINUX)
  if (rq.kill_on_parent_exit)
    throw std::system_error(ENOTSUP, std::generic_category(),
                            "proc: kill_on_parent_exit is not supported on this platform");
#endif
  check_cwd(rq);
  std::string searched;
  const std::vector<Candidate> candidates = program_candidates(rq, searched);
  std::vector<char*> argv = c_array(rq.argv);
  std::vector<char*> envp;
  if (rq.env) envp = c_array(*rq.env);
  char* const* env_ptr = rq.env ? envp.data() : process_environ();

  StdioPlan plan;
  plan_stdio(rq, plan);

  SpawnPath how = force ? forced : choose_path(rq);
#if defined(PROC_TSAN)
  if (how == SpawnPath::clone_vfork) how = SpawnPath::fork;
#endif
  // Each candidate in turn: an exec error other than ENOENT/ENOTDIR is remembered (the first one
  // is reported) and the search goes on, as Python's does. Any other failure ends it at once.
  const bool direct = rq.program.find('/') != std::string::npos;
  std::optional<SpawnFailure> first;
  for (const Candidate& c : candidates) {
    if (c.error) {
      if (!first)
        first =
            SpawnFailure{c.error, rq.program, stage_message(ChildStage::exec, rq, c.path), true};
      continue;
    }
    try {
      return spawn_at(rq, how, c.path, argv.data(), env_ptr, plan);
    } catch (SpawnFailure& f) {
      if (!f.exec_stage) throw;
      if (!first && f.code != ENOENT && f.code != ENOTDIR) first = std::move(f);
      if (direct && !first) throw;  // a path given as is: its own ENOENT
    }
  }
  if (first) throw std::move(*first);
  throw SpawnFailure{
      ENOENT, rq.program,
      "proc: cannot run '" + rq.program + "': not found in PATH (searched: " + searched + ")",
      true};
}

}  // namespace proc::detail
