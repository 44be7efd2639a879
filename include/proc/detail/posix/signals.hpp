#pragma once
// Signal names for messages ("SIGKILL"), and the signal numbers terminate()/kill() send.

#include <signal.h>

#include <string>

namespace proc::detail {

inline constexpr int sig_term = SIGTERM;
inline constexpr int sig_kill = SIGKILL;

/// Whether a returncode means a signal ended the child (−N). Windows has its own rule.
inline constexpr bool returncode_is_signal(int returncode) noexcept { return returncode < 0; }

/// "SIGKILL" for 9; "unknown signal 77" for a number without a usual name (as Python says).
inline std::string signal_name(int sig) {
  switch (sig) {
#define PROC_SIGNAL_CASE(s) \
  case s:                   \
    return #s;
    PROC_SIGNAL_CASE(SIGHUP)
    PROC_SIGNAL_CASE(SIGINT)
    PROC_SIGNAL_CASE(SIGQUIT)
    PROC_SIGNAL_CASE(SIGILL)
    PROC_SIGNAL_CASE(SIGTRAP)
    PROC_SIGNAL_CASE(SIGABRT)
    PROC_SIGNAL_CASE(SIGBUS)
    PROC_SIGNAL_CASE(SIGFPE)
    PROC_SIGNAL_CASE(SIGKILL)
    PROC_SIGNAL_CASE(SIGUSR1)
    PROC_SIGNAL_CASE(SIGSEGV)
    PROC_SIGNAL_CASE(SIGUSR2)
    PROC_SIGNAL_CASE(SIGPIPE)
    PROC_SIGNAL_CASE(SIGALRM)
    PROC_SIGNAL_CASE(SIGTERM)
    PROC_SIGNAL_CASE(SIGCHLD)
    PROC_SIGNAL_CASE(SIGCONT)
    PROC_SIGNAL_CASE(SIGSTOP)
    PROC_SIGNAL_CASE(SIGTSTP)
    PROC_SIGNAL_CASE(SIGTTIN)
    PROC_SIGNAL_CASE(SIGTTOU)
    PROC_SIGNAL_CASE(SIGURG)
    PROC_SIGNAL_CASE(SIGXCPU)
    PROC_SIGNAL_CASE(SIGXFSZ)
    PROC_SIGNAL_CASE(SIGVTALRM)
    PROC_SIGNAL_CASE(SIGPROF)
    PROC_SIGNAL_CASE(SIGWINCH)
    PROC_SIGNAL_CASE(SIGSYS)
#undef PROC_SIGNAL_CASE
    default:
      return "unknown signal " + std::to_string(sig);
  }
}

}  // namespace proc::detail
