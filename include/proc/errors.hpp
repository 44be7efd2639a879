#pragma once
/// \file
/// The exceptions proc throws, with Python's names.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/shlex.hpp"

namespace proc {

/// Base of the errors about a child that did start (Python's `SubprocessError`).
class SubprocessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

/// "exit status 3" / "SIGKILL": how a returncode is spoken of in messages.
inline std::string describe_returncode(int returncode) {
  if (returncode_is_signal(returncode)) return "died with " + signal_name(-returncode) + ".";
  return "returned non-zero exit status " + std::to_string(returncode) + ".";
}

/// The last `max_lines` lines of `text` (without a final newline), for error messages.
inline std::string tail_lines(const std::string& text, std::size_t max_lines) {
  std::size_t end = text.size();
  while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r')) --end;
  std::size_t begin = end;
  for (std::size_t lines = 0; begin > 0; --begin) {
    if (text[begin - 1] == '\n' && ++lines == max_lines) break;
  }
  return text.substr(begin, end - begin);
}

/// The command as messages show it: shell-quoted words (`proc::join`), so it can be pasted into
/// a shell; a command of one string (a `shell` command line, or a program alone) as it is, as
/// Python shows a string command.
inline std::string command_text(const std::vector<std::string>& cmd) {
  return cmd.size() == 1 ? cmd.front() : join(cmd);
}

inline std::string called_process_message(int returncode, const std::vector<std::string>& cmd,
                                          const std::string& err) {
  std::string msg = "Command '" + command_text(cmd) + "' " + describe_returncode(returncode);
  std::string tail = tail_lines(err, 5);
  if (!tail.empty()) msg += "\nstderr:\n" + tail;
  return msg;
}

inline std::string seconds_text(std::chrono::nanoseconds d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", std::chrono::duration<double>(d).count());
  return buf;
}

}  // namespace detail

/// A child exited with a non-zero status while `check` was asked for (Python's
/// `CalledProcessError`). `returncode` is negative (−N) when signal N ended the child.
class CalledProcessError : public SubprocessError {
 public:
  CalledProcessError(int returncode_, std::vector<std::string> cmd_, std::string out_ = {},
                     std::string err_ = {})
      : SubprocessError(detail::called_process_message(returncode_, cmd_, err_)),
        returncode(returncode_),
        cmd(std::move(cmd_)),
        out(std::move(out_)),
        err(std::move(err_)) {}

  /// Builds the error with an extra `context` line after the usual message (used by
  /// `run_pipeline` to name the failing stage).
  CalledProcessError(int returncode_, std::vector<std::string> cmd_, std::string out_,
                     std::string err_, const std::string& context)
      : SubprocessError(detail::called_process_message(returncode_, cmd_, err_) + "\n" + context),
        returncode(returncode_),
        cmd(std::move(cmd_)),
        out(std::move(out_)),
        err(std::move(err_)) {}

  int returncode;
  std::vector<std::string> cmd;
  std::string out;
  std::string err;
};

/// A timeout ran out before the child finished (Python's `TimeoutExpired`). `out` and `err`
/// hold everything read before the timeout.
class TimeoutExpired : public SubprocessError {
 public:
  TimeoutExpired(std::vector<std::string> cmd_, std::chrono::nanoseconds timeout_,
                 std::string out_ = {}, std::string err_ = {})
      : SubprocessError("Command '" + detail::command_text(cmd_) + "' timed out after " +
                        detail::seconds_text(timeout_) + " seconds."),
        cmd(std::move(cmd_)),
        timeout(timeout_),
        out(std::move(out_)),
        err(std::move(err_)) {}

  /// With a `display` text instead of the shell-quoted `cmd` in the message (pipelines).
  TimeoutExpired(std::vector<std::string> cmd_, std::chrono::nanoseconds timeout_, std::string out_,
                 std::string err_, const std::string& display)
      : SubprocessError(display + " timed out after " + detail::seconds_text(timeout_) +
                        " seconds."),
        cmd(std::move(cmd_)),
        timeout(timeout_),
        out(std::move(out_)),
        err(std::move(err_)) {}

  std::vector<std::string> cmd;
  std::chrono::nanoseconds timeout;
  std::string out;
  std::string err;
};

/// A captured stream grew past `Options::max_output`: the child was stopped (as on a timeout)
/// and `out`/`err` hold what was captured, up to the limit.
class OutputLimitExceeded : public SubprocessError {
 public:
  OutputLimitExceeded(std::vector<std::string> cmd_, std::size_t limit_, std::string out_ = {},
                      std::string err_ = {})
      : SubprocessError("Command '" + detail::command_text(cmd_) + "' wrote more than " +
                        std::to_string(limit_) + " bytes of output (max_output); it was stopped."),
        cmd(std::move(cmd_)),
        limit(limit_),
        out(std::move(out_)),
        err(std::move(err_)) {}

  std::vector<std::string> cmd;
  std::size_t limit;
  std::string out;
  std::string err;
};

/// The program could not be started (Python's `OSError` / `FileNotFoundError`).
///
/// `code()` is the errno (POSIX) or `GetLastError()` value (Windows) of the failed
/// exec/chdir, e.g. `ENOENT` or `EACCES`. Deliberately not a `SubprocessError`.
class SpawnError : public std::system_error {
 public:
  SpawnError(std::error_code ec, std::string program_, std::optional<std::filesystem::path> cwd_,
             const std::string& what)
      : std::system_error(ec, what), program(std::move(program_)), cwd(std::move(cwd_)) {}

  std::string program;
  std::optional<std::filesystem::path> cwd;
};

}  // namespace proc
