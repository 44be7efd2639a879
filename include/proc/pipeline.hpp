#pragma once
/// \file
/// Pipelines: `run_pipeline`, `start_pipeline`, and `Command`s joined with `|`.

#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "proc/detail/capture.hpp"
#include "proc/detail/job.hpp"
#include "proc/detail/platform.hpp"
#include "proc/errors.hpp"
#include "proc/options.hpp"
#include "proc/popen.hpp"
#include "proc/run.hpp"

namespace proc {

/// What `run_pipeline` returns.
struct PipelineResult {
  /// One command per stage.
  std::vector<std::vector<std::string>> args;
  /// One returncode per stage (−N: killed by signal N).
  std::vector<int> returncodes;
  /// The last stage's captured stdout (empty unless `out = proc::pipe` or `capture_output`).
  std::string out;
  /// Every stage's captured stderr, interleaved as written (empty unless piped).
  std::string err;

  /// The returncode of the rightmost stage that failed, else 0 (bash's `pipefail`).
  [[nodiscard]] int returncode() const noexcept {
    for (auto it = returncodes.rbegin(); it != returncodes.rend(); ++it)
      if (*it != 0) return *it;
    return 0;
  }
  /// Throws `CalledProcessError` for the rightmost failing stage, naming the stage.
  void check_returncode() const;
};

/// One stage of a pipeline: a command and the options that are its own (cwd, env, ...).
/// Join stages with `|`: `(proc::Command{"seq", "100"} | proc::Command{"wc", "-l"}).run()`.
class Command {
 public:
  Command(std::initializer_list<std::string> args, Options options = {})
      : args_(args), options_(std::move(options)) {}
  Command(std::vector<std::string> args, Options options = {})
      : args_(std::move(args)), options_(std::move(options)) {}
  template <detail::CommandString S>
  Command(const S& command, Options options = {})
      : args_{std::string(command)}, options_(std::move(options)) {}

  [[nodiscard]] const std::vector<std::string>& args() const noexcept { return args_; }
  [[nodiscard]] const Options& options() const noexcept { return options_; }

 private:
  std::vector<std::string> args_;
  Options options_;
};

namespace detail {

inline std::string pipeline_text(const std::vector<std::vector<std::string>>& stages) {
  std::string s;
  for (const auto& st : stages) s += (s.empty() ? "" : " | ") + join(st);
  return s;
}

/// The stages of a started pipeline, and the shared stderr pipe when `err` was piped.
struct StartedPipeline {
  std::vector<Popen> stages;
  PipeEnd err;  // the parent's end of the stderr pipe shared by every stage (if piped)
  native_handle err_tee = invalid_handle;  // err = proc::tee(...): where the copy goes
  PipeEnd err_tee_file;                    // ... and the file opened for it

  StartedPipeline() = default;
  StartedPipeline(StartedPipeline&&) noexcept = default;
  StartedPipeline& operator=(StartedPipeline&&) = delete;
  // The parent's ends of *every* stage close before any stage is waited for: destroyed front to
  // back, `yes | cat` would wait for `yes`, blocked on `cat`, blocked on our end of its stdout.
  ~StartedPipeline() {
    err.close();
    for (Popen& s : stages) PopenAccess::close_pipes(s);
    while (!stages.empty()) stages.pop_back();  // last stage first
  }
};

/// Starts every stage, each stdout wired straight into the next stdin (no copying through the
/// parent). `in` goes to the first stage, `out` to the last, `err` to every stage; a piped
/// `err` is one pipe shared by all stages (with `for_run`, a stage's own `err = proc::pipe`
/// joins it too). `per_stage[i]` (if given) supplies the rest of a stage's options; else `base`.
inline StartedPipeline start_stages(const std::vector<std::vector<std::string>>& stages,
                                    const std::vector<const Options*>& per_stage,
                                    const Options& base, bool for_run) {
  if (stages.empty()) throw std::invalid_argument("proc: a pipeline needs at least one stage");
  if (!for_run && (base.input || base.check || base.timeout))
    throw std::invalid_argument(
        "proc::start_pipeline: input, check and timeout are for run_pipeline");
  if (for_run && !base.input && base.in.kind() == Redirect::Kind::pipe)
    throw std::invalid_argument(
        "proc::run_pipeline: in = proc::pipe without input would leave the first stage waiting "
        "for input nobody writes; give input, or use start_pipeline and write to "
        "stages.front().in()");
  check_stdio_conflicts(base);

  auto stage_options = [&](std::size_t i) {
    Options o = per_stage.empty() || !per_stage[i] ? base : *per_stage[i];
    o.input.reset();
    o.check = false;
    o.timeout.reset();
    o.capture_output = false;
    return o;
  };
  auto own_err = [&](std::size_t i) -> const Redirect* {
    return per_stage.empty() || !per_stage[i] ? nullptr : &per_stage[i]->err;
  };
  // Every stage is checked before any starts, so bad input in a later stage starts nothing.
  bool stage_err_pipe = false;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    Options o = stage_options(i);
    o.in = i == 0 && !base.input ? base.in : Redirect();
    o.out = i + 1 == stages.size() && !base.capture_output ? base.out : Redirect();
    validate(stages[i], o, true);
    stage_err_pipe = stage_err_pipe || (own_err(i) && own_err(i)->kind() == Redirect::Kind::pipe);
  }

