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
  Command(std::string command, Options options = {})
      : args_{std::move(command)}, options_(std::move(options)) {}

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
};

/// Starts every stage, each stdout wired straight into the next stdin (no copying through the
/// parent). `in` goes to the first stage, `out` to the last, `err` to every stage; a piped
/// `err` is one pipe shared by all stages. `per_stage[i]` (if given) supplies the rest of a
/// stage's options; else `base` does.
inline StartedPipeline start_stages(const std::vector<std::vector<std::string>>& stages,
                                    const std::vector<const Options*>& per_stage,
                                    const Options& base, bool for_run) {
  if (stages.empty()) throw std::invalid_argument("proc: a pipeline needs at least one stage");
  if (!for_run && (base.input || base.check || base.timeout))
    throw std::invalid_argument(
        "proc::start_pipeline: input, check and timeout are for run_pipeline");
  check_stdio_conflicts(base);

  auto stage_options = [&](std::size_t i) {
    Options o = per_stage.empty() || !per_stage[i] ? base : *per_stage[i];
    o.input.reset();
    o.check = false;
    o.timeout.reset();
    o.capture_output = false;
    return o;
  };
  // Every stage is checked before any starts, so bad input in a later stage starts nothing.
  for (std::size_t i = 0; i < stages.size(); ++i) {
    Options o = stage_options(i);
    o.in = i == 0 && !base.input ? base.in : Redirect();
    o.out = i + 1 == stages.size() && !base.capture_output ? base.out : Redirect();
    validate(stages[i], o, true);
  }

  StartedPipeline p;
  Redirect err = base.capture_output ? Redirect(proc::pipe) : base.err;
  PipeEnd err_child_end;
  if (err.kind() == Redirect::Kind::pipe) {
    PipePair pp = make_pipe();
    p.err = PipeEnd(pp.read);
    err_child_end = PipeEnd(pp.write);
    err = proc::fd(err_child_end.native_handle());
  }
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
      if (per_stage.empty() || !per_stage[i] || per_stage[i]->err.kind() == Redirect::Kind::inherit)
        o.err = err;
      p.stages.emplace_back(RunTag{}, stages[i], o);
    }
  } catch (...) {
    // A stage that cannot start (SpawnError) ends those already running before the error goes
    // up: left alone they could wait forever on input nobody will send, and ~Popen waits.
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
  Popen& first = p.stages.front();
  Popen& last = p.stages.back();
  CaptureBuffer out, err;
  PumpState st;
  std::string_view input = options.input ? std::string_view(*options.input) : std::string_view();
  st.input = input;
  if (options.input) st.in = first.take_in().release();
  if (options.capture_output || options.out.kind() == Redirect::Kind::pipe)
    st.out = last.take_out().release();
  st.err = p.err.release();
  st.out_sink = &out;
  st.err_sink = &err;
  auto deadline =
      options.timeout ? std::optional(deadline_after(options.timeout->value)) : std::nullopt;

  auto close_all = [&] {
    for (auto* h : {&st.in, &st.out, &st.err}) {
      close_handle(*h);
      *h = invalid_handle;
    }
  };
  bool finished;
  try {
    finished = pump(st, deadline);
    if (finished)
      for (auto& s : p.stages)
        if (!s.wait_for(std::max(Clock::duration::zero(), deadline ? *deadline - Clock::now()
                                                                   : Clock::duration::max() / 2))) {
          finished = false;
          break;
        }
  } catch (...) {
    close_all();
    throw;
  }
  if (!finished) {
    // Timeout: end every stage (its group when it leads one), drain briefly, abandon the pipes.
    for (auto& s : p.stages) {
      try {
        s.signal_group(sig_kill);
      } catch (...) {
      }
    }
    try {
      pump(st, Clock::now() + timeout_drain_grace);
    } catch (...) {
    }
    close_all();
    for (auto& s : p.stages) s.wait();
    throw TimeoutExpired(p.stages.size() == 1 ? stages[0] : std::vector<std::string>{},
                         options.timeout->value, out.take(), err.take(),
                         "Pipeline '" + pipeline_text(stages) + "'");
  }
  close_all();
  PipelineResult r;
  r.args = stages;
  for (auto& s : p.stages) r.returncodes.push_back(s.wait());
  r.out = out.take();
  r.err = err.take();
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

/// Starts a pipeline and returns its running stages, first to last, e.g. to stream the last
/// stage's output with `stages.back().out().lines()`. Wiring as in `run_pipeline`; `input`,
/// `check` and `timeout` are `std::invalid_argument` here. A piped `err` is not supported here
/// (each stage would need its own reader): use `run_pipeline`.
inline std::vector<Popen> start_pipeline(const std::vector<std::vector<std::string>>& stages,
                                         const Options& options = {}) {
  if (options.err.kind() == Redirect::Kind::pipe || options.capture_output)
    throw std::invalid_argument("proc::start_pipeline: err = proc::pipe is for run_pipeline");
  return detail::start_stages(stages, {}, options, false).stages;
}
inline std::vector<Popen> start_pipeline(std::initializer_list<std::vector<std::string>> stages,
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
  std::vector<Popen> start(const Options& options = {}) const {
    if (options.err.kind() == Redirect::Kind::pipe || options.capture_output)
      throw std::invalid_argument("proc::Pipeline::start: err = proc::pipe is for run()");
    return detail::start_stages(all_args(), stage_options(options), options, false).stages;
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
