#pragma once
/// \file
/// The blocking helpers: `run`, `call`, `check_call`, `check_output`, `getoutput`,
/// `getstatusoutput`, and `CompletedProcess`.

#include <chrono>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "proc/detail/capture.hpp"
#include "proc/detail/job.hpp"
#include "proc/errors.hpp"
#include "proc/options.hpp"
#include "proc/popen.hpp"
#include "proc/usage.hpp"

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
  /// What the child cost (CPU time, peak memory), from the kernel at reaping time.
  ResourceUsage usage{};

  /// Throws `CalledProcessError` when `returncode` is not 0.
  void check_returncode() const {
    if (returncode != 0) throw CalledProcessError(returncode, args, out, err);
  }
};

namespace detail {

/// The deadline and the stop grace of a run-style call.
inline std::optional<Clock::time_point> run_deadline(const Options& o) {
  return deadline_after(o.timeout);
}

/// The kill grace of a run-style call: SIGTERM first, SIGKILL after it (none: SIGKILL at once).
inline std::optional<Clock::duration> kill_grace_of(const Options& o) {
  if (!o.kill_grace) return std::nullopt;
  return std::chrono::nanoseconds(*o.kill_grace);
}

/// Where one captured stream of a run-style call goes: the buffer, behind a TeeSink when the
/// stream is a proc::tee.
struct Capture {
  CaptureBuffer buf;
  std::optional<TeeSink> tee;
  Sink* sink(native_handle tee_target) {
    if (tee_target == invalid_handle) return &buf;
    return &tee.emplace(buf, tee_target);
  }
};

/// Hands the parent's end of stream `i` of `p` to the job (into `capture` for an output, with
/// `limit` as its cap).
inline void attach_stream(Job& job, Popen& p, int i, Capture* capture,
                          std::optional<std::size_t> limit = std::nullopt) {
  PipeEnd end = PopenAccess::take(p, i);
  if (!end.is_open()) return;
  grow_pipe(end.native_handle(), 1 << 20);  // fewer wake-ups for bulk data
  native_handle h = end.release();
  if (i == 0) {
    job.io.in = h;
    return;
  }
  capture->buf.set_limit(limit);
  Sink* sink = capture->sink(PopenAccess::tee_target(p, i));
  if (i == 1) job.io.out = h, job.io.out_sink = sink;
  if (i == 2) job.io.err = h, job.io.err_sink = sink;
}

/// The exception for a job that ended with `error`: OutputLimitExceeded (with the output kept)
/// for a capture over its cap, else the error itself.
inline std::exception_ptr job_error(std::exception_ptr error, const std::vector<std::string>& args,
                                    std::optional<std::size_t> limit, Capture& out, Capture& err) {
  try {
    std::rethrow_exception(error);
  } catch (const OutputLimitReached&) {
    return std::make_exception_ptr(
        OutputLimitExceeded(args, limit.value_or(0), out.buf.take(), err.buf.take()));
  } catch (...) {
    return std::current_exception();
  }
}

inline CompletedProcess run_impl(std::vector<std::string> args, const Options& options) {
  Popen p(RunTag{}, args, options);
  Capture out, err;
  Job job({&p}, run_deadline(options), kill_grace_of(options));
  if (options.input) job.io.input = *options.input;
  attach_stream(job, p, 0, nullptr);
  attach_stream(job, p, 1, &out, options.max_output);
  attach_stream(job, p, 2, &err, options.max_output);
  Job* jobs[1] = {&job};
  run_jobs(jobs);
  if (job.error())
    std::rethrow_exception(job_error(job.error(), args, options.max_output, out, err));
  if (job.timed_out())
    throw TimeoutExpired(std::move(args), options.timeout->value, out.buf.take(), err.buf.take());
  CompletedProcess done{std::move(args), *p.returncode(), out.buf.take(), err.buf.take(),
                        p.resource_usage().value_or(ResourceUsage{})};
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
template <detail::CommandString S>
inline CompletedProcess run(const S& command, const Options& options = {}) {
  return detail::run_impl({std::string(command)}, options);
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
template <detail::CommandString S>
inline int call(const S& command, const Options& options = {}) {
  return detail::call_impl({std::string(command)}, options);
}

/// Runs a command; throws `CalledProcessError` unless it exits with 0 (Python's `check_call`).
inline void check_call(std::initializer_list<std::string> args, const Options& options = {}) {
  detail::check_call_impl(std::vector<std::string>(args), options);
}
inline void check_call(std::vector<std::string> args, const Options& options = {}) {
  detail::check_call_impl(std::move(args), options);
}
template <detail::CommandString S>
inline void check_call(const S& command, const Options& options = {}) {
  detail::check_call_impl({std::string(command)}, options);
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
template <detail::CommandString S>
inline std::string check_output(const S& command, const Options& options = {}) {
  return detail::check_output_impl({std::string(command)}, options);
}

/// Runs `command` through the shell with stderr merged into stdout; returns the returncode
/// (negative for a signal) and the output less one trailing newline.
template <detail::CommandString S>
inline std::pair<int, std::string> getstatusoutput(const S& command) {
  return detail::getstatusoutput_impl(std::string(command));
}
/// As `getstatusoutput`, the output alone.
template <detail::CommandString S>
inline std::string getoutput(const S& command) {
  return detail::getstatusoutput_impl(std::string(command)).second;
}

}  // namespace proc