  StartedPipeline p;
  Redirect err = base.capture_output ? Redirect(proc::pipe) : base.err;
  if (err.kind() == Redirect::Kind::tee) {
    // Every stage writes into the shared pipe; the copy goes where the tee says.
    if (err.tee_target() == Redirect::Kind::file || err.tee_target() == Redirect::Kind::append) {
      p.err_tee_file =
          PipeEnd(open_file(err.path(), true, err.tee_target() == Redirect::Kind::append));
      p.err_tee = p.err_tee_file.native_handle();
    } else {
      p.err_tee = err.tee_target() == Redirect::Kind::fd ? err.handle() : standard_handle(2);
    }
    err = proc::pipe;
  }
  const bool shared_err = err.kind() == Redirect::Kind::pipe || (for_run && stage_err_pipe);
  PipeEnd err_child_end;
  if (shared_err) {
    PipePair pp = make_pipe();
    p.err = PipeEnd(pp.read);
    err_child_end = PipeEnd(pp.write);
  }
  Redirect shared = shared_err ? proc::fd(err_child_end.native_handle()) : Redirect();
  p.stages.reserve(stages.size());
  try {
    for (std::size_t i = 0; i < stages.size(); ++i) {
      Options o = stage_options(i);
      bool first = i == 0, last = i + 1 == stages.size();
      if (first) {
        o.in = base.input ? Redirect(proc::pipe) : base.in;
      } else {
        o.in = p.stages.back().take_out();
      }
      o.out = last ? (base.capture_output ? Redirect(proc::pipe) : base.out) : Redirect(proc::pipe);
      const Redirect* mine = own_err(i);
      if (!mine || mine->kind() == Redirect::Kind::inherit)
        o.err = err.kind() == Redirect::Kind::pipe ? shared : err;
      else if (for_run && mine->kind() == Redirect::Kind::pipe)
        o.err = shared;  // read into PipelineResult::err with the rest
      p.stages.emplace_back(RunTag{}, stages[i], o);
    }
  } catch (...) {
    // A stage that cannot start (SpawnError) ends those already running before the error goes
    // up: left alone they could wait forever on input nobody will send.
    for (auto& s : p.stages) {
      try {
        s.signal_group(sig_kill);
      } catch (...) {
      }
    }
    throw;
  }
  return p;  // err_child_end closes here: only the children hold the stderr write end now
}

inline PipelineResult run_stages(const std::vector<std::vector<std::string>>& stages,
                                 const std::vector<const Options*>& per_stage,
                                 const Options& options) {
  StartedPipeline p = start_stages(stages, per_stage, options, true);
  Capture out, err;
  std::vector<Popen*> children;
  for (Popen& s : p.stages) children.push_back(&s);
  Job job(std::move(children), run_deadline(options), kill_grace_of(options));
  if (options.input) job.io.input = *options.input;
  attach_stream(job, p.stages.front(), 0, nullptr);
  if (options.capture_output || options.out.kind() == Redirect::Kind::pipe ||
      options.out.kind() == Redirect::Kind::tee || options.out.kind() == Redirect::Kind::pty)
    attach_stream(job, p.stages.back(), 1, &out, options.max_output);
  if (p.err.is_open()) {
    job.io.err = p.err.release();
    err.buf.set_limit(options.max_output);
    job.io.err_sink = err.sink(p.err_tee);
  }
  Job* jobs[1] = {&job};
  run_jobs(jobs);
  if (job.error()) {
    std::vector<std::string> flat;
    for (const auto& st : stages) flat.insert(flat.end(), st.begin(), st.end());
    std::rethrow_exception(job_error(job.error(), stages.size() == 1 ? stages[0] : flat,
                                     options.max_output, out, err));
  }
  if (job.timed_out())
    throw TimeoutExpired(p.stages.size() == 1 ? stages[0] : std::vector<std::string>{},
                         options.timeout->value, out.buf.take(), err.buf.take(),
                         "Pipeline '" + pipeline_text(stages) + "'");
  PipelineResult r;
  r.args = stages;
  for (auto& s : p.stages) r.returncodes.push_back(*s.returncode());
  r.out = out.buf.take();
  r.err = err.buf.take();
  if (options.check) r.check_returncode();
  return r;
}

}  // namespace detail

