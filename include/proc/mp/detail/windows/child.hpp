#pragma once
// Starting and being a proc::mp child on Windows.
//
// Calls: GetModuleFileNameW, GetCommandLineW, GetEnvironmentVariableW, SetEnvironmentVariableW
// and the C runtime's _putenv (the marker), GetFileType, GetNamedPipeServerProcessId,
// CreateToolhelp32Snapshot / Process32FirstW / Process32NextW (the parent's id), OpenProcess
// (SYNCHRONIZE), GetProcessTimes, WaitForSingleObject and TerminateProcess for the daemon
// watchdog, SetConsoleCtrlHandler (Ctrl+C for pool workers); abi::__cxa_demangle for exception
// type names.
//
// Invariants:
// - The child is a fresh run of this program's own file (GetModuleFileNameW), started through
//   proc::Popen with CreateProcessW: its cost does not grow with the parent's memory, and only
//   the handles passed on purpose reach it (spawn.hpp's handle list, where each keeps its
//   value, so a handle's value is the same on both sides).
// - The marker that makes a process a child lives in one environment variable,
//   "<control handle>:<parent pid>", which init() removes at once from both the process
//   environment and the C runtime's copy (getenv): programs the child runs in turn are ordinary
//   processes. The marker is believed only when its handle is a named pipe in this process and
//   the marker's pid is the process that made that pipe (GetNamedPipeServerProcessId; where the
//   system does not say, as under Wine, the pid of the process that created this one, from a
//   Toolhelp32 snapshot).
// - parent_pid() is the marker's pid in a child, and the creating process's id (Toolhelp32) in
//   a first process; Windows does not re-parent, so that process may have exited.
// - A daemon child dies with its parent twice over: Popen puts it in a kill-on-close job
//   (kill_on_parent_exit), which Windows closes, killing it, when the parent exits however it
//   exits; and a watchdog thread of its own waits on the parent's process handle and ends this
//   process the moment it is signalled. The handle is checked to be the parent's, not a later
//   process that got its pid: a parent must have been created before its child.

#include <tlhelp32.h>

#if defined(__GNUG__)
#  include <cxxabi.h>
#endif

#include <cstdint>
#include <cstdlib>
#include <cwchar>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "proc/detail/platform.hpp"
#include "proc/options.hpp"

namespace proc::mp::detail {

inline int current_pid() noexcept { return static_cast<int>(::GetCurrentProcessId()); }

/// The id of the process that created this one, from a Toolhelp32 snapshot; 0 when unknown.
inline int creator_pid() noexcept {
  HANDLE snap = ::CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) return 0;
  const DWORD self = ::GetCurrentProcessId();
  PROCESSENTRY32W e{};
  e.dwSize = sizeof e;
  int found = 0;
  for (BOOL ok = ::Process32FirstW(snap, &e); ok; ok = ::Process32NextW(snap, &e))
    if (e.th32ProcessID == self) {
      found = static_cast<int>(e.th32ParentProcessID);
      break;
    }
  ::CloseHandle(snap);
  return found;
}

/// The parent's pid as the marker gave it (0 in a process that was not started as a child).
inline int& marker_parent() noexcept {
  static int pid = 0;  // written once, by init(), before any other thread of ours exists
  return pid;
}

inline int parent_pid() noexcept {
  if (int p = marker_parent()) return p;
  static const int creator = creator_pid();
  return creator;
}

/// A handle's value as it travels in a task frame, and back.
inline std::uint64_t handle_to_u64(native_handle h) noexcept {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(h));
}
inline native_handle handle_from_u64(std::uint64_t v) noexcept {
  return reinterpret_cast<native_handle>(static_cast<std::uintptr_t>(v));
}

/// The environment variable that tells a process it was started as a proc::mp child:
/// "<control handle>:<parent pid>".
inline constexpr const char* marker_variable = "PROC_MP_CHILD";

/// The program file a child runs: this program's own.
inline std::filesystem::path self_executable() {
  std::wstring buf(MAX_PATH, L'\0');
  for (;;) {
    DWORD n = ::GetModuleFileNameW(nullptr, buf.data(), static_cast<DWORD>(buf.size()));
    if (n == 0) proc::detail::throw_last_error("proc::mp: GetModuleFileNameW");
    if (n < buf.size()) {
      buf.resize(n);
      return std::filesystem::path(buf);
    }
    buf.resize(buf.size() * 2);  // cut short: ERROR_INSUFFICIENT_BUFFER
  }
}

