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

/// A span of time; converts implicitly from any `std::chrono::duration` (`200ms`, `1.5s`),
/// rounding up to whole nanoseconds. A span too long for that (over ~292 years, e.g.
/// `std::chrono::hours::max()`) becomes `std::chrono::nanoseconds::max()`: no limit in effect.
struct Duration {
  std::chrono::nanoseconds value{};

  constexpr Duration() = default;
  template <class Rep, class Period>
  constexpr Duration(std::chrono::duration<Rep, Period> d)  // NOLINT: implicit by design
      : value(saturated(d)) {}

  constexpr operator std::chrono::nanoseconds() const { return value; }  // NOLINT

 private:
  template <class Rep, class Period>
  static constexpr std::chrono::nanoseconds saturated(std::chrono::duration<Rep, Period> d) {
    using std::chrono::nanoseconds;
    // Compared in floating point: converting first would overflow (undefined behaviour).
    constexpr std::chrono::duration<double> top = nanoseconds::max();
    if (std::chrono::duration<double>(d) >= top) return nanoseconds::max();
    if (std::chrono::duration<double>(d) <= -top) return nanoseconds::min();
    return std::chrono::ceil<nanoseconds>(d);
  }
};

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
};

}  // namespace proc