inline void PipelineResult::check_returncode() const {
  for (std::size_t i = returncodes.size(); i-- > 0;) {
    if (returncodes[i] == 0) continue;
    throw CalledProcessError(returncodes[i], args[i], out, err,
                             "(stage " + std::to_string(i + 1) + " of " +
                                 std::to_string(returncodes.size()) + " in the pipeline '" +
                                 detail::pipeline_text(args) + "')");
  }
}

/// Runs commands as a pipeline, each stdout connected straight to the next stdin (no copying
/// through the parent), and waits for all of them.
///
/// `in`/`input` go to the first stage, `out` to the last, `err` and every other option to each
/// stage (a piped `err` collects all stages' stderr). `check` throws `CalledProcessError` for
/// the rightmost failing stage (bash's `pipefail`); `timeout` kills every stage and throws
/// `TimeoutExpired` with the output read so far.
inline PipelineResult run_pipeline(std::initializer_list<std::vector<std::string>> stages,
                                   const Options& options = {}) {
  return detail::run_stages(std::vector<std::vector<std::string>>(stages), {}, options);
}
/// \copydoc run_pipeline(std::initializer_list<std::vector<std::string>>, const Options&)
inline PipelineResult run_pipeline(const std::vector<std::vector<std::string>>& stages,
                                   const Options& options = {}) {
  return detail::run_stages(stages, {}, options);
}

class RunningPipeline;
namespace detail {
RunningPipeline make_running(StartedPipeline&& p);
}  // namespace detail

/// The running stages of a started pipeline, first to last: a range of `Popen` (`size()`,
/// `operator[]`, `front()`, `back()`, `begin()`/`end()`), e.g. to stream the last stage's
/// output with `stages.back().out().lines()`.
///
/// It can be dropped at any point (end of scope, an exception unwinding) without hanging: the
/// destructor first closes the parent's pipe ends of *every* stage, then destroys the stages
/// last to first, each applying its `on_destroy` (by default waiting, as a shell does). A plain
/// `std::vector<Popen>` would wait for the first stage while the last one still holds the pipe
/// it is blocked on (`yes | cat`).
class RunningPipeline {
 public:
  RunningPipeline(RunningPipeline&&) noexcept = default;
  RunningPipeline& operator=(RunningPipeline&& other) noexcept {
    if (this != &other) {
      close_and_destroy();
      stages_ = std::move(other.stages_);
    }
    return *this;
  }
  RunningPipeline(const RunningPipeline&) = delete;
  RunningPipeline& operator=(const RunningPipeline&) = delete;
  ~RunningPipeline() { close_and_destroy(); }

