#pragma once
/// \file
/// `proc::mp::Process<R>` and `proc::mp::spawn`: a function of this program, run in a new
/// process (Python's `multiprocessing.Process`).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "proc/format.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/frame.hpp"
#include "proc/mp/errors.hpp"
#include "proc/mp/init.hpp"
#include "proc/popen.hpp"

namespace proc::mp {

/// How a `Process` is started. Every member has a default, so designated initializers work:
/// `proc::mp::Process p({.name = "worker", .daemon = true}, proc::mp::fn<&work>, 3)`.
struct ProcessOptions {
  /// Python's `name`; default "Process-N" (N counts the processes made by this one, from 1).
  std::string name{};
  /// Killed when this process exits, however it exits (the child watches its control channel
  /// to the parent; Windows: a kill-on-close job as well). `~Process` stops a daemon instead of
  /// waiting for it.
  bool daemon = false;
  /// The child's stdin, stdout and stderr (inherited by default), as for `proc::Popen`.
  Redirect in{}, out{}, err{};
  /// The child's working directory.
  std::optional<std::filesystem::path> cwd{};
  /// The child's whole environment (default: this process's).
  std::optional<Environment> env{};
  /// Changes on top of `env` (or this process's environment): a value sets, `nullopt` removes.
  std::vector<std::pair<std::string, std::optional<std::string>>> env_update{};
};

namespace detail {

/// How long a started child has to answer the handshake (reach init() and say hello).
inline constexpr std::chrono::seconds handshake_timeout{60};

/// A target and its arguments, kept (owning any resources passed, such as Connections) until
/// the child has started; then destroyed, which closes the parent's copies of those resources.
struct TaskBase {
  virtual ~TaskBase() = default;
  [[nodiscard]] virtual std::string key() const = 0;
  virtual void encode(Writer& w) const = 0;  // the target, then each argument
};

template <class F, class... Args>
struct Task final : TaskBase {
  F f;
  std::tuple<Args...> args;
  explicit Task(F f_, Args... a) : f(std::move(f_)), args(std::move(a)...) {
    (void)Entry<F, Args...>::registered;  // instantiates (and so registers) the entry point
    Entry<F, Args...>::check_unique();
  }
  [[nodiscard]] std::string key() const override { return Entry<F, Args...>::key(); }
  void encode(Writer& w) const override {
    w.write(f);
    std::apply([&](const auto&... a) { (w.write(a), ...); }, args);
  }
};

/// What a target may be: checked at compile time with messages that say what to use instead.
template <class F, class... Args>
constexpr void check_target() {
  static_assert(!std::is_pointer_v<F> || !std::is_function_v<std::remove_pointer_t<F>>,
                "proc::mp: a function pointer cannot travel to another process; use "
                "proc::mp::fn<&f>");
  static_assert(!std::is_function_v<F>, "proc::mp: use proc::mp::fn<&f> for a function");
  static_assert(Transferable<F>,
                "proc::mp: the target must be proc::mp::fn<&f>, a captureless lambda, or a "
                "function object whose fields are Transferable (a lambda with captures cannot "
                "travel: use a struct with fields and operator())");
  static_assert((Transferable<Args> && ...),
                "proc::mp: every argument must be Transferable (see proc::mp::codec)");
  static_assert(std::is_invocable_v<F&, Args...>,
                "proc::mp: the target cannot be called with these arguments");
  using R = result_of<F, Args...>;
  static_assert(std::is_void_v<R> || Transferable<R>,
                "proc::mp: the target's result must be Transferable (or void)");
}

inline std::string next_process_name() {
  static std::atomic<unsigned> n{0};
  return "Process-" + std::to_string(++n);
}

/// What every Process<R> does, whatever R is.
class ProcessCore {
 public:
  ProcessCore(ProcessOptions o, std::unique_ptr<TaskBase> task)
      : options_(std::move(o)), task_(std::move(task)) {
    if (options_.name.empty()) options_.name = next_process_name();
  }
  ProcessCore(const ProcessCore&) = delete;
  ProcessCore& operator=(const ProcessCore&) = delete;
  ~ProcessCore() { finish_quietly(); }

