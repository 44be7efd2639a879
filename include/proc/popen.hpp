#pragma once
/// \file
/// `proc::Popen`: a running child, started at construction.

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "proc/detail/capture.hpp"
#include "proc/detail/environment_block.hpp"
#include "proc/detail/platform.hpp"
#include "proc/environment.hpp"
#include "proc/errors.hpp"
#include "proc/options.hpp"
#include "proc/pipe.hpp"
#include "proc/usage.hpp"

namespace proc {

/// What `Popen::communicate` returns: everything the child wrote to its piped stdout/stderr
/// (a stream that is not a pipe gives an empty string).
struct CommunicateResult {
  std::string out;
  std::string err;
};

namespace detail {

/// Tag for the run-style helpers: `input`, `check`, `timeout` are theirs to handle.
struct RunTag {};

/// What the helpers built on Popen (run, pipelines, run_all, proc::mp) reach inside it for.
struct PopenAccess;

/// Tag for proc::mp: the child also inherits the handles given, at the same values.
struct InheritTag {};

inline bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }
inline bool path_has_nul(const std::filesystem::path& p) {
  return p.native().find(std::filesystem::path::value_type{}) !=
         std::filesystem::path::string_type::npos;
}

/// A path as UTF-8 (`path::string()` would use the ANSI code page on Windows).
inline std::string path_utf8(const std::filesystem::path& p) {
  auto u = p.u8string();
  return std::string(u.begin(), u.end());
}

/// `input` needs `in` left alone; `capture_output` needs `out` and `err` left alone.
inline void check_stdio_conflicts(const Options& o) {
  if (o.input && o.in.kind() != Redirect::Kind::inherit)
    throw std::invalid_argument("proc: input and an in redirect cannot be used together");
  if (o.capture_output &&
      (o.out.kind() != Redirect::Kind::inherit || o.err.kind() != Redirect::Kind::inherit))
    throw std::invalid_argument(
        "proc: capture_output and an out/err redirect cannot be used together");
}

inline void validate(const std::vector<std::string>& args, const Options& o, bool for_run) {
  if (args.empty()) throw std::invalid_argument("proc: empty argument list");
  for (std::size_t i = 0; i < args.size(); ++i)
    if (has_nul(args[i]))
      throw std::invalid_argument("proc: NUL byte in argument " + std::to_string(i) + ": '" +
                                  printable(args[i]) + "'");
  if (o.cwd && path_has_nul(*o.cwd))
    throw std::invalid_argument("proc: NUL byte in cwd '" + printable(path_utf8(*o.cwd)) + "'");
  if (o.executable && path_has_nul(*o.executable))
    throw std::invalid_argument("proc: NUL byte in executable '" +
                                printable(path_utf8(*o.executable)) + "'");
  if (o.in.kind() == Redirect::Kind::to_stdout)
    throw std::invalid_argument("proc: to_stdout is only for err, not for in");
  if (o.out.kind() == Redirect::Kind::to_stdout)
    throw std::invalid_argument("proc: to_stdout is only for err, not for out");
  if (o.in.kind() == Redirect::Kind::tee)
    throw std::invalid_argument("proc: tee is for out and err, not for in");
  const bool any_pty = o.in.kind() == Redirect::Kind::pty || o.out.kind() == Redirect::Kind::pty ||
                       o.err.kind() == Redirect::Kind::pty;
  if (any_pty && o.process_group)
    throw std::invalid_argument(
        "proc: a child on a pty leads a session of its own; process_group cannot be set too");
  check_windows_only_options(o.creation_flags, o.hide_window);
  if (!for_run && (o.input || o.check || o.timeout))
    throw std::invalid_argument(
        "proc::Popen: input, check and timeout are for the run-style helpers; use "
        "communicate(input, timeout)");
  check_stdio_conflicts(o);
  for (const auto& [name, value] : o.env_update) {
    Environment::check_name(name);
    if (value && has_nul(*value))
      throw std::invalid_argument("proc: NUL byte in the value of env_update '" + name + "'");
  }
  const Redirect* slots[3] = {&o.in, &o.out, &o.err};
  const char* names[3] = {"in", "out", "err"};
  for (int i = 0; i < 3; ++i) {
    const Redirect& r = *slots[i];
    if ((r.kind() == Redirect::Kind::file || r.kind() == Redirect::Kind::append) &&
        path_has_nul(r.path()))
      throw std::invalid_argument(std::string("proc: NUL byte in the ") + names[i] +
                                  " file path '" + printable(path_utf8(r.path())) + "'");
    if (r.kind() == Redirect::Kind::fd && !handle_is_valid(r.handle()))
      throw std::invalid_argument(std::string("proc: ") + names[i] + " = proc::fd(" +
                                  handle_to_string(r.handle()) + "): not an open descriptor");
    if (r.kind() == Redirect::Kind::pipe_end && (!r.pipe_end() || !r.pipe_end()->is_open()))
      throw std::invalid_argument(std::string("proc: the PipeEnd given for ") + names[i] +
                                  " is closed (already consumed by another child?)");
  }
  // A name is looked up as a C string: a NUL would silently cut it to another user's name.
  auto check_identity = [](const std::optional<Identity>& id, const char* what) {
    if (id && id->is_name() && has_nul(id->name()))
      throw std::invalid_argument(std::string("proc: NUL byte in the ") + what + " name '" +
                                  printable(id->name()) + "'");
  };
  check_identity(o.user, "user");
  check_identity(o.group, "group");
  if (o.extra_groups)
    for (const auto& g : *o.extra_groups) check_identity(g, "extra_groups");
  check_platform_options(o.pass_fds, o.umask.has_value(), o.user.has_value(), o.group.has_value(),
                         o.extra_groups.has_value(), static_cast<bool>(o.pre_exec),
                         o.start_new_session, o.process_group.has_value());
}

inline IdSpec to_id_spec(const Identity& id) {
  IdSpec s;
  s.is_name = id.is_name();
  if (s.is_name)
    s.name = id.name();
  else
    s.id = id.id();
  return s;
}

}  // namespace detail

