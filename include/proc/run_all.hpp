#pragma once
/// \file
/// `proc::run_all`: many commands, at most `jobs` at a time, in one thread.

#include <algorithm>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "proc/detail/capture.hpp"
#include "proc/detail/job.hpp"
#include "proc/errors.hpp"
#include "proc/pipeline.hpp"
#include "proc/run.hpp"

namespace proc {

/// One command's outcome in `run_all`.
struct JobResult {
  /// args, returncode, out, err, usage, as `run` would give them (a timed-out job keeps the
  /// output read before it was stopped).
  CompletedProcess process;
  /// Null when the command ran to its end; else why not: its `SpawnError` (it could not start),
  /// `TimeoutExpired`, `CalledProcessError` (its options asked for `check`), a read error, or
  /// a `SubprocessError` saying it was stopped or never started because of `fail_fast`.
  std::exception_ptr error;
  /// No error and returncode 0.
  [[nodiscard]] bool ok() const noexcept { return !error && process.returncode == 0; }
};

/// How `run_all` schedules. Designated initializers: `{.jobs = 8, .fail_fast = true}`.
struct RunAllOptions {
  /// At most this many commands run at once; 0: `std::thread::hardware_concurrency()`.
  unsigned jobs = 0;
  /// After the first job that is not `ok()`: start nothing more and stop the running ones (as a
  /// timeout does: SIGTERM and the kill grace when set, then SIGKILL); those that never started
  /// carry an error saying so.
  bool fail_fast = false;
  /// Called with each job's index and result as it finishes, on the calling thread, in
  /// completion order. An exception from it stops every running job and propagates.
  std::function<void(std::size_t index, const JobResult&)> on_done{};
};

namespace detail {

/// One running command of run_all.
struct RunAllJob {
  std::size_t index = 0;
  std::optional<Popen> popen;
  Capture out, err;
  std::optional<std::size_t> max_output;
  std::unique_ptr<Job> job;
  std::optional<Duration> timeout;
  bool check = false;
};

}  // namespace detail

/// Runs `commands`, at most `options.jobs` at a time, each with its own `Options` (input,
/// capture, timeout, check, cwd, env, ...), in the calling thread: one poll loop over every
/// running child's pipes and exit handle (Windows: the streams are moved by helper threads, the
/// loop is the same). Returns one `JobResult` per command, in input order.
///
/// A job's failure is its result, never an exception out of `run_all`, and never loses another
/// job's result. Nothing is left running or unreaped when it returns or throws (it throws only
/// what `on_done` throws, or a failure of the loop itself, after stopping every job).
inline std::vector<JobResult> run_all(std::vector<Command> commands, RunAllOptions options = {}) {
  const std::size_t n = commands.size();
  std::vector<JobResult> results(n);
  const std::size_t limit =
      options.jobs ? options.jobs : std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::unique_ptr<detail::RunAllJob>> active;
  std::size_t next = 0;
  std::optional<std::size_t> failed;  // fail_fast: the first job that was not ok

  auto done = [&](std::size_t i) {
    if (options.on_done) options.on_done(i, results[i]);
    if (options.fail_fast && !failed && !results[i].ok()) failed = i;
  };
  auto stop_reason = [&] {
    return std::make_exception_ptr(SubprocessError(
        "proc::run_all: stopped because job " + std::to_string(*failed) + " failed (fail_fast)"));
  };

  auto start = [&](std::size_t i) {
    const Command& c = commands[i];
    results[i].process.args = c.args();
    auto a = std::make_unique<detail::RunAllJob>();
    a->index = i;
    const Options& o = c.options();
    try {
      a->popen.emplace(detail::RunTag{}, c.args(), o);
    } catch (...) {
      results[i].error = std::current_exception();
      done(i);
      return;
    }
    a->timeout = o.timeout;
    a->check = o.check;
    a->max_output = o.max_output;
    a->job = std::make_unique<detail::Job>(std::vector<Popen*>{&*a->popen}, detail::run_deadline(o),
                                           detail::kill_grace_of(o));
    if (o.input) a->job->io.input = *o.input;
    detail::attach_stream(*a->job, *a->popen, 0, nullptr);
    detail::attach_stream(*a->job, *a->popen, 1, &a->out, o.max_output);
    detail::attach_stream(*a->job, *a->popen, 2, &a->err, o.max_output);
    active.push_back(std::move(a));
  };

  auto finish = [&](detail::RunAllJob& a) {
    JobResult& r = results[a.index];
    Popen& p = *a.popen;
    if (auto rc = p.returncode()) {
      r.process.returncode = *rc;
      r.process.usage = p.resource_usage().value_or(ResourceUsage{});
    }
    if (a.job->error()) {
      r.error = detail::job_error(a.job->error(), r.process.args, a.max_output, a.out, a.err);
    }
    r.process.out = a.out.buf.take();  // (what job_error did not take already)
    r.process.err = a.err.buf.take();
    if (r.error) {
      try {
        std::rethrow_exception(r.error);
      } catch (const OutputLimitExceeded& e) {
        r.process.out = e.out;
        r.process.err = e.err;
      } catch (...) {
      }
    } else if (a.job->timed_out()) {
      r.error = std::make_exception_ptr(
          TimeoutExpired(r.process.args, a.timeout->value, r.process.out, r.process.err));
    } else if (a.check && r.process.returncode != 0) {
      r.error = std::make_exception_ptr(
          CalledProcessError(r.process.returncode, r.process.args, r.process.out, r.process.err));
    }
    done(a.index);
  };

  try {
    bool stopping = false;
    while (next < n || !active.empty()) {
      while (!failed && active.size() < limit && next < n) start(next++);
      if (failed && !stopping) {
        stopping = true;
        for (auto& a : active) a->job->stop(stop_reason());
      }
      if (active.empty()) {
        if (failed) break;
        continue;
      }
      std::vector<detail::Job*> jobs;
      jobs.reserve(active.size());
      for (auto& a : active) jobs.push_back(a->job.get());
      detail::step_jobs(jobs);
      for (std::size_t k = 0; k < active.size();) {
        if (!active[k]->job->finished()) {
          ++k;
          continue;
        }
        std::unique_ptr<detail::RunAllJob> a = std::move(active[k]);
        active.erase(active.begin() + static_cast<std::ptrdiff_t>(k));
        finish(*a);
      }
    }
    for (std::size_t i = next; i < n; ++i) {
      results[i].process.args = commands[i].args();
      results[i].error =
          std::make_exception_ptr(SubprocessError("proc::run_all: not started because job " +
                                                  std::to_string(*failed) + " failed (fail_fast)"));
    }
  } catch (...) {
    for (auto& a : active) a->job->stop_now();
    throw;
  }
  return results;
}

}  // namespace proc