  [[nodiscard]] const std::string& name() const noexcept { return options_.name; }
  [[nodiscard]] bool daemon() const noexcept { return options_.daemon; }
  [[nodiscard]] bool started() const noexcept { return popen_.has_value(); }

  void start() {
    if (started()) throw std::logic_error("proc::mp::Process::start: already started");
    if (!state().init_called)
      throw SpawnError(std::make_error_code(std::errc::operation_not_permitted), self_argv0(),
                       std::nullopt,
                       "proc::mp: proc::mp::init() was not called in this process; make it the "
                       "first statement of main (without it a child would run main again)");
    HandlePair ends = channel_pair(true);
    FrameChannel parent_end(ends.first);
    FrameChannel child_end(ends.second);

    // The task frame: kind, key, name, flags, the payload (target and arguments, with their
    // resources' handle slots), then the table of the handles' values in the child.
    Writer w;
    FrameChannel::begin(w);
    w.write_u8(static_cast<std::uint8_t>(Kind::task));
    w.write(task_->key());
    w.write(options_.name);
    w.write_u8(options_.daemon ? task_daemon : 0);
    const std::size_t length_at = w.buffer().size();
    w.write_u64(0);
    const std::size_t payload_from = w.size();
    task_->encode(w);
    std::uint64_t payload = w.size() - payload_from;
    std::memcpy(w.buffer().data() + length_at, &payload, sizeof payload);

    Options o;
    o.in = options_.in;
    o.out = options_.out;
    o.err = options_.err;
    o.cwd = options_.cwd;
    o.env = options_.env;
    o.env_update = options_.env_update;
    o.env_update.emplace_back(marker_variable, marker_value(child_end.handle()));
    o.executable = self_executable();
    // The control channel and every resource handle reach the child at the same values.
    std::vector<native_handle> passed = w.handles();
    w.write_u64(passed.size());
    for (native_handle h : passed) w.write_u64(handle_to_u64(h));
    passed.insert(passed.begin(), child_end.handle());
    daemon_options(o, options_.daemon);
    popen_.emplace(proc::detail::InheritTag{}, std::vector<std::string>{self_argv0()}, o,
                   std::move(passed));
    child_end.close();  // only the child holds its end now: its exit is our EOF
    ctl_ = std::move(parent_end);

    handshake();
    if (!ctl_.send(w)) {
      // The child went away between hello and task: join() reports how it ended.
    }
    task_.reset();  // closes the parent's copies of resources passed to the child
  }

  /// The result frame, waiting up to `deadline`: true once it is in (or the child ended
  /// without one, recorded for outcome()).
  bool await_result(std::optional<Clock::time_point> deadline) {
    require_started("join");
    if (!outcome_) {
      std::lock_guard lock(ctl_.receive_mutex());
      try {
        auto got = ctl_.receive(deadline);
        if (got == FrameChannel::Got::timeout) return false;
        if (got == FrameChannel::Got::frame)
          outcome_ = ctl_.take();
        else
          outcome_ = std::string();
      } catch (const PeerDiedMidMessage&) {
        outcome_ = std::string();  // died while sending its result
      }
    }
    if (!exited_) {
      if (!popen_->wait_for(deadline ? std::max(Clock::duration::zero(), *deadline - Clock::now())
                                     : std::chrono::hours(24 * 365 * 100)))
        return false;
      exited_ = true;
    }
    return true;
  }

  /// After await_result: a Reader over the value (the frame's message), or throws the child's
  /// exception (RemoteError) or ProcessDied.
  Reader value_reader() {
    if (outcome_taken_)
      throw std::logic_error("proc::mp::Process::join: the result was already taken");
    outcome_taken_ = true;
    const std::string& f = *outcome_;
    if (f.empty()) {
      int rc = *popen_->returncode();
      throw ProcessDied(popen_->pid(), rc,
                        "proc::mp: " + options_.name + " (pid " + std::to_string(popen_->pid()) +
                            ") ended without a result: " + proc::to_string(proc::ExitStatus(rc)));
    }
    Reader r(f);
    auto kind = static_cast<Kind>(r.read_u8());
    if (kind == Kind::error) {
      std::string type = r.read<std::string>();
      std::string what = r.read<std::string>();
      throw RemoteError(std::move(type), std::move(what));
    }
    if (kind != Kind::value) r.fail("not a result frame");
    return Reader(std::string_view(f).substr(1));
  }

