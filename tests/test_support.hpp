#pragma once
// Shared by the tests: the path of our child program, Catch2 v2/v3, and descriptor counting.

#if defined(PROC_CATCH3)
#  include <catch2/catch_all.hpp>
#else
#  include <catch2/catch.hpp>
#endif

#include <chrono>
#include <proc/proc.hpp>
#include <string>
#include <thread>
#include <vector>

#if defined(_WIN32)
#  include <windows.h>
// After <windows.h>, which it needs.
#  include <tlhelp32.h>
#else
#  include <dirent.h>
#  include <fcntl.h>
#  include <signal.h>
#  include <sys/types.h>
#  include <sys/wait.h>
#  include <unistd.h>
#endif

namespace test {

/// The child program built with the tests.
inline const std::string child = PROC_TEST_CHILD;

/// {child, args...}
inline std::vector<std::string> cmd(std::initializer_list<std::string> args) {
  std::vector<std::string> v{child};
  v.insert(v.end(), args);
  return v;
}

/// Whether `done()` comes true within `limit` (asked every 5 ms, and once more at the end).
template <class F>
bool within(std::chrono::milliseconds limit, F done) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return done();
}

/// Whether this is a Windows build running under Wine (where some figures and calls differ:
/// docs/windows.md).
inline bool under_wine() {
#if defined(_WIN32)
  HMODULE ntdll = ::GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr && ::GetProcAddress(ntdll, "wine_get_version") != nullptr;
#else
  return false;
#endif
}

#if defined(_WIN32)
/// The values of this process's open handles, tried one by one (multiples of 4, given out
/// lowest first).
inline std::vector<std::uintptr_t> handle_values() {
  std::vector<std::uintptr_t> out;
  for (std::uintptr_t v = 4; v < (std::uintptr_t{1} << 16); v += 4) {
    DWORD flags = 0;
    if (::GetHandleInformation(reinterpret_cast<HANDLE>(v), &flags)) out.push_back(v);
  }
  return out;
}

/// How many handles this process has open (Windows' count of descriptors). Wine's
/// GetProcessHandleCount reports 0, so there they are counted by handle_values().
inline int open_fd_count() {
  DWORD n = 0;
  if (::GetProcessHandleCount(::GetCurrentProcess(), &n) && n > 0) return static_cast<int>(n);
  return static_cast<int>(handle_values().size());
}

/// How many threads this process has.
inline int threads_now() {
  HANDLE snap = ::CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  if (snap == INVALID_HANDLE_VALUE) return -1;
  const DWORD self = ::GetCurrentProcessId();
  THREADENTRY32 e{};
  e.dwSize = sizeof e;
  int n = 0;
  for (BOOL ok = ::Thread32First(snap, &e); ok; ok = ::Thread32Next(snap, &e))
    if (e.th32OwnerProcessID == self) ++n;
  ::CloseHandle(snap);
  return n;
}

#endif

#if !defined(_WIN32)
/// How many descriptors this process has open.
inline int open_fd_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
    return n - 3;  // ".", ".." and the DIR's own descriptor
  }
  for (int fd = 0; fd < 4096; ++fd)
    if (fcntl(fd, F_GETFD) != -1) ++n;
  return n;
}

/// Whether this process has any unreaped child (a zombie or a running one).
inline bool has_children() {
  siginfo_t si{};
  return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/// While alive, default spawns take posix_spawn (the plain twin of the clone3 fast path).
struct PreferPosixSpawn {
  PreferPosixSpawn() { proc::detail::prefer_posix_spawn() = true; }
  PreferPosixSpawn(const PreferPosixSpawn&) = delete;
  PreferPosixSpawn& operator=(const PreferPosixSpawn&) = delete;
  ~PreferPosixSpawn() { proc::detail::prefer_posix_spawn() = false; }
};

/// Waits up to `limit` for this process to have no children left.
inline bool no_children_within(std::chrono::milliseconds limit) {
  return within(limit, [] { return !has_children(); });
}

/// Runs `body` in a fork() of this process and returns its exit status (its return value):
/// -1 when it did not finish within `limit` (it is killed then), -1000 - N when signal N killed
/// it. The child
/// leaves with _exit: no destructor or atexit handler of the test process runs twice.
template <class F>
int run_in_fork(F&& body, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = body();
    } catch (...) {
      rc = 2;
    }
    ::_exit(rc);
  }
  if (pid < 0) return -1;
  auto end = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (std::chrono::steady_clock::now() >= end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1000 - WTERMSIG(status);
}
#endif

}  // namespace test