/// A child process, started by the constructor (Python's `subprocess.Popen`).
///
/// stdio is inherited unless redirected in `Options`. The destructor closes the parent's pipe
/// ends and then applies `Options::on_destroy` (default: wait), so a `Popen` never leaves a
/// zombie. `poll`, `returncode`, `send_signal`, `terminate` and `kill` may be called from
/// another thread while one thread is in `wait`/`wait_for`/`communicate`.
class Popen {
 public:
  /// A descriptor (POSIX) or `HANDLE` (Windows).
  using native_handle_type = detail::native_handle;

  /// Starts `args` (`args[0]` is the program, looked up in the child's `PATH`).
  /// Throws `SpawnError` when it cannot be started, `std::invalid_argument` on bad input.
  Popen(std::initializer_list<std::string> args, const Options& options = {})
      : Popen(std::vector<std::string>(args), options) {}
  /// Starts `args`; with `shell`, `args[0]` is the command line and the rest are `$1`, ...
  Popen(std::vector<std::string> args, const Options& options = {}) {
    start(std::move(args), options, false);
  }
  /// With `shell`, the command line for the shell; without, the program alone.
  template <detail::CommandString S>
  Popen(const S& command, const Options& options = {})
      : Popen(std::vector<std::string>{std::string(command)}, options) {}
  /// For the run-style helpers (allows `input`, `check`, `timeout`, which they handle).
  Popen(detail::RunTag, std::vector<std::string> args, const Options& options) {
    start(std::move(args), options, true);
  }
  /// For proc::mp: the child also inherits `inherit` (descriptors / handles) at the same values.
  Popen(detail::InheritTag, std::vector<std::string> args, const Options& options,
        std::vector<native_handle_type> inherit) {
    start(std::move(args), options, false, std::move(inherit));
  }

