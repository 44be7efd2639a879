#pragma once
/// \file
/// Exit statuses as values, and {fmt} formatters for proc's results.
///
/// ```cpp
/// auto r = proc::run({"ls", "-l"}, {.capture_output = true});
/// fmt::print("{}\n", r);
/// // CompletedProcess(args='ls -l', returncode=0, out=1234 bytes, err=0 bytes)
/// fmt::print("{}\n", proc::ExitStatus(r.returncode));  // exited with 0
/// fmt::print("$ {}\n", proc::quoted(r.args));          // $ ls -l
/// ```
///
/// The formatters take no format specification (`{}` only): to pad or align, format to a
/// string first (`fmt::format("{}", r)`). They work with {fmt} 9, 10 and 11.

#include <fmt/core.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/pipeline.hpp"
#include "proc/run.hpp"
#include "proc/shlex.hpp"

namespace proc {

/// How a child ended, as a value: a thin wrapper around a returncode (Rust's `ExitStatus`).
///
/// A returncode N ≥ 0 is an exit with status N; −N means signal N ended the child (as in
/// Python).
///
/// Windows has no signals: `terminate()` and `kill()` give exit status 1. A negative returncode
/// there is the exit code of a crashed process (an NTSTATUS such as `0xC0000005` read as a
/// signed int); `signaled()` is true for it and the text names the exception, e.g. "killed by
/// STATUS_ACCESS_VIOLATION (0xC0000005)".
///
/// Core dumps: a returncode does not record whether the child dumped core (the flag of the
/// raw wait status is gone by then), so the text never says "(core dumped)".
class ExitStatus {
 public:
  /// Wraps `returncode` as `CompletedProcess::returncode`, `Popen::wait()` etc. give it.
  constexpr explicit ExitStatus(int returncode) noexcept : returncode_(returncode) {}

  /// The returncode it wraps.
  [[nodiscard]] constexpr int returncode() const noexcept { return returncode_; }
  /// True when the child exited by itself (returncode ≥ 0).
  [[nodiscard]] constexpr bool exited() const noexcept { return !signaled(); }
  /// The exit status when the child exited, else `std::nullopt`.
  [[nodiscard]] constexpr std::optional<int> code() const noexcept {
    return exited() ? std::optional<int>(returncode_) : std::nullopt;
  }
  /// True when a signal ended the child (returncode < 0; on Windows: a crash exit code).
  [[nodiscard]] constexpr bool signaled() const noexcept {
    return detail::returncode_is_signal(returncode_);
  }
  /// The number of the signal that ended the child, else `std::nullopt`.
  [[nodiscard]] constexpr std::optional<int> signal() const noexcept {
    return signaled() ? std::optional<int>(-returncode_) : std::nullopt;
  }
  /// True for an exit with status 0.
  [[nodiscard]] constexpr bool success() const noexcept { return returncode_ == 0; }

  friend constexpr bool operator==(ExitStatus, ExitStatus) noexcept = default;

 private:
  int returncode_;
};

/// "exited with 2", "exited with 0", "killed by SIGKILL"; a signal without a usual name reads
/// "killed by unknown signal 77". This is also what `fmt::format("{}", status)` gives.
inline std::string to_string(ExitStatus status) {
  if (status.signaled()) return "killed by " + detail::signal_name(*status.signal());
  return "exited with " + std::to_string(status.returncode());
}

/// An argument list to format shell-quoted (see `quoted`). It refers to the vector it was
/// made from, so use it within the expression that made it.
class QuotedArgs {
 public:
  explicit QuotedArgs(const std::vector<std::string>& args) noexcept : args_(&args) {}
  /// The arguments it refers to.
  [[nodiscard]] const std::vector<std::string>& args() const noexcept { return *args_; }

 private:
  const std::vector<std::string>* args_;
};

/// Formats `args` as one POSIX shell command line (`proc::join`), so that a logged command can
/// be pasted into a shell: `fmt::format("{}", proc::quoted({"grep", "a b"}))` gives
/// `grep 'a b'`. proc deliberately has no formatter for `std::vector<std::string>` itself,
/// which stays {fmt}'s range formatting (`fmt/ranges.h`).
[[nodiscard]] inline QuotedArgs quoted(const std::vector<std::string>& args) noexcept {
  return QuotedArgs(args);
}

namespace detail::fmt_support {

// "12 bytes", "1 byte".
inline std::string byte_count(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

// "0", "2", "-9 (killed by SIGKILL)": the number Python shows, explained when it is a signal.
inline std::string returncode_text(int returncode) {
  std::string s = std::to_string(returncode);
  if (detail::returncode_is_signal(returncode)) s += " (" + to_string(ExitStatus(returncode)) + ")";
  return s;
}

// The base of proc's formatters: no format specification, as {fmt} 9 to 11 all accept.
struct NoSpec {
  constexpr auto parse(fmt::format_parse_context& ctx) -> decltype(ctx.begin()) {
    return ctx.begin();
  }
};

}  // namespace detail::fmt_support

}  // namespace proc

/// `exited with 2`, `killed by SIGKILL` (see `proc::to_string(ExitStatus)`).
template <>
struct fmt::formatter<proc::ExitStatus> : proc::detail::fmt_support::NoSpec {
  template <class FormatContext>
  auto format(const proc::ExitStatus& status, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "{}", proc::to_string(status));
  }
};

/// The command line, shell-quoted with `proc::join`: `grep 'a b'`.
template <>
struct fmt::formatter<proc::QuotedArgs> : proc::detail::fmt_support::NoSpec {
  template <class FormatContext>
  auto format(const proc::QuotedArgs& q, FormatContext& ctx) const -> decltype(ctx.out()) {
    return fmt::format_to(ctx.out(), "{}", proc::join(q.args()));
  }
};

/// `CompletedProcess(args='ls -l', returncode=0, out=12 bytes, err=0 bytes)`: the command
/// shell-quoted with `proc::join`, the returncode (a signal is named:
/// `returncode=-9 (killed by SIGKILL)`), and the sizes of the captured streams.
template <>
struct fmt::formatter<proc::CompletedProcess> : proc::detail::fmt_support::NoSpec {
  template <class FormatContext>
  auto format(const proc::CompletedProcess& r, FormatContext& ctx) const -> decltype(ctx.out()) {
    namespace f = proc::detail::fmt_support;
    return fmt::format_to(ctx.out(), "CompletedProcess(args='{}', returncode={}, out={}, err={})",
                          proc::join(r.args), f::returncode_text(r.returncode),
                          f::byte_count(r.out.size()), f::byte_count(r.err.size()));
  }
};

/// `PipelineResult(args='seq 100 | grep 7 | wc -l', returncodes=[0, 0, 0], out=3 bytes,
/// err=0 bytes)`: the stages shell-quoted and joined with ` | `, one returncode per stage (a
/// signal is named, as for `CompletedProcess`), and the sizes of the captured streams.
template <>
struct fmt::formatter<proc::PipelineResult> : proc::detail::fmt_support::NoSpec {
  template <class FormatContext>
  auto format(const proc::PipelineResult& r, FormatContext& ctx) const -> decltype(ctx.out()) {
    namespace f = proc::detail::fmt_support;
    std::string codes;
    for (int rc : r.returncodes) codes += (codes.empty() ? "" : ", ") + f::returncode_text(rc);
    return fmt::format_to(ctx.out(), "PipelineResult(args='{}', returncodes=[{}], out={}, err={})",
                          proc::detail::pipeline_text(r.args), codes, f::byte_count(r.out.size()),
                          f::byte_count(r.err.size()));
  }
};
