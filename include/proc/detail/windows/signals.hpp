#pragma once
// What terminate()/kill() send, and how a returncode that is not a plain exit status is named.
//
// Calls: none.
//
// Invariants:
// - Windows has no signals. terminate() and kill() both end the child with TerminateProcess
//   (exit code 1, as Python's subprocess); these two numbers only select that action, and the
//   ones send_signal() accepts are exactly them (and 0, a no-op).
// - A returncode is the child's 32-bit exit code read as a signed int, so a process that died
//   of an exception (an NTSTATUS such as 0xC0000005) has a negative returncode, as a process
//   killed by a signal has on POSIX; signal_name() gets the negated returncode and names the
//   exception.

#include <cstdio>
#include <string>

namespace proc::detail {

inline constexpr int sig_term = 15;  // SIGTERM's usual number; TerminateProcess on Windows
inline constexpr int sig_kill = 9;   // SIGKILL's usual number; TerminateProcess on Windows

/// The exit code of a terminated child (terminate(), kill(), timeouts), as in Python.
inline constexpr unsigned terminated_exit_code = 1;

/// Whether a negative returncode means the child was ended by an exception — an NTSTATUS of
/// error or warning severity, 0xCnnnnnnn or 0x8nnnnnnn (0xC0000005, 0x80000003) — rather than
/// that it chose a negative exit code (`exit(-1)` gives 0xFFFFFFFF). For messages: "died with
/// STATUS_..." or "returned non-zero exit status -1".
inline constexpr bool returncode_is_signal(int returncode) noexcept {
  const auto top = static_cast<unsigned>(returncode) & 0xF0000000u;
  return top == 0xC0000000u || top == 0x80000000u;
}

/// A name for the negated returncode `sig` of a child: "STATUS_ACCESS_VIOLATION (0xC0000005)"
/// for a known exception, else "exit code 0xC0000135"-style hex of the 32-bit exit code.
inline std::string signal_name(int sig) {
  const auto code = static_cast<unsigned>(-static_cast<long long>(sig));
  const char* name = nullptr;
  switch (code) {
    case 0x80000003u:
      name = "STATUS_BREAKPOINT";
      break;
    case 0xC0000005u:
      name = "STATUS_ACCESS_VIOLATION";
      break;
    case 0xC000001Du:
      name = "STATUS_ILLEGAL_INSTRUCTION";
      break;
    case 0xC0000026u:
      name = "STATUS_INVALID_DISPOSITION";
      break;
    case 0xC000008Cu:
      name = "STATUS_ARRAY_BOUNDS_EXCEEDED";
      break;
    case 0xC000008Eu:
      name = "STATUS_FLOAT_DIVIDE_BY_ZERO";
      break;
    case 0xC0000094u:
      name = "STATUS_INTEGER_DIVIDE_BY_ZERO";
      break;
    case 0xC0000095u:
      name = "STATUS_INTEGER_OVERFLOW";
      break;
    case 0xC0000096u:
      name = "STATUS_PRIVILEGED_INSTRUCTION";
      break;
    case 0xC00000FDu:
      name = "STATUS_STACK_OVERFLOW";
      break;
    case 0xC0000135u:
      name = "STATUS_DLL_NOT_FOUND";
      break;
    case 0xC0000138u:
      name = "STATUS_ORDINAL_NOT_FOUND";
      break;
    case 0xC0000139u:
      name = "STATUS_ENTRYPOINT_NOT_FOUND";
      break;
    case 0xC000013Au:
      name = "STATUS_CONTROL_C_EXIT";
      break;
    case 0xC0000142u:
      name = "STATUS_DLL_INIT_FAILED";
      break;
    case 0xC0000374u:
      name = "STATUS_HEAP_CORRUPTION";
      break;
    case 0xC0000409u:
      name = "STATUS_STACK_BUFFER_OVERRUN";
      break;
    case 0xC0000417u:
      name = "STATUS_INVALID_CRUNTIME_PARAMETER";
      break;
    default:
      break;
  }
  char buf[96];
  if (name)
    std::snprintf(buf, sizeof buf, "%s (0x%08X)", name, code);
  else
    std::snprintf(buf, sizeof buf, "exit code 0x%08X", code);
  return buf;
}

}  // namespace proc::detail
