#pragma once
/// \file
/// `proc::Options`: everything about how a child is started, as designated initializers.

#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "proc/duration.hpp"
#include "proc/environment.hpp"
#include "proc/redirect.hpp"

namespace proc {

namespace detail {
/// What the one-string overloads accept: a `std::string` or anything that converts to one
/// implicitly (a string literal, a `const char*`). They are templates so that a braced list can
/// never reach them: `run({"sleep", 1})` would otherwise build `std::string("sleep", 1)` and run
/// the program `s`. A braced list goes to the `std::initializer_list<std::string>` overload, or
/// does not compile.
template <class S>
concept CommandString = std::convertible_to<const S&, std::string>;
}  // namespace detail

/// A user or group: a name (`"nobody"`) or a numeric id (`65534`). Names are resolved in the
/// parent before spawning.
class Identity {
 public:
  Identity(const char* name) : v_(std::string(name)) {}  // NOLINT
  Identity(std::string name) : v_(std::move(name)) {}    // NOLINT
  template <std::integral T>
  Identity(T id) : v_(check_id(id)) {}  // NOLINT

  [[nodiscard]] bool is_name() const noexcept { return v_.index() == 0; }
  [[nodiscard]] const std::string& name() const { return std::get<0>(v_); }
  [[nodiscard]] std::uint32_t id() const { return std::get<1>(v_); }

 private:
  // uid_t and gid_t are 32-bit unsigned on the systems proc supports, and (uid_t)-1 means "no
  // change" to setresuid, so it is not an id: anything that does not fit is refused rather than
  // cut to its low bits (1 << 32 would otherwise become root).
  template <class T>
  static std::uint32_t check_id(T id) {
    if constexpr (std::is_same_v<T, bool>) {
      throw std::invalid_argument("proc::Identity: a bool is not a user or group id");
    } else {
      if constexpr (std::is_signed_v<T>) {
        if (id < 0)
          throw std::invalid_argument("proc::Identity: negative id " + std::to_string(id));
      }
      if (static_cast<std::uintmax_t>(id) >= 0xFFFFFFFFu)
        throw std::invalid_argument("proc::Identity: id " + std::to_string(id) +
                                    " does not fit uid_t/gid_t (at most 4294967294)");
      return static_cast<std::uint32_t>(id);
    }
  }
  std::variant<std::string, std::uint32_t> v_;
};

/// The size of a pseudo-terminal (`Options::terminal_size`, `Popen::resize_terminal`).
struct TerminalSize {
  unsigned short rows = 24;
  unsigned short cols = 80;
};

/// What `~Popen` does to a child that is still running (after closing the parent's pipe ends).
enum class OnDestroy {
  wait,       ///< wait for it to exit (Python's `with` block)
  terminate,  ///< SIGTERM (TerminateProcess on Windows), then SIGKILL after a 2 s grace
  kill,       ///< SIGKILL at once, then reap
  detach,     ///< leave it running; a background reaper collects it later (never a zombie)
};

/// How a child is started. Every member has a default, so designated initializers work:
/// `proc::run({"ls"}, {.out = proc::pipe, .check = true})`.
struct Options {
  /// stdin; default `proc::inherit`.
  Redirect in{};
  /// stdout; default `proc::inherit`.
  Redirect out{};
  /// stderr; default `proc::inherit`; `proc::to_stdout` merges it into stdout.
  Redirect err{};
  /// Bytes written to stdin, which is then closed (run-style helpers). Needs `in` left alone.
  std::optional<std::string> input{};
  /// `out` and `err` both `proc::pipe` (needs both left alone).
  bool capture_output = false;
  /// Throw `CalledProcessError` on a non-zero status (run-style helpers).
  bool check = false;
  /// Run-style helpers: kill the child (its group when it leads one), reap it and throw
  /// `TimeoutExpired` with the output read so far.
  std::optional<Duration> timeout{};
  /// Run the one command string through `/bin/sh -c` (POSIX) or `cmd.exe /c` (Windows).
  bool shell = false;
  /// The child's working directory.
  std::optional<std::filesystem::path> cwd{};
  /// The child's whole environment (default: this process's).
  std::optional<Environment> env{};
  /// Changes on top of `env` (or this process's environment): a value sets, `nullopt` removes.
  std::vector<std::pair<std::string, std::optional<std::string>>> env_update{};
  /// The program to run instead of `args[0]` (which stays the child's `argv[0]`).
  std::optional<std::filesystem::path> executable{};
  /// Close every descriptor but 0, 1, 2 and `pass_fds` in the child (default on).
  bool close_fds = true;
  /// POSIX: descriptors the child keeps, at the same numbers.
  std::vector<int> pass_fds{};
  /// POSIX: `setsid()` in the child (a new session and process group).
  bool start_new_session = false;
  /// POSIX: `setpgid(0, n)` in the child (0: a new group led by the child).
  std::optional<int> process_group{};
  /// POSIX: SIGPIPE and SIGXFSZ back to default and an empty signal mask in the child.
  bool restore_signals = true;
  /// POSIX: the child's umask.
  std::optional<unsigned> umask{};
  /// POSIX: run as this user (`setuid`).
  std::optional<Identity> user{};
  /// POSIX: run as this group (`setgid`).
  std::optional<Identity> group{};
  /// POSIX: supplementary groups (`setgroups`).
  std::optional<std::vector<Identity>> extra_groups{};
  /// POSIX: called in the child just before exec. It runs in a forked copy of this process, so
  /// it must be async-signal-safe (no allocation, no locks); it forces the slower `fork` path.
  std::function<void()> pre_exec{};
  /// The child is killed when this process exits (Linux: when the spawning *thread* exits —
  /// `PR_SET_PDEATHSIG`; Windows: a kill-on-close job object). `std::system_error` where the
  /// platform cannot do it.
  bool kill_on_parent_exit = false;
  /// What `~Popen` does to a child still running; default `OnDestroy::wait`.
  OnDestroy on_destroy = OnDestroy::wait;
  /// The size of the pseudo-terminal of `proc::pty` streams; default 24 rows × 80 columns.
  std::optional<TerminalSize> terminal_size{};
  /// A graceful stop: when a run-style timeout, a `run_all` stop or `OnDestroy::terminate` ends
  /// the child, SIGTERM goes first (to its group when it leads one) and SIGKILL only after this
  /// grace. Default: none, SIGKILL at once (`OnDestroy::terminate` waits 2 s). Windows:
  /// CTRL_BREAK_EVENT to a child in its own console process group, else TerminateProcess at once.
  std::optional<Duration> kill_grace{};
  /// A cap on each captured stream, in bytes: a capture that would grow past it stops the child
  /// as a timeout does and throws `OutputLimitExceeded` with the output kept up to the cap.
  /// Default: no cap.
  std::optional<std::size_t> max_output{};
  /// Windows: `CreateProcessW` creation flags (`CREATE_NO_WINDOW`, `CREATE_NEW_CONSOLE`,
  /// `DETACHED_PROCESS`, ...), OR-ed with proc's own. POSIX: must be 0 (`std::invalid_argument`).
  std::uint32_t creation_flags = 0;
  /// Windows: start the child's window hidden (`SW_HIDE`, Python's `STARTUPINFO` with
  /// `wShowWindow`, Node's `windowsHide`). POSIX: must be false (`std::invalid_argument`).
  bool hide_window = false;
};

}  // namespace proc
