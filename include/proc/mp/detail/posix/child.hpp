#pragma once
// Starting and being a proc::mp child on POSIX.
//
// Calls: getenv/unsetenv (the marker), getppid, fcntl, poll (POLLRDHUP on Linux) and kill for
// the daemon watchdog, sigaction (SIGINT for pool workers); abi::__cxa_demangle for exception
// type names.
//
// Invariants:
// - The child is a fresh exec of this program's own file (/proc/self/exe on Linux, so a binary
//   replaced on disk since does not matter), started through proc::Popen: its cost does not
//   grow with the parent's memory, and only the descriptors listed in pass_fds reach it (their
//   numbers are kept, so a handle's value is the same on both sides).
// - The marker that makes a process a child lives in one environment variable, which init()
//   removes at once: programs the child runs in turn are ordinary processes.
// - A daemon child watches its control channel from a thread of its own: when the parent's
//   end closes (the parent exited, however it exited) it kills itself at once, whatever its
//   main thread is doing. No PR_SET_PDEATHSIG: that follows the parent *thread* that spawned.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__GNUG__)
#  include <cxxabi.h>
#endif

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/options.hpp"

#if defined(PROC_APPLE)
#  include <mach-o/dyld.h>
#endif

extern "C" {
#if defined(__GLIBC__)
extern char* program_invocation_name;
#endif
}

namespace proc::mp::detail {

inline int current_pid() noexcept { return static_cast<int>(::getpid()); }
inline int parent_pid() noexcept { return static_cast<int>(::getppid()); }

/// A handle's value as it travels in a task frame, and back.
inline std::uint64_t handle_to_u64(native_handle h) noexcept {
  return static_cast<std::uint64_t>(h);
}
inline native_handle handle_from_u64(std::uint64_t v) noexcept {
  return static_cast<native_handle>(v);
}

/// The environment variable that tells a process it was started as a proc::mp child:
/// "<control descriptor>:<parent pid>".
inline constexpr const char* marker_variable = "PROC_MP_CHILD";

/// The program file a child runs: this program's own.
inline std::filesystem::path self_executable() {
#if defined(PROC_LINUX)
  return "/proc/self/exe";
#elif defined(PROC_APPLE)
  std::uint32_t size = 0;
  ::_NSGetExecutablePath(nullptr, &size);
  std::string buf(size, '\0');
  if (::_NSGetExecutablePath(buf.data(), &size) != 0) throw std::runtime_error("proc::mp: no path");
  buf.resize(std::strlen(buf.c_str()));
  return buf;
#else
  return "/proc/curproc/file";
#endif
}

/// What the child's argv[0] says (ps shows it): this program's own argv[0] where known.
inline std::string self_argv0() {
#if defined(__GLIBC__)
  if (program_invocation_name && *program_invocation_name) return program_invocation_name;
#endif
  return "proc-mp-child";
}

/// The marker's value for a child that finds its control channel at `child_handle`.
inline std::string marker_value(native_handle child_handle) {
  return std::to_string(child_handle) + ":" + std::to_string(::getpid());
}

/// This process's marker, read and removed from the environment: the control channel, or
/// nullopt in a process that was not started as a child (or whose marker names another parent).
inline std::optional<native_handle> take_marker() {
  const char* v = ::getenv(marker_variable);
  if (!v) return std::nullopt;
  std::string value = v;
  ::unsetenv(marker_variable);
  auto colon = value.find(':');
  if (colon == std::string::npos) return std::nullopt;
  char* end = nullptr;
  long fd = std::strtol(value.c_str(), &end, 10);
  long parent = std::strtol(value.c_str() + colon + 1, nullptr, 10);
  if (end != value.c_str() + colon || fd < 0 || parent != static_cast<long>(::getppid()))
    return std::nullopt;  // not meant for us (copied through another program)
  if (::fcntl(static_cast<int>(fd), F_GETFD) < 0) return std::nullopt;
  return static_cast<native_handle>(fd);
}

/// What a daemon child needs from Popen (POSIX: nothing; its watchdog does the work).
inline void daemon_options(Options&, bool) {}

/// Daemon children: a thread that ends this process as soon as the parent's end of `control`
/// closes.
inline void watch_parent(native_handle control) {
  std::thread([control] {
#if defined(PROC_LINUX)
    pollfd p{control, POLLRDHUP, 0};
    for (;;) {
      int r = ::poll(&p, 1, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r != 0) break;  // POLLRDHUP / POLLHUP / POLLERR: the parent is gone
    }
#else
    const pid_t parent = ::getppid();
    while (::getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (void)control;
#endif
    ::kill(::getpid(), SIGKILL);
  }).detach();
}

/// Pool workers leave Ctrl+C to the parent, which decides what it means.
inline void ignore_interrupts() { ::signal(SIGINT, SIG_IGN); }

/// A readable name for a type from typeid(...).name().
inline std::string demangle(const char* name) {
#if defined(__GNUG__)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                           std::free);
  if (status == 0 && d) return d.get();
#endif
  return name;
}

}  // namespace proc::mp::detail
