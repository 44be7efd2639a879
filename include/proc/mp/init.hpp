#pragma once
/// \file
/// `proc::mp::init()`, entry points (`proc::mp::fn<&f>`, captureless lambdas, function objects),
/// and what a process knows about itself (`current_process()`, `parent_pid()`, `cpu_count()`).

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/frame.hpp"
#include "proc/mp/detail/platform.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp {

/// A plain function as a target: `proc::mp::fn<&square>`. An empty object whose type names the
/// function, so the child finds the same function (a raw function pointer could not travel).
template <auto F>
struct fn_t {
  static_assert(std::is_pointer_v<decltype(F)> &&
                    std::is_function_v<std::remove_pointer_t<decltype(F)>>,
                "proc::mp::fn<&f> takes the address of a function");
  template <class... A>
  decltype(auto) operator()(A&&... a) const {
    return F(std::forward<A>(a)...);
  }
};
/// `proc::mp::fn<&f>`: the function `f` as a target for `Process`, `spawn` and `Pool`.
template <auto F>
inline constexpr fn_t<F> fn{};

/// What `current_process()` returns (Python's `current_process().name` and `.pid`).
struct ProcessInfo {
  std::string name;  ///< "MainProcess" in the first process; the Process's name in a child
  int pid = 0;
};

namespace detail {

/// What this process knows about its place among proc::mp processes.
struct State {
  std::atomic<bool> init_called{false};
  bool child = false;
  std::string name = "MainProcess";
};
inline State& state() {
  static State* s = new State();  // never destroyed: children exit from inside init()
  return *s;
}

/// The kinds of frame on a control channel.
enum class Kind : std::uint8_t { hello = 1, task = 2, value = 3, error = 4, stop = 5 };
/// The first word of a child's hello: it is a proc::mp child of this very protocol.
inline constexpr std::uint64_t hello_magic = 0x31504D434F525021ULL;  // "!PROCMP1"

/// Task flags.
inline constexpr std::uint8_t task_daemon = 1;

/// Runs one entry point in the child: decodes the target and its arguments from `args`, calls
/// it, and sends the value frame on `ch` (an exception propagates to the caller).
using Invoker = void (*)(Reader& args, FrameChannel& ch, Writer& scratch);

/// Every entry point of this program, by key. Filled during static initialisation in every
/// process of the program (so a child finds what its parent named); two different entry points
/// with one key are remembered as ambiguous and refused when used, never confused.
class Registry {
 public:
  static Registry& instance() {
    static Registry* r = new Registry();  // used during static initialisation; never destroyed
    return *r;
  }
  void add(std::string key, Invoker f) {
    std::lock_guard lock(m_);
    auto [it, inserted] = map_.emplace(std::move(key), Slot{f, false});
    if (!inserted && it->second.invoke != f) it->second.ambiguous = true;
  }
  struct Found {
    Invoker invoke = nullptr;
    bool ambiguous = false;
  };
  Found find(const std::string& key) {
    std::lock_guard lock(m_);
    auto it = map_.find(key);
    if (it == map_.end()) return {};
    return {it->second.invoke, it->second.ambiguous};
  }
  /// In a child: the entry point of `key`, or SerializationError when there is none or two.
  Invoker get(const std::string& key) {
    Found e = find(key);
    if (!e.invoke)
      throw SerializationError("proc::mp: no entry point '" + demangle(key.c_str()) +
                               "' in this program");
    if (e.ambiguous) throw SerializationError(ambiguous(key));
    return e.invoke;
  }
  /// What is wrong with a key that two callables share.
  static std::string ambiguous(const std::string& key) {
    // With RTTI, types in anonymous namespaces of two source files can mangle alike.
    return "proc::mp: two different callables share the entry point key '" + demangle(key.c_str()) +
           "' (two types of one name in anonymous namespaces of different files?): rename one";
  }

 private:
  struct Slot {
    Invoker invoke;
    bool ambiguous;
  };
  proc::detail::Mutex m_;
  std::unordered_map<std::string, Slot> map_;
};

/// Sends a value frame: `r` encoded as a message of its type.
template <class R>
void send_value(FrameChannel& ch, Writer& w, const R& r) {
  FrameChannel::begin(w);
  w.write_u8(static_cast<std::uint8_t>(Kind::value));
  encode_message(w, r);
  ch.send(w);  // a parent that has gone does not want it
}

/// The result type of calling the target with its (decoded, moved) arguments, as it travels.
template <class F, class... Args>
using result_of = std::conditional_t<std::is_void_v<std::invoke_result_t<F&, Args...>>, void,
                                     std::decay_t<std::invoke_result_t<F&, Args...>>>;

/// The entry point for target type F called with Args: registered during static
/// initialisation of every process of the program as soon as some code names it.
template <class F, class... Args>
struct Entry {
  using R = result_of<F, Args...>;

  static std::string key() {
#if defined(__cpp_rtti) || defined(__GXX_RTTI) || defined(_CPPRTTI)
    return typeid(Entry).name();  // mangled: unique even for g++'s same-looking lambdas
#else
    return std::string(type_name<Entry>());
#endif
  }

