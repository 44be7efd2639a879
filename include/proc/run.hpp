#pragma once
/// \file
/// The blocking helpers: `run`, `call`, `check_call`, `check_output`, `getoutput`,
/// `getstatusoutput`, and `CompletedProcess`.

#include <chrono>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "proc/errors.hpp"
#include "proc/options.hpp"
#include "proc/popen.hpp"

namespace proc {

/// What `run` returns (Python's `CompletedProcess`).
struct CompletedProcess {
  /// The arguments as given (with `shell`, the one command string).
  std::vector<std::string> args;
  /// The exit status, or −N when signal N killed the child.
  int returncode = 0;
  /// Captured stdout (empty unless `out = proc::pipe` or `capture_output`).
  std::string out;
  /// Captured stderr (empty unless `err = proc::pipe` or `capture_output`).
  std::string err;

  /// Throws `CalledProcessError` when `returncode` is not 0.
  void check_returncode() const {
    if (returncode != 0) throw CalledProcessError(returncode, args, out, err);
  }
};

namespace detail {

/// How long a timed-out run keeps reading the pipes after killing the child: long enough for
/// the child's last writes, short enough that a grandchild holding the pipe cannot hang us.
inline constexpr std::chrono::milliseconds timeout_drain_grace{250};

inline CompletedProcess run_impl(std::vector<std::string> args, const Options& options) {
  Popen p(RunTag{}, std::move(args), options);
  std::string_view input = options.input ? std::string_view(*options.input) : std::string_view();
  CommunicateResult r;
  try {
    r = p.communicate(input, options.timeout);
  } catch (TimeoutExpired& e) {
    // Kill the child (its whole group when it leads one), read what is left for a short grace,
    // then abandon the pipes: a grandchild that inherited them must not hang the call.
    try {
      p.signal_group(detail::sig_kill);
      try {
        auto rest = p.communicate({}, Duration(timeout_drain_grace));
        e.out = std::move(rest.out);
        e.err = std::move(rest.err);
      } catch (TimeoutExpired& again) {
        e.out = std::move(again.out);
        e.err = std::move(again.err);
      }
      p.wait();  // the pipes left open are closed by ~Popen
    } catch (...) {
      // Failing to clean up (EPERM from kill, say) must not hide the timeout itself.
    }
    throw TimeoutExpired(p.args(), options.timeout->value, std::move(e.out), std::move(e.err));
  }
  CompletedProcess done{p.args(), p.wait(), std::move(r.out), std::move(r.err)};
  if (options.check) done.check_returncode();
  return done;
}

}  // namespace detail

/// Runs a command, waits for it, and returns a `CompletedProcess`.
///
/// stdio is inherited unless redirected. `input` is written to stdin; `capture_output` pipes
/// stdout and stderr; `check` throws `CalledProcessError` on a non-zero status; `timeout`
/// kills the child (its process group when it leads one), reaps it and throws `TimeoutExpired`
/// with the output read so far. Throws `SpawnError` when the program cannot be started.
inline CompletedProcess run(std::initializer_list<std::string> args, const Options& options = {}) {
  return detail::run_impl(std::vector<std::string>(args), options);
}
/// \copydoc run(std::initializer_list<std::string>, const Options&)
inline CompletedProcess run(std::vector<std::string> args, const Options& options = {}) {
  return detail::run_impl(std::move(args), options);
}
/// With `shell`, `command` is a shell command line; without, the program alone.
inline CompletedProcess run(std::string command, const Options& options = {}) {
  return detail::run_impl({std::move(command)}, options);
}

namespace detail {
inline int call_impl(std::vector<std::string> args, const Options& options) {
  return run_impl(std::move(args), options).returncode;
}
inline void check_call_impl(std::vector<std::string> args, Options options) {
  options.check = true;
  run_impl(std::move(args), options);
}
inline std::string check_output_impl(std::vector<std::string> args, Options options) {
  if (options.out.kind() != Redirect::Kind::inherit || options.capture_output)
    throw std::invalid_argument("proc::check_output: out is captured already; do not redirect it");
  options.out = proc::pipe;
  options.check = true;
  return run_impl(std::move(args), options).out;
}
inline std::pair<int, std::string> getstatusoutput_impl(std::string command) {
  auto r = run_impl({std::move(command)},
                    Options{.out = proc::pipe, .err = proc::to_stdout, .shell = true});
  if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return {r.returncode, std::move(r.out)};
}
}  // namespace detail

/// Runs a command and returns its returncode (Python's `call`).
inline int call(std::initializer_list<std::string> args, const Options& options = {}) {
  return detail::call_impl(std::vector<std::string>(args), options);
}
inline int call(std::vector<std::string> args, const Options& options = {}) {
  return detail::call_impl(std::move(args), options);
}
inline int call(std::string command, const Options& options = {}) {
  return detail::call_impl({std::move(command)}, options);
}

/// Runs a command; throws `CalledProcessError` unless it exits with 0 (Python's `check_call`).
inline void check_call(std::initializer_list<std::string> args, const Options& options = {}) {
  detail::check_call_impl(std::vector<std::string>(args), options);
}
inline void check_call(std::vector<std::string> args, const Options& options = {}) {
  detail::check_call_impl(std::move(args), options);
}
inline void check_call(std::string command, const Options& options = {}) {
  detail::check_call_impl({std::move(command)}, options);
}

/// Runs a command and returns its stdout; throws `CalledProcessError` unless it exits with 0.
/// `err = proc::to_stdout` merges stderr in.
inline std::string check_output(std::initializer_list<std::string> args,
                                const Options& options = {}) {
  return detail::check_output_impl(std::vector<std::string>(args), options);
}
inline std::string check_output(std::vector<std::string> args, const Options& options = {}) {
  return detail::check_output_impl(std::move(args), options);
}
inline std::string check_output(std::string command, const Options& options = {}) {
  return detail::check_output_impl({std::move(command)}, options);
}

/// Runs `command` through the shell with stderr merged into stdout; returns the returncode
/// (negative for a signal) and the output less one trailing newline.
inline std::pair<int, std::string> getstatusoutput(std::string command) {
  return detail::getstatusoutput_impl(std::move(command));
}
/// As `getstatusoutput`, the output alone.
inline std::string getoutput(std::string command) {
  return detail::getstatusoutput_impl(std::move(command)).second;
}

}  // namespace proc