  [[nodiscard]] std::size_t size() const noexcept { return stages_.size(); }
  Popen& operator[](std::size_t i) { return stages_.at(i); }
  Popen& front() { return stages_.front(); }
  Popen& back() { return stages_.back(); }
  auto begin() { return stages_.begin(); }
  auto end() { return stages_.end(); }

  /// Waits for every stage and returns their returncodes, first to last. Like `Popen::wait`, it
  /// does not read the pipes: drain a piped `out` of the last stage first.
  std::vector<int> wait() {
    std::vector<int> rcs;
    rcs.reserve(stages_.size());
    for (Popen& s : stages_) rcs.push_back(s.wait());
    return rcs;
  }

 private:
  friend RunningPipeline detail::make_running(detail::StartedPipeline&&);
  explicit RunningPipeline(std::vector<Popen> stages) : stages_(std::move(stages)) {}
  void close_and_destroy() noexcept {
    for (Popen& s : stages_) detail::PopenAccess::close_pipes(s);
    while (!stages_.empty()) stages_.pop_back();
  }
  std::vector<Popen> stages_;
};

inline RunningPipeline detail::make_running(StartedPipeline&& p) {
  std::vector<Popen> stages = std::move(p.stages);
  p.stages.clear();
  return RunningPipeline(std::move(stages));
}

/// Starts a pipeline and returns its running stages (a `RunningPipeline`), first to last.
/// Wiring as in `run_pipeline`; `input`, `check` and `timeout` are `std::invalid_argument`
/// here. A piped `err` is not supported here (each stage would need its own reader): use
/// `run_pipeline`.
inline RunningPipeline start_pipeline(const std::vector<std::vector<std::string>>& stages,
                                      const Options& options = {}) {
  if (options.err.kind() == Redirect::Kind::pipe || options.err.kind() == Redirect::Kind::tee ||
      options.capture_output)
    throw std::invalid_argument("proc::start_pipeline: err = proc::pipe is for run_pipeline");
  return detail::make_running(detail::start_stages(stages, {}, options, false));
}
inline RunningPipeline start_pipeline(std::initializer_list<std::vector<std::string>> stages,
                                      const Options& options = {}) {
  return start_pipeline(std::vector<std::vector<std::string>>(stages), options);
}

/// A pipeline built from `Command`s with `|`.
class Pipeline {
 public:
  Pipeline() = default;
  explicit Pipeline(Command first) { stages_.push_back(std::move(first)); }

  Pipeline& operator|=(Command next) {
    stages_.push_back(std::move(next));
    return *this;
  }
  friend Pipeline operator|(Pipeline p, Command next) {
    p |= std::move(next);
    return p;
  }

  [[nodiscard]] const std::vector<Command>& stages() const noexcept { return stages_; }

  /// Runs it as `run_pipeline` does. `options` gives the pipeline's ends and policy (`in`,
  /// `input`, `out`, `err`, `capture_output`, `check`, `timeout`); each stage's other options
  /// come from its `Command` (a stage's own `err` redirect wins).
  PipelineResult run(const Options& options = {}) const {
    return detail::run_stages(all_args(), stage_options(options), options);
  }
  /// Starts it and returns the running stages, as `start_pipeline` does.
  RunningPipeline start(const Options& options = {}) const {
    if (options.err.kind() == Redirect::Kind::pipe || options.capture_output)
      throw std::invalid_argument("proc::Pipeline::start: err = proc::pipe is for run()");
    return detail::make_running(
        detail::start_stages(all_args(), stage_options(options), options, false));
  }

 private:
  std::vector<std::vector<std::string>> all_args() const {
    std::vector<std::vector<std::string>> v;
    for (const auto& c : stages_) v.push_back(c.args());
    return v;
  }
  std::vector<const Options*> stage_options(const Options&) const {
    std::vector<const Options*> v;
    for (const auto& c : stages_) v.push_back(&c.options());
    return v;
  }
  std::vector<Command> stages_;
};

/// `Command | Command` starts a `Pipeline`.
inline Pipeline operator|(Command a, Command b) {
  Pipeline p(std::move(a));
  p |= std::move(b);
  return p;
}

}  // namespace proc