/// What the child's argv[0] says: this program's own argv[0] (the program name at the start of
/// its command line, read with the rule CommandLineToArgvW and the C runtime use for it), else
/// its file.
inline std::string self_argv0() {
  std::wstring first;
  if (const wchar_t* line = ::GetCommandLineW()) {
    if (*line == L'"') {
      const wchar_t* end = std::wcschr(line + 1, L'"');
      first.assign(line + 1, end ? end : line + 1 + std::wcslen(line + 1));
    } else {
      const wchar_t* end = line;
      while (*end && *end != L' ' && *end != L'\t') ++end;
      first.assign(line, end);
    }
  }
  if (first.empty()) first = self_executable().wstring();
  return proc::detail::to_utf8(first);
}

/// The marker's value for a child that finds its control channel at `child_handle`.
inline std::string marker_value(native_handle child_handle) {
  return std::to_string(handle_to_u64(child_handle)) + ":" +
         std::to_string(::GetCurrentProcessId());
}

/// This process's marker, read and removed from the environment: the control channel, or
/// nullopt in a process that was not started as a child (or whose marker names another parent).
inline std::optional<native_handle> take_marker() {
  const std::wstring name = proc::detail::to_wide(marker_variable);
  std::optional<std::wstring> found = proc::detail::own_environment_variable(name.c_str());
  if (!found) return std::nullopt;
  ::SetEnvironmentVariableW(name.c_str(), nullptr);
  std::string unset = std::string(marker_variable) + "=";
  ::_putenv(unset.c_str());  // the C runtime's copy, which getenv reads
  const std::string value = proc::detail::to_utf8(*found);
  auto colon = value.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == value.size()) return std::nullopt;
  char* end = nullptr;
  unsigned long long h = std::strtoull(value.c_str(), &end, 10);
  if (end != value.c_str() + colon) return std::nullopt;
  unsigned long parent = std::strtoul(value.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || parent == 0) return std::nullopt;
  native_handle control = handle_from_u64(h);
  if (control == invalid_handle || control == INVALID_HANDLE_VALUE ||
      ::GetFileType(control) != FILE_TYPE_PIPE)
    return std::nullopt;  // not meant for us (copied through another program)
  ULONG server = 0;
  if (!::GetNamedPipeServerProcessId(control, &server) || server == 0)
    server = static_cast<ULONG>(creator_pid());  // not reported (Wine): who created us
  if (server != parent) return std::nullopt;
  marker_parent() = static_cast<int>(parent);
  return control;
}

/// What a daemon child needs from Popen: a kill-on-close job, which ends it when this process
/// exits, however it exits.
inline void daemon_options(Options& o, bool daemon) { o.kill_on_parent_exit = daemon; }

/// When `process` was created, in FILETIME units (0 when it cannot be read).
inline std::uint64_t creation_time(HANDLE process) noexcept {
  FILETIME created{}, exited{}, kernel{}, user{};
  if (!::GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
  return (static_cast<std::uint64_t>(created.dwHighDateTime) << 32) | created.dwLowDateTime;
}

/// Daemon children: a thread that ends this process as soon as the parent has exited (its
/// process handle is signalled). The job made by daemon_options does the same from outside.
inline void watch_parent(native_handle /*control*/) {
  const DWORD parent = static_cast<DWORD>(parent_pid());
  auto die = [] { ::TerminateProcess(::GetCurrentProcess(), proc::detail::terminated_exit_code); };
  HANDLE p = ::OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, parent);
  if (!p) {
    // ERROR_INVALID_PARAMETER: no such process, the parent is gone. Any other refusal (access
    // denied) leaves the job to do the work.
    if (::GetLastError() == ERROR_INVALID_PARAMETER) die();
    return;
  }
  const std::uint64_t theirs = creation_time(p), ours = creation_time(::GetCurrentProcess());
  if (theirs != 0 && ours != 0 && theirs > ours) die();  // the pid belongs to a later process
  std::thread([p, die] {
    ::WaitForSingleObject(p, INFINITE);
    die();
  }).detach();
}

/// Pool workers leave Ctrl+C to the parent, which decides what it means.
inline void ignore_interrupts() { ::SetConsoleCtrlHandler(nullptr, TRUE); }

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