  static void invoke(Reader& in, FrameChannel& ch, Writer& w) {
    F f = in.read<F>();
    std::tuple<Args...> args{in.read<Args>()...};  // braced: read left to right
    if (in.remaining() != 0) in.fail("bytes left after the arguments");
    if constexpr (std::is_void_v<R>) {
      std::apply(f, std::move(args));
      send_value(ch, w, std::monostate{});
    } else {
      R r = std::apply(f, std::move(args));
      send_value(ch, w, r);
    }
  }

  static inline const bool registered = (Registry::instance().add(key(), &invoke), true);

  /// In the parent, before a child is asked to run this entry point: `std::logic_error` when
  /// another callable of the program has its key. Looked up once, at the first use (after static
  /// initialisation, when every entry point is registered); a guard check after that.
  static void check_unique() {
    static const bool clash = Registry::instance().find(key()).ambiguous;
    if (clash) throw std::logic_error(Registry::ambiguous(key()));
  }
};

/// Sends an error frame for the exception being handled.
inline void send_current_error(FrameChannel& ch, Writer& w) noexcept {
  try {
    std::string type = "unknown exception", what;
    try {
      throw;
    } catch (const std::exception& e) {
      type = demangle(typeid(e).name());
      what = e.what();
    } catch (...) {
    }
    FrameChannel::begin(w);
    w.write_u8(static_cast<std::uint8_t>(Kind::error));
    w.write(type);
    w.write(what);
    ch.send(w);
  } catch (...) {
  }
}

/// Reads a task frame's fields (see ProcessCore::start in process.hpp for the layout).
struct TaskFrame {
  std::string key;
  std::string name;
  std::uint8_t flags = 0;
  std::string_view payload;
  std::vector<native_handle> handles;
};
inline TaskFrame parse_task(std::string_view frame) {
  Reader r(frame);
  TaskFrame t;
  if (r.read_u8() != static_cast<std::uint8_t>(Kind::task)) r.fail("not a task frame");
  t.key = r.read<std::string>();
  t.name = r.read<std::string>();
  t.flags = r.read_u8();
  std::uint64_t payload = r.read_u64();
  if (payload > r.remaining()) r.fail("task payload longer than the frame");
  t.payload = r.take(static_cast<std::size_t>(payload));
  std::uint64_t n = r.read_u64();
  if (n > r.remaining() / 8) r.fail("handle table longer than the frame");
  for (std::uint64_t i = 0; i < n; ++i) t.handles.push_back(handle_from_u64(r.read_u64()));
  return t;
}

/// Looks up and runs the task in `frame`; exceptions go back to the parent as an error frame.
/// Returns the exit status the child should end with.
inline int run_task(std::string_view frame, FrameChannel& ch, Writer& w) {
  try {
    TaskFrame t = parse_task(frame);
    for (native_handle h : t.handles) set_inheritable(h, false);
    state().name = t.name;
    if (t.flags & task_daemon) watch_parent(ch.handle());
    Invoker invoke = Registry::instance().get(t.key);
    Reader args(t.payload, t.handles);
    invoke(args, ch, w);
    return 0;
  } catch (...) {
    send_current_error(ch, w);
    return 1;
  }
}

/// The life of a child: hello, one task, its result, exit. Never returns.
[[noreturn]] inline void child_main(native_handle control) {
  state().child = true;
  int status = 1;
  {
    FrameChannel ch(control);
    Writer w;
    try {
      set_inheritable(control, false);
      FrameChannel::begin(w);
      w.write_u8(static_cast<std::uint8_t>(Kind::hello));
      w.write_u64(hello_magic);
      w.write_u64(static_cast<std::uint64_t>(current_pid()));
      if (ch.send(w) && ch.receive(std::nullopt) == FrameChannel::Got::frame)
        status = run_task(ch.view(), ch, w);
    } catch (...) {
      status = 1;  // the parent went away before the task arrived
    }
  }
  std::exit(status);  // static destructors and atexit handlers run, stdio is flushed
}

}  // namespace detail

/// Makes this program able to run its own functions in other processes. Call it as the first
/// statement of `main`, before anything else (threads, I/O, argument parsing).
///
/// In the process you started it returns at once. In a process that proc::mp started as a child
/// (a fresh run of the same program file) it runs the requested target with its arguments,
/// sends back the result or the exception, and exits: it never returns there, so the rest of
/// `main` does not run a second time. Every static initialiser has run by then.
///
/// A process that never called it refuses to start children (`SpawnError`): they would run
/// `main` again instead of the target.
inline void init() {
  detail::State& s = detail::state();
  if (s.init_called.exchange(true)) return;
  if (auto control = detail::take_marker()) detail::child_main(*control);
}

/// This process's name and PID ("MainProcess" in the first process; a child has the name of its
/// Process).
inline ProcessInfo current_process() { return {detail::state().name, detail::current_pid()}; }

/// The PID of this process's parent.
inline int parent_pid() { return detail::parent_pid(); }

/// How many CPUs this machine has (at least 1).
inline unsigned cpu_count() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

}  // namespace proc::mp