  Popen(Popen&&) noexcept = default;
  Popen& operator=(Popen&& other) noexcept {
    if (this != &other) {
      destroy();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  Popen(const Popen&) = delete;
  Popen& operator=(const Popen&) = delete;
  ~Popen() { destroy(); }

  /// The child's process ID.
  [[nodiscard]] int pid() const { return static_cast<int>(impl().proc->pid()); }
  /// The arguments as given (with `shell`, the one command string).
  [[nodiscard]] const std::vector<std::string>& args() const { return impl().args; }

  /// The returncode if the child has exited, else `std::nullopt`. Never blocks.
  std::optional<int> poll() { return impl().proc->try_wait(); }
  /// The returncode if the child is known to have exited (no system call).
  [[nodiscard]] std::optional<int> returncode() const { return impl().proc->returncode(); }

  /// The child's exit as a waitable handle, for your own `poll`/`epoll`/asio loop: a pidfd on
  /// Linux (readable once the child has exited), the process `HANDLE` on Windows (signalled).
  /// Owned by this `Popen`: do not close it. `proc::invalid_handle` where the system has none
  /// (Linux < 5.3, macOS, `pidfd_open` refused).
  [[nodiscard]] native_handle_type native_handle() const { return impl().proc->exit_handle(); }

  /// CPU time and peak memory of the child, from the kernel at reaping time; `nullopt` until
  /// it has been reaped (and when something else reaped it behind proc's back).
  [[nodiscard]] std::optional<ResourceUsage> resource_usage() const {
    return impl().proc->resource_usage();
  }

  /// Waits for the child to exit and returns its returncode (−N: killed by signal N).
  /// Does not read the pipes: use `communicate` when the child may fill one.
  int wait() { return *impl().proc->wait_until(std::nullopt); }
  /// As `wait()`, but throws `TimeoutExpired` after `timeout` (the child keeps running).
  int wait(Duration timeout) {
    if (auto rc = wait_for(timeout)) return *rc;
    throw TimeoutExpired(impl().args, timeout.value);
  }
  /// Waits up to `timeout`; the returncode, or `std::nullopt` if the child is still running.
  /// Wakes when the child exits (pidfd / kqueue / process handle), not on a polling tick.
  std::optional<int> wait_for(Duration timeout) {
    return impl().proc->wait_until(detail::deadline_after(timeout.value));
  }

  /// Writes `input` to stdin (then closes it) while reading stdout and stderr to the end, all
  /// at once; then waits for the child. Streams that are not pipes are left alone.
  ///
  /// Throws `TimeoutExpired` (with the output so far) when `timeout` runs out; the child keeps
  /// running, and a later call continues where this one stopped and returns the *whole* output.
  CommunicateResult communicate(std::string_view input = {}, std::optional<Duration> timeout = {}) {
    Impl& s = impl();
    auto deadline = detail::deadline_after(timeout);
    if (!s.communicating) {
      if (!input.empty() && !s.in.is_open())
        throw std::logic_error("proc::Popen::communicate: input given but stdin is not a pipe");
      s.communicating = true;
      s.input.clear();
      s.input_view = input;  // the caller's bytes: valid during this call, copied only if kept
      s.in_pos = 0;
      // Bytes that readline()/lines() read ahead, or an unfinished line that stream_lines()
      // kept, come first.
      s.cap_out.append(std::exchange(s.rest_out, {}));
      s.cap_err.append(std::exchange(s.rest_err, {}));
      if (s.out.is_open()) s.cap_out.append(s.out.take_buffered());
      if (s.err.is_open()) s.cap_err.append(s.err.take_buffered());
    }
    s.cap_out.set_limit(s.max_output);
    s.cap_err.set_limit(s.max_output);
    bool pumped;
    try {
      pumped = pump_pipes(deadline);
    } catch (const detail::OutputLimitReached&) {
      // Over max_output: stopped as a timeout stops a run (its group, if it leads one).
      s.communicating = false;
      s.in.close();
      s.out.close();
      s.err.close();
      try {
        signal_group(detail::sig_kill);
        s.proc->wait_until(std::nullopt);
      } catch (...) {
      }
      throw OutputLimitExceeded(s.args, *s.max_output, s.cap_out.take(), s.cap_err.take());
    } catch (...) {
      keep_unwritten_input();
      throw;
    }
    if (!pumped) {
      keep_unwritten_input();
      throw TimeoutExpired(s.args, timeout->value, s.cap_out.copy(), s.cap_err.copy());
    }
    if (!s.proc->wait_until(deadline))
      throw TimeoutExpired(s.args, timeout->value, s.cap_out.copy(), s.cap_err.copy());
    s.communicating = false;
    s.input.clear();
    s.input_view = {};
    return {s.cap_out.take(), s.cap_err.take()};
  }

  /// Calls `on_out` with each line of stdout and `on_err` with each line of stderr (without the
  /// `\n`) as they arrive, draining both in one loop so neither can fill up and deadlock the
  /// child; a last line without `\n` is delivered at the end. Then waits for the child and
  /// returns its returncode. A null callback discards that stream. `input`, when given, is
  /// written to the piped stdin in the same loop, which is then closed; without it stdin is left
  /// alone.
  ///
  /// A line longer than 8 MiB is delivered in 8 MiB pieces. Throws `TimeoutExpired` when
  /// `timeout` runs out (the child keeps running; a later call carries on where this one
  /// stopped). Callbacks run on the calling thread; an exception from one propagates.
  int stream_lines(std::function<void(std::string_view)> on_out,
                   std::function<void(std::string_view)> on_err = {},
                   std::optional<Duration> timeout = {}, std::string_view input = {}) {
    Impl& s = impl();
    auto deadline = detail::deadline_after(timeout);
    if (!input.empty()) {
      if (!s.in.is_open())
        throw std::logic_error("proc::Popen::stream_lines: input given but stdin is not a pipe");
      if (s.stream_in_pos < s.stream_input.size())
        throw std::logic_error(
            "proc::Popen::stream_lines: the input of an earlier call is still being written; "
            "call again without input to go on");
      s.stream_input.assign(input);  // kept: a call that times out resumes where it stopped
      s.stream_in_pos = 0;
    }
    detail::LineSink out_lines(s.rest_out, std::move(on_out));
    detail::LineSink err_lines(s.rest_err, std::move(on_err));
    // However this call ends, an unfinished line goes back into its pipe end's read-ahead, so
    // that readline(), read_all() and communicate() see it as well as a resumed stream_lines().
    struct PutBack {
      Impl& s;
      ~PutBack() {
        if (s.out.is_open() && !s.rest_out.empty()) s.out.unread(std::exchange(s.rest_out, {}));
        if (s.err.is_open() && !s.rest_err.empty()) s.err.unread(std::exchange(s.rest_err, {}));
      }
    } put_back{s};
    // Bytes that readline()/lines() read ahead come first.
    if (s.out.is_open()) feed(out_lines, s.out.take_buffered());
    if (s.err.is_open()) feed(err_lines, s.err.take_buffered());
    detail::PumpState st;
    const bool writing = s.stream_in_pos < s.stream_input.size();
    if (writing) {
      st.in = s.in.release();
      st.input = s.stream_input;
      st.in_pos = s.stream_in_pos;
    }
    st.out = s.out.release();
    st.err = s.err.release();
    std::optional<detail::TeeSink> tee_out, tee_err;
    st.out_sink = tee_or(tee_out, out_lines, s.tee[1]);
    st.err_sink = tee_or(tee_err, err_lines, s.tee[2]);
    bool done;
    {
      struct KeepInput {
        Impl& s;
        detail::PumpState& st;
        bool writing;
        ~KeepInput() {
          if (!writing) return;
          s.stream_in_pos = st.in_pos;
          if (st.in == detail::invalid_handle) s.stream_in_pos = s.stream_input.size();
        }
      } keep_input{s, st, writing};
      Rewrap rewrap{s, st, nullptr};
      done = detail::pump(st, deadline);
    }
    if (!done) throw TimeoutExpired(s.args, timeout->value);
    s.stream_input.clear();
    s.stream_in_pos = 0;
    out_lines.finish();
    err_lines.finish();
    if (auto rc = s.proc->wait_until(deadline)) return *rc;
    throw TimeoutExpired(s.args, timeout->value);
  }

  /// Sets the size of the child's pseudo-terminal (`proc::pty` streams); the child gets
  /// SIGWINCH. Throws `std::logic_error` when the child has no pty.
  void resize_terminal(unsigned short rows, unsigned short cols) {
    Impl& s = impl();
    if (!s.pty.is_open())
      throw std::logic_error("proc::Popen::resize_terminal: the child has no pseudo-terminal");
    s.pty.resize(rows, cols);
  }

  /// Sends signal `sig` (POSIX). Harmless on an exited child; never reaches a reused PID.
  void send_signal(int sig) { impl().proc->send_signal(sig); }
  /// SIGTERM (POSIX) / `TerminateProcess` (Windows).
  void terminate() { send_signal(detail::sig_term); }
  /// SIGKILL (POSIX) / `TerminateProcess` (Windows).
  void kill() { send_signal(detail::sig_kill); }

  /// Sends `sig` to the child's whole process group when it leads one (started with
  /// `start_new_session` or `process_group = 0`), else to the child alone. Windows: ends the
  /// child's job (the whole tree) for `kill()`-like signals.
  void signal_group(int sig) { impl().proc->signal_group(sig); }

  /// Terminates the child, waits up to `grace`, then kills it; returns its returncode.
  int stop(Duration grace) {
    terminate();
    if (auto rc = wait_for(grace)) return *rc;
    kill();
    return wait();
  }

  /// As `stop`, for the child's whole process group when it leads one (`start_new_session` or
  /// `process_group = 0`): SIGTERM to the group, up to `grace`, then SIGKILL to the group, so
  /// grandchildren go too. Returns the child's returncode.
  int stop_group(Duration grace) {
    Impl& s = impl();
    signal_group(detail::sig_term);
    // Not reaped yet, so the group ID stays reserved for the SIGKILL to the stragglers.
    s.proc->wait_exited(detail::deadline_after(grace.value));
    signal_group(detail::sig_kill);
    return wait();
  }

  /// The parent's end of the child's stdin. Throws `std::logic_error` unless `in` was a pipe.
  PipeEnd& in() { return end(0); }
  /// The parent's end of the child's stdout. Throws `std::logic_error` unless `out` was a pipe.
  PipeEnd& out() { return end(1); }
  /// The parent's end of the child's stderr. Throws `std::logic_error` unless `err` was a pipe.
  PipeEnd& err() { return end(2); }

  /// Moves the stdin pipe end out (e.g. to hand it to another child's `Redirect`).
  PipeEnd take_in() { return std::move(end(0)); }
  /// Moves the stdout pipe end out, e.g. `{.in = producer.take_out()}` for the next child.
  PipeEnd take_out() { return std::move(end(1)); }
  /// Moves the stderr pipe end out.
  PipeEnd take_err() { return std::move(end(2)); }

 private:
  friend struct detail::PopenAccess;

  struct Impl {
    std::vector<std::string> args;
    std::unique_ptr<detail::Process> proc;
    PipeEnd in, out, err;
    bool was_pipe[3] = {false, false, false};
    OnDestroy on_destroy = OnDestroy::wait;
    Duration kill_grace = std::chrono::seconds(2);  // OnDestroy::terminate's grace
    std::optional<std::size_t> max_output;          // for communicate()
    // proc::tee: where each stream's copy goes (invalid: no tee), and the file opened for it.
    native_handle_type tee[3] = {detail::invalid_handle, detail::invalid_handle,
                                 detail::invalid_handle};
    PipeEnd tee_file[3];
    detail::PtyMaster pty;  // a pty's master, kept for resize_terminal
    // stream_lines() input, kept across a TimeoutExpired.
    std::string stream_input;
    std::size_t stream_in_pos = 0;
    // communicate() state, kept across a TimeoutExpired.
    bool communicating = false;
    std::string input;            // the unwritten input, kept across a TimeoutExpired
    std::string_view input_view;  // the input being written: the caller's, or `input`
    std::size_t in_pos = 0;
    detail::CaptureBuffer cap_out, cap_err;
    // stream_lines() state: unfinished lines, kept across a TimeoutExpired.
    std::string rest_out, rest_err;
  };

  // Puts the handles a pump did not finish back into the pipe ends (also on exceptions).
  struct Rewrap {
    Impl& s;
    detail::PumpState& st;
    std::size_t* in_pos;  // where the input position goes (communicate's), or null
    ~Rewrap() {
      if (in_pos) *in_pos = st.in_pos;
      if (st.in != detail::invalid_handle) s.in = PipeEnd(st.in);
      if (st.out != detail::invalid_handle) s.out = PipeEnd(st.out);
      if (st.err != detail::invalid_handle) s.err = PipeEnd(st.err);
    }
  };

  // `inner`, or a TeeSink around it (made in `slot`) when the stream has a tee target.
  static detail::Sink* tee_or(std::optional<detail::TeeSink>& slot, detail::Sink& inner,
                              native_handle_type target) {
    if (target == detail::invalid_handle) return &inner;
    return &slot.emplace(inner, target);
  }

  static void feed(detail::Sink& sink, std::string_view bytes) {
    while (!bytes.empty()) {
      std::size_t room = 0;
      char* p = sink.prepare(room);
      std::size_t n = std::min(room, bytes.size());
      std::memcpy(p, bytes.data(), n);
      sink.commit(n);
      bytes.remove_prefix(n);
    }
  }

  Impl& impl() const {
    if (!impl_) throw std::logic_error("proc::Popen: used after being moved from");
    return *impl_;
  }

  PipeEnd& end(int i) {
    Impl& s = impl();
    static const char* names[3] = {"in", "out", "err"};
    if (!s.was_pipe[i])
      throw std::logic_error(std::string("proc::Popen::") + names[i] + "(): " + names[i] +
                             " is not a pipe (set ." + names[i] + " = proc::pipe)");
    return i == 0 ? s.in : i == 1 ? s.out : s.err;
  }

  // communicate() writes straight from the caller's input (no copy of a big input); when the
  // call ends early, a later call must not depend on that memory, so the rest is copied.
  void keep_unwritten_input() {
    Impl& s = impl();
    if (s.input_view.data() == s.input.data()) return;
    s.input.assign(s.input_view.substr(std::min(s.in_pos, s.input_view.size())));
    s.input_view = s.input;
    s.in_pos = 0;
  }

  // Runs the pump over the open pipe ends; false when the deadline passed first.
  bool pump_pipes(std::optional<detail::Clock::time_point> deadline) {
    Impl& s = impl();
    detail::PumpState st;
    st.input = s.input_view;
    st.in_pos = s.in_pos;
    st.in = s.in.release();
    st.out = s.out.release();
    st.err = s.err.release();
    std::optional<detail::TeeSink> tee_out, tee_err;
    st.out_sink = tee_or(tee_out, s.cap_out, s.tee[1]);
    st.err_sink = tee_or(tee_err, s.cap_err, s.tee[2]);
    for (auto h : {st.in, st.out, st.err})
      if (h != detail::invalid_handle) detail::grow_pipe(h, 1 << 20);
    Rewrap rewrap{s, st, &s.in_pos};
    return detail::pump(st, deadline);
  }

  void start(std::vector<std::string> args, const Options& o, bool for_run,
             std::vector<native_handle_type> inherit = {});

  void destroy() noexcept {
    if (!impl_) return;
    Impl& s = *impl_;
    s.in.close();
    s.out.close();
    s.err.close();
    try {
      if (!s.proc->try_wait()) {
        switch (s.on_destroy) {
          case OnDestroy::wait:
            s.proc->wait_until(std::nullopt);
            break;
          case OnDestroy::terminate:
            stop(s.kill_grace);
            break;
          case OnDestroy::kill:
            kill();
            wait();
            break;
          case OnDestroy::detach:
            break;
        }
      }
    } catch (...) {
      // A destructor must not throw. What is left (a child we may not signal: EPERM) goes to
      // the reaper below rather than becoming a zombie.
    }
    try {
      if (!s.proc->returncode()) detail::Reaper::instance().adopt(std::move(s.proc));
    } catch (...) {
      // Out of memory for the reaper's list: nothing better is left to do.
    }
    impl_.reset();
  }

  std::unique_ptr<Impl> impl_;
};

inline void Popen::start(std::vector<std::string> args, const Options& o, bool for_run,
                         std::vector<native_handle_type> inherit) {
  detail::validate(args, o, for_run);
  auto s = std::make_unique<Impl>();
  s->on_destroy = o.on_destroy;
  if (o.kill_grace) s->kill_grace = *o.kill_grace;
  s->max_output = o.max_output;

  detail::SpawnRequest rq;
  if (o.shell) {
    rq.argv = detail::shell_argv(args[0]);
    rq.argv.insert(rq.argv.end(), args.begin() + 1, args.end());
    // With shell, `executable` replaces the shell itself, argv[0] included (as in Python), so
    // that `$0` names it and e.g. bash started this way is not in POSIX mode.
    if (o.executable) rq.argv[0] = detail::path_utf8(*o.executable);
  } else {
    rq.argv = args;
  }
  rq.program = o.executable ? detail::path_utf8(*o.executable) : rq.argv[0];
  if (auto block = detail::build_environment_block(o.env, o.env_update)) {
    rq.env = std::move(block->entries);
    rq.env_path = std::move(block->path);
  }
  rq.cwd = o.cwd;
  rq.close_fds = o.close_fds || !o.pass_fds.empty();  // pass_fds forces close_fds (Python)
  rq.pass_fds = o.pass_fds;
  rq.start_new_session = o.start_new_session;
  rq.process_group = o.process_group;
  rq.restore_signals = o.restore_signals;
  rq.umask = o.umask;
  if (o.user) rq.user = detail::to_id_spec(*o.user);
  if (o.group) rq.group = detail::to_id_spec(*o.group);
  if (o.extra_groups) {
    rq.extra_groups.emplace();
    for (const auto& g : *o.extra_groups) rq.extra_groups->push_back(detail::to_id_spec(g));
  }
  rq.pre_exec = o.pre_exec ? &o.pre_exec : nullptr;
  rq.kill_on_parent_exit = o.kill_on_parent_exit;
  rq.shell = o.shell;
  rq.inherit = std::move(inherit);
  rq.creation_flags = o.creation_flags;
  rq.hide_window = o.hide_window;

  // The child's ends: opened here (close-on-exec), closed once the child has its copies.
  PipeEnd child_ends[3];
  Redirect slots[3] = {o.in, o.out, o.err};
  if (for_run && o.input) slots[0] = proc::pipe;
  if (o.capture_output) slots[1] = slots[2] = proc::pipe;
  PipeEnd* parent_ends[3] = {&s->in, &s->out, &s->err};
  // Every failure to start is a SpawnError naming the program: the errno of exec/chdir, or of
  // what had to come first (EMFILE from pipe2, ENOENT opening a redirect file, EAGAIN from
  // fork, ...). SpawnError is a std::system_error, so the code is the same either way.
  PipeEnd pty_slave;  // POSIX: the slave, closed once the child has it
  detail::native_handle pty_child = detail::invalid_handle;  // the slave / the pseudo-console
  try {
    for (int i = 0; i < 3; ++i) {
      const Redirect& r = slots[i];
      switch (r.kind()) {
        case Redirect::Kind::pty: {
          if (!s->pty.is_open()) {
            TerminalSize size = o.terminal_size.value_or(TerminalSize{});
            const bool read_output =
                slots[1].kind() == Redirect::Kind::pty || slots[2].kind() == Redirect::Kind::pty;
            detail::PtyPair pp = detail::make_pty(size.rows, size.cols, read_output);
            s->pty = std::move(pp.master);
            pty_slave = PipeEnd(pp.slave);
            pty_child = pp.child;
            rq.ctty = pty_child;
          }
          // out and err on the one terminal are one stream, read through out(): a second
          // reader of the same master (the console's output pipe on Windows) would take bytes
          // from the first, so err() stays closed then.
          if (i != 2 || slots[1].kind() != Redirect::Kind::pty)
            *parent_ends[i] = PipeEnd(s->pty.parent_end(i));
          rq.stdio[i] = pty_child;
          s->was_pipe[i] = true;
          break;
        }
        case Redirect::Kind::tee: {
          switch (r.tee_target()) {
            case Redirect::Kind::file:
            case Redirect::Kind::append:
              s->tee_file[i] = PipeEnd(
                  detail::open_file(r.path(), true, r.tee_target() == Redirect::Kind::append));
              s->tee[i] = s->tee_file[i].native_handle();
              break;
            case Redirect::Kind::fd:
              s->tee[i] = r.handle();
              break;
            default:
              s->tee[i] = detail::standard_handle(i);
              break;
          }
          detail::PipePair p = detail::make_pipe();
          PipeEnd rd(p.read), wr(p.write);
          *parent_ends[i] = std::move(rd);
          child_ends[i] = std::move(wr);
          rq.stdio[i] = child_ends[i].native_handle();
          s->was_pipe[i] = true;
          break;
        }
        case Redirect::Kind::inherit:
          rq.stdio[i] = detail::invalid_handle;
          break;
        case Redirect::Kind::pipe: {
          detail::PipePair p = detail::make_pipe();
          PipeEnd rd(p.read), wr(p.write);
          *parent_ends[i] = std::move(i == 0 ? wr : rd);
          child_ends[i] = std::move(i == 0 ? rd : wr);
          rq.stdio[i] = child_ends[i].native_handle();
          s->was_pipe[i] = true;
          break;
        }
        case Redirect::Kind::devnull:
          child_ends[i] = PipeEnd(detail::open_devnull(i != 0));
          rq.stdio[i] = child_ends[i].native_handle();
          break;
        case Redirect::Kind::to_stdout:
          rq.stdio[i] = detail::invalid_handle;
          rq.err_to_stdout = true;
          break;
        case Redirect::Kind::file:
        case Redirect::Kind::append:
          child_ends[i] =
              PipeEnd(detail::open_file(r.path(), i != 0, r.kind() == Redirect::Kind::append));
          rq.stdio[i] = child_ends[i].native_handle();
          break;
        case Redirect::Kind::fd:
          rq.stdio[i] = r.handle();
          break;
        case Redirect::Kind::pipe_end:
          rq.stdio[i] = r.pipe_end()->native_handle();
          break;
      }
    }
    s->proc = std::make_unique<detail::Process>(detail::spawn(rq));
    if (s->pty.is_open()) s->pty.started(s->proc->exit_handle());
  } catch (const detail::SpawnFailure& f) {
    throw SpawnError(std::error_code(f.code, detail::spawn_error_category()), f.program, o.cwd,
                     f.message);
  } catch (const std::system_error& e) {
    // e.what() ends with ": <strerror>", which SpawnError (a system_error too) appends again.
    std::string what = e.what();
    if (what.rfind("proc: ", 0) == 0) what.erase(0, 6);
    std::string suffix = ": " + e.code().message();
    if (what.size() >= suffix.size() &&
        what.compare(what.size() - suffix.size(), suffix.size(), suffix) == 0)
      what.resize(what.size() - suffix.size());
    throw SpawnError(e.code(), rq.program, o.cwd, "proc: cannot run '" + rq.program + "': " + what);
  }
  // Consumed: the parent keeps no copy of a pipe end it handed on, so the other side of the
  // pipe sees EOF / SIGPIPE exactly as in a shell pipeline.
  for (int i = 0; i < 3; ++i)
    if (slots[i].kind() == Redirect::Kind::pipe_end) slots[i].pipe_end()->close();
  s->args = std::move(args);
  impl_ = std::move(s);
}

namespace detail {

template <class At>
std::optional<std::size_t> wait_any_impl(std::size_t n, At&& at, std::optional<Duration> timeout) {
  if (n == 0) throw std::invalid_argument("proc::wait_any: no children to wait for");
  auto deadline = deadline_after(timeout);
  std::vector<native_handle> handles;
  std::vector<std::size_t> index;
  handles.reserve(n);
  index.reserve(n);
  Clock::duration backoff = std::chrono::microseconds(50);
  for (;;) {
    // One reaped before counts at once (no system call); the others are watched through their
    // exit handles, all in one wait; those without one are asked directly.
    handles.clear();
    index.clear();
    bool by_pid = false;
    for (std::size_t i = 0; i < n; ++i) {
      Popen& p = at(i);
      if (p.returncode()) return i;
      native_handle h = p.native_handle();
      if (h != invalid_handle) {
        handles.push_back(h);
        index.push_back(i);
      } else if (p.poll()) {
        return i;
      } else {
        by_pid = true;
      }
    }
    std::optional<Clock::time_point> until = deadline;
    if (by_pid) {  // no exit handle for some child: look again after a short sleep
      auto next = Clock::now() + backoff;
      if (!until || next < *until) until = next;
      backoff = std::min<Clock::duration>(backoff * 2, std::chrono::milliseconds(10));
    }
    if (handles.empty()) {
      if (deadline && Clock::now() >= *deadline) return std::nullopt;
      std::this_thread::sleep_until(*until);
      continue;
    }
    if (auto k = wait_exits(handles, until)) {
      if (at(index[*k]).poll()) return index[*k];  // the lowest index that is ready
    } else if (deadline && Clock::now() >= *deadline) {
      return std::nullopt;
    }
  }
}

}  // namespace detail

/// Waits for whichever of `children` exits first and returns its index (it is reaped, so its
/// `returncode()` is set), or `std::nullopt` when `timeout` ran out first (default: no limit).
/// A child that had exited already counts at once (the lowest index first). Any number of
/// children; one poll over their exit handles (pidfds; Windows: process handles, past the 64 of
/// WaitForMultipleObjects), no polling tick. An empty range is `std::invalid_argument`.
inline std::optional<std::size_t> wait_any(std::span<Popen> children,
                                           std::optional<Duration> timeout = std::nullopt) {
  return detail::wait_any_impl(
      children.size(), [&](std::size_t i) -> Popen& { return children[i]; }, timeout);
}
/// The same over pointers (null pointers are not allowed).
inline std::optional<std::size_t> wait_any(std::span<Popen* const> children,
                                           std::optional<Duration> timeout = std::nullopt) {
  for (Popen* p : children)
    if (!p) throw std::invalid_argument("proc::wait_any: a null Popen pointer");
  return detail::wait_any_impl(
      children.size(), [&](std::size_t i) -> Popen& { return *children[i]; }, timeout);
}

}  // namespace proc