  /// The parent's end of the control channel (for the pool's dispatcher).
  FrameChannel& control() noexcept { return ctl_; }

  [[nodiscard]] bool is_alive() { return started() && !popen_->poll(); }
  [[nodiscard]] int pid() const {
    require_started("pid");
    return popen_->pid();
  }
  std::optional<int> exitcode() { return started() ? popen_->poll() : std::nullopt; }
  proc::Popen& popen() {
    require_started("popen");
    return *popen_;
  }

  /// Ends the child if it still runs (daemon: stopped; else waited for), never throwing.
  void finish_quietly() noexcept {
    if (!popen_) return;
    try {
      if (options_.daemon && !popen_->poll()) {
        popen_->stop(std::chrono::seconds(1));
      } else {
        // A child blocked sending a result nobody will read ends with EPIPE instead.
        ctl_.close();
        popen_->wait();
      }
    } catch (...) {
    }
  }

 private:
  void require_started(const char* what) const {
    if (!popen_)
      throw std::logic_error(std::string("proc::mp::Process::") + what + ": not started");
  }

  // Waits for the child's hello: it reached init() in a program that speaks this protocol.
  void handshake() {
    auto deadline = Clock::now() + handshake_timeout;
    auto fail = [&](const std::string& why) -> SpawnError {
      try {
        popen_->kill();
        popen_->wait();
      } catch (...) {
      }
      return SpawnError(std::make_error_code(std::errc::protocol_error), self_argv0(), options_.cwd,
                        "proc::mp: " + options_.name + ": " + why);
    };
    std::lock_guard lock(ctl_.receive_mutex());
    FrameChannel::Got got;
    try {
      got = ctl_.receive(deadline);
    } catch (const PeerDiedMidMessage&) {
      got = FrameChannel::Got::closed;
    }
    if (got == FrameChannel::Got::timeout)
      throw fail("the child did not answer within " + std::to_string(handshake_timeout.count()) +
                 " s: does main call proc::mp::init() first?");
    if (got == FrameChannel::Got::closed) {
      int rc = popen_->wait();
      throw SpawnError(std::make_error_code(std::errc::protocol_error), self_argv0(), options_.cwd,
                       "proc::mp: " + options_.name + ": the child " +
                           proc::to_string(proc::ExitStatus(rc)) +
                           " before answering: is proc::mp::init() the first statement of main?");
    }
    Reader r(ctl_.view());
    bool ok = r.remaining() >= 17 && r.read_u8() == static_cast<std::uint8_t>(Kind::hello) &&
              r.read_u64() == hello_magic;
    ctl_.consume();
    if (!ok) throw fail("the child answered something other than proc::mp's hello");
  }

