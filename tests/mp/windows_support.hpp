#pragma once
// Windows versions of the POSIX helpers of ../test_support.hpp that the proc::mp tests use, under
// the same names (handles stand in for descriptors, Toolhelp32 snapshots for /proc and waitid),
// a few calls on processes known by pid, and handles_now() for both platforms.

#if defined(_WIN32)

#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  ifndef NOMINMAX
#    define NOMINMAX
#  endif
#  include <windows.h>
// After <windows.h>, which it needs.
#  include <tlhelp32.h>

#  include <algorithm>
#  include <chrono>
#  include <cstdint>
#  include <proc/mp.hpp>
#  include <string>
#  include <thread>
#  include <vector>

#  include "../test_support.hpp"

namespace test {

/// How many handles this process has open for its own use: those the proc::mp back end keeps
/// for later operations (a free list of events) do not count.
inline int mp_handle_count() {
  return open_fd_count() - static_cast<int>(proc::mp::detail::EventPool::idle());
}

/// When a process was created (FILETIME units), 0 when unknown.
inline std::uint64_t created_at(HANDLE process) {
  FILETIME c{}, x{}, k{}, u{};
  if (!::GetProcessTimes(process, &c, &x, &k, &u)) return 0;
  return (static_cast<std::uint64_t>(c.dwHighDateTime) << 32) | c.dwLowDateTime;
}

/// Whether a running process names this one as its creator. Windows does not re-parent, and
/// a pid may be reused: a process counts only when it was created after this one.
inline bool has_children() {
  HANDLE snap = ::CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) return false;
  const DWORD self = ::GetCurrentProcessId();
  const std::uint64_t born = created_at(::GetCurrentProcess());
  PROCESSENTRY32W e{};
  e.dwSize = sizeof e;
  bool found = false;
  for (BOOL ok = ::Process32FirstW(snap, &e); ok && !found; ok = ::Process32NextW(snap, &e)) {
    if (e.th32ParentProcessID != self || e.th32ProcessID == self) continue;
    HANDLE p =
        ::OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, e.th32ProcessID);
    if (!p) continue;  // gone since the snapshot
    found = ::WaitForSingleObject(p, 0) == WAIT_TIMEOUT && created_at(p) >= born;
    ::CloseHandle(p);
  }
  ::CloseHandle(snap);
  return found;
}

/// Waits up to `limit` for this process to have no running children left.
inline bool no_children_within(std::chrono::milliseconds limit) {
  return within(limit, [] { return !has_children(); });
}

/// A handle to process `pid` to wait on (null when there is no such process).
inline HANDLE open_process(int pid) {
  return ::OpenProcess(SYNCHRONIZE | PROCESS_TERMINATE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE,
                       static_cast<DWORD>(pid));
}

/// Whether process `p` ends within `limit`.
inline bool exits_within(HANDLE p, std::chrono::milliseconds limit) {
  return ::WaitForSingleObject(p, static_cast<DWORD>(limit.count())) == WAIT_OBJECT_0;
}

/// The kind of object handle `v` refers to ("Event", "File", "Thread", ...), for reports.
inline std::string handle_type(std::uintptr_t v) {
  using Query = LONG(NTAPI*)(HANDLE, int, void*, ULONG, ULONG*);
  static const auto query = reinterpret_cast<Query>(
      reinterpret_cast<void*>(::GetProcAddress(::GetModuleHandleW(L"ntdll.dll"), "NtQueryObject")));
  if (!query) return "?";
  alignas(8) unsigned char buf[1024] = {};
  ULONG got = 0;
  // ObjectTypeInformation (2): a UNICODE_STRING with the type's name comes first.
  if (query(reinterpret_cast<HANDLE>(v), 2, buf, sizeof buf, &got) < 0) return "?";
  struct Name {
    USHORT length, max;
    wchar_t* text;
  };
  const auto* n = reinterpret_cast<const Name*>(buf);
  std::string s;
  for (USHORT i = 0; n->text && i < n->length / 2; ++i) s += static_cast<char>(n->text[i]);
  return s;
}

/// "value:type" of each handle open now that is not in `before`.
inline std::string handles_since(const std::vector<std::uintptr_t>& before) {
  std::string s;
  for (std::uintptr_t v : handle_values())
    if (std::find(before.begin(), before.end(), v) == before.end())
      s += std::to_string(v) + ":" + handle_type(v) + " ";
  return s;
}

/// Kills process `pid` from outside, as SIGKILL would.
inline bool kill_pid(int pid) {
  HANDLE p = open_process(pid);
  if (!p) return false;
  bool ok = ::TerminateProcess(p, 1) != 0;
  ::CloseHandle(p);
  return ok;
}

}  // namespace test

#endif  // _WIN32

namespace test {

/// Descriptors (handles on Windows) this process holds for its own use.
inline int handles_now() {
#if defined(_WIN32)
  return mp_handle_count();
#else
  return open_fd_count();
#endif
}

}  // namespace test