  ProcessOptions options_;
  std::unique_ptr<TaskBase> task_;
  std::optional<proc::Popen> popen_;
  FrameChannel ctl_;
  std::optional<std::string> outcome_;  // the result frame; empty: ended without one
  bool outcome_taken_ = false;
  bool exited_ = false;
};

}  // namespace detail

/// A target of this program run in a new process (Python's `multiprocessing.Process`); `R` is
/// what the target returns (deduced).
///
/// The child is a fresh run of this program's own file, in which `proc::mp::init()` (the first
/// statement of `main`) runs the target with a copy of the arguments and sends back the result.
/// Targets: `proc::mp::fn<&f>`, captureless lambdas, and function objects whose fields are
/// Transferable (they travel with it: C++'s "subclass Process and override run()").
///
/// - `join()` returns the result; the target's exception comes back as `RemoteError` (type name
///   and `what()`); a child that ended without a result (a signal, `exit`, `abort`, a crash) is
///   `ProcessDied`. Never a hang.
/// - The destructor stops a daemon and waits for any other child (as Python joins non-daemon
///   children at exit); no child is left a zombie.
/// - Misuse (start twice, join before start, a moved-from object) is `std::logic_error`.
template <class R>
class Process {
 public:
  /// A process for `target(args...)`, not started yet.
  template <class F, class... Args>
  explicit Process(F target, Args... args)
      : Process(ProcessOptions{}, std::move(target), std::move(args)...) {}
  /// The same, with options.
  template <class F, class... Args>
  Process(ProcessOptions options, F target, Args... args) {
    detail::check_target<F, Args...>();
    static_assert(std::is_same_v<R, detail::result_of<F, Args...>>,
                  "proc::mp::Process<R>: R is not what the target returns");
    core_ = std::make_unique<detail::ProcessCore>(
        std::move(options),
        std::make_unique<detail::Task<F, Args...>>(std::move(target), std::move(args)...));
  }

  Process(Process&&) noexcept = default;
  Process& operator=(Process&& other) noexcept {
    if (this != &other) core_ = std::move(other.core_);
    return *this;
  }

  /// Starts the child: returns once it has reached `init()` and has the task. Throws
  /// `SpawnError` when it cannot be started (or never answers: `init()` missing), and
  /// `std::logic_error` when called twice.
  void start() { core().start(); }

  /// Waits for the child and returns the target's result (see the class comment for errors).
  /// The result can be taken once; `std::logic_error` after that.
  R join() {
    core().await_result(std::nullopt);
    return take();
  }

  /// Waits up to `timeout`: the result, or `std::nullopt` while the child still runs (for
  /// `R = void`: whether it has finished).
  auto join_for(Duration timeout) {
    bool done = core().await_result(proc::detail::deadline_after(timeout.value));
    if constexpr (std::is_void_v<R>) {
      if (done) take();
      return done;
    } else {
      return done ? std::optional<R>(take()) : std::nullopt;
    }
  }

  [[nodiscard]] bool is_alive() { return core().is_alive(); }
  [[nodiscard]] int pid() const { return core().pid(); }
  [[nodiscard]] const std::string& name() const { return core().name(); }
  [[nodiscard]] bool daemon() const { return core().daemon(); }
  /// The child's returncode once it has exited (−N: killed by signal N), else `std::nullopt`.
  std::optional<int> exitcode() { return core().exitcode(); }
  /// SIGTERM (Windows: TerminateProcess).
  void terminate() { core().popen().terminate(); }
  /// SIGKILL (Windows: TerminateProcess).
  void kill() { core().popen().kill(); }
  /// Terminates, waits up to `grace`, then kills; returns the returncode.
  int stop(Duration grace) { return core().popen().stop(grace); }
  /// The process underneath.
  proc::Popen& popen() { return core().popen(); }

 private:
  detail::ProcessCore& core() const {
    if (!core_) throw std::logic_error("proc::mp::Process: used after being moved from");
    return *core_;
  }
  R take() {
    Reader r = core().value_reader();
    if constexpr (std::is_void_v<R>) {
      (void)decode_message<std::monostate>(r);
    } else {
      return decode_message<R>(r);
    }
  }

  std::unique_ptr<detail::ProcessCore> core_;
};

template <class F, class... Args>
Process(F, Args...) -> Process<detail::result_of<F, Args...>>;
template <class F, class... Args>
Process(ProcessOptions, F, Args...) -> Process<detail::result_of<F, Args...>>;

/// Constructs and starts a `Process` for `target(args...)`.
template <class F, class... Args>
auto spawn(F target, Args... args) {
  Process<detail::result_of<F, Args...>> p(std::move(target), std::move(args)...);
  p.start();
  return p;
}
/// The same, with options.
template <class F, class... Args>
auto spawn(ProcessOptions options, F target, Args... args) {
  Process<detail::result_of<F, Args...>> p(std::move(options), std::move(target),
                                           std::move(args)...);
  p.start();
  return p;
}

}  // namespace proc::mp
