#pragma once
/// \file
/// `proc::mp::Pool` and `proc::mp::Future`: a pool of worker processes that run tasks (Python's
/// `multiprocessing.Pool` and `concurrent.futures.ProcessPoolExecutor`), without their hangs.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/frame.hpp"
#include "proc/mp/errors.hpp"
#include "proc/mp/init.hpp"
#include "proc/mp/process.hpp"

namespace proc::mp {

/// How a `Pool` works. Designated initializers: `proc::mp::Pool pool({.workers = 4})`.
struct PoolOptions {
  /// How many worker processes (default: `cpu_count()`).
  unsigned workers = cpu_count();
  /// A worker is replaced by a fresh one after this many tasks (default: never).
  std::optional<unsigned> max_tasks_per_worker{};
  /// A task running longer than this has its worker killed (and replaced): `TaskTimeout`.
  std::optional<Duration> task_timeout{};
  /// How each worker is started; workers are daemons: they end with this process.
  ProcessOptions worker{.daemon = true};
};

namespace detail {

/// The key of the pool workers' own entry point.
inline constexpr const char* worker_key = "proc::mp::worker";

/// The worker's life in the child: tasks in, results out, until the pool says stop (or goes).
inline void worker_loop(Reader&, FrameChannel& ch, Writer& w) {
  ignore_interrupts();  // Ctrl+C reaches the parent, which decides
  ch.consume();
  for (;;) {
    FrameChannel::Got got;
    try {
      got = ch.receive(std::nullopt);
    } catch (const PeerDiedMidMessage&) {
      return;
    }
    if (got != FrameChannel::Got::frame) return;  // the pool has gone
    std::string_view frame = ch.view();
    if (frame.empty() || frame[0] == static_cast<char>(Kind::stop)) return;
    try {
      Reader r(frame);
      if (r.read_u8() != static_cast<std::uint8_t>(Kind::task)) r.fail("not a task frame");
      std::string key = r.read<std::string>();
      Invoker invoke = Registry::instance().get(key);
      Reader args(r.take(r.remaining()));
      invoke(args, ch, w);
    } catch (...) {
      send_current_error(ch, w);
    }
    ch.consume();
  }
}
inline const bool worker_registered = (Registry::instance().add(worker_key, &worker_loop), true);

/// The "target" that starts a worker: the worker loop, with nothing to decode.
struct WorkerTask final : TaskBase {
  [[nodiscard]] std::string key() const override {
    (void)worker_registered;
    return worker_key;
  }
  void encode(Writer&) const override {}
};

/// One task: its frame, and what became of it. Shared by the pool and the task's Future.
struct TaskSlot {
  enum class State { queued, running, done };
  std::string frame;  // the task frame, ready to send (dropped once sent)
  State state = State::queued;
  std::string result;        // the worker's result frame (value or error)
  std::exception_ptr error;  // WorkerDied, TaskTimeout, TaskCancelled, PoolBroken
  bool cancel_requested = false;
  std::optional<Clock::time_point> deadline;
  std::mutex m;
  std::condition_variable cv;
  // imap_unordered: where to report completion.
  std::function<void(const std::shared_ptr<TaskSlot>&)> on_done;
};

class PoolCore {
 public:
  [[nodiscard]] std::size_t workers() const noexcept { return options_.workers; }
  explicit PoolCore(PoolOptions o) : options_(std::move(o)) {
    if (options_.workers == 0)
      throw std::invalid_argument("proc::mp::Pool: workers must be at least 1");
    options_.worker.daemon = true;
    workers_.resize(options_.workers);
    for (auto& w : workers_) {
      try {
        start_worker(w);
      } catch (const std::exception& e) {
        // A worker that cannot start (it dies before init() answers, say) would fail again: the
        // pool is broken from the start, rather than a loop of respawns.
        for (auto& k : workers_) kill_worker(k);
        throw PoolBroken(std::string("proc::mp: the pool's workers cannot start: ") + e.what());
      }
    }
    thread_ = std::thread([this] { dispatch(); });
  }
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  ~PoolCore() {
    close();
    join();
  }

  std::shared_ptr<TaskSlot> submit(std::string frame) {
    auto slot = std::make_shared<TaskSlot>();
    slot->frame = std::move(frame);
    {
      std::lock_guard lock(m_);
      if (closed_) throw std::logic_error("proc::mp::Pool::submit: the pool is closed");
      if (broken_)
        fail(*slot, broken_);
      else
        queue_.push_back(slot);
    }
    waker_.wake();
    return slot;
  }
  void submit_many(std::vector<std::shared_ptr<TaskSlot>>& slots) {
    bool failed = false;
    {
      std::lock_guard lock(m_);
      if (closed_) throw std::logic_error("proc::mp::Pool::map: the pool is closed");
      for (auto& s : slots) {
        if (broken_)
          fail(*s, broken_), failed = true;
        else
          queue_.push_back(s);
      }
    }
    if (failed)
      for (auto& s : slots) notify(s);
    waker_.wake();
  }

  /// Cancels a task: a queued one is dropped, a running one has its worker killed (and replaced).
  /// False when it had finished already.
  bool cancel(const std::shared_ptr<TaskSlot>& slot) {
    {
      std::lock_guard lock(m_);
      std::lock_guard slock(slot->m);
      if (slot->state == TaskSlot::State::done) return false;
      if (slot->state == TaskSlot::State::queued) {
        auto it = std::find(queue_.begin(), queue_.end(), slot);
        if (it != queue_.end()) queue_.erase(it);
        finish_locked(*slot, std::make_exception_ptr(TaskCancelled(
                                 "proc::mp: the task was cancelled before it started")));
        notify(slot);
        return true;
      }
      slot->cancel_requested = true;
    }
    waker_.wake();
    return true;
  }

  void close() {
    {
      std::lock_guard lock(m_);
      closed_ = true;
    }
    waker_.wake();
  }

  /// After close(): waits until every task has finished and every worker has exited.
  void join() {
    {
      std::lock_guard lock(m_);
      if (!closed_) throw std::logic_error("proc::mp::Pool::join: close() or terminate() first");
    }
    if (thread_.joinable()) thread_.join();
  }

  /// Stops now: every worker is killed, every unfinished task fails with PoolBroken.
  void terminate() {
    {
      std::lock_guard lock(m_);
      closed_ = true;
      terminating_ = true;
      if (!broken_)
        broken_ = std::make_exception_ptr(PoolBroken("proc::mp: the pool was terminated"));
    }
    waker_.wake();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Worker {
    std::unique_ptr<ProcessCore> proc;
    std::shared_ptr<TaskSlot> task;  // the task it is running
    unsigned done = 0;               // tasks it finished
    bool retiring = false;           // sent stop; waiting for its exit
  };

  static void fail(TaskSlot& s, std::exception_ptr e) {
    std::lock_guard lock(s.m);
    s.state = TaskSlot::State::done;
    s.error = std::move(e);
    s.cv.notify_all();
  }
  static void finish_locked(TaskSlot& s, std::exception_ptr e) {
    s.state = TaskSlot::State::done;
    s.error = std::move(e);
    s.frame.clear();
    s.cv.notify_all();
  }
  static void notify(const std::shared_ptr<TaskSlot>& s) {
    if (s->on_done) s->on_done(s);
  }

  void start_worker(Worker& w) {
    w.proc = std::make_unique<ProcessCore>(options_.worker, std::make_unique<WorkerTask>());
    w.proc->start();
    w.task.reset();
    w.done = 0;
    w.retiring = false;
  }
  static void kill_worker(Worker& w) noexcept {
    if (!w.proc) return;
    try {
      if (w.proc->started()) {
        w.proc->popen().kill();
        w.proc->popen().wait();
      }
    } catch (...) {
    }
    w.proc.reset();
  }

  // Ends a task with `e` (or its result already stored) and tells whoever waits.
  void complete(const std::shared_ptr<TaskSlot>& slot, std::string result, std::exception_ptr e) {
    {
      std::lock_guard lock(slot->m);
      slot->result = std::move(result);
      finish_locked(*slot, std::move(e));
    }
    notify(slot);
  }

  // A worker is gone (exited, killed, or its channel ended): its task (if any) fails with
  // `why`, and a fresh worker takes its place unless the pool is winding down.
  void replace(Worker& w, std::exception_ptr why) {
    std::shared_ptr<TaskSlot> task = std::move(w.task);
    const bool idle_before_any = !task && w.done == 0 && !w.retiring;
    kill_worker(w);
    if (task) complete(task, {}, why);
    if (idle_before_any) {
      // It died before it ever ran a task: a broken start, which a new worker would repeat.
      std::lock_guard lock(m_);
      if (!broken_)
        broken_ = std::make_exception_ptr(
            PoolBroken("proc::mp: a pool worker died before running any task (a broken start "
                       "of the program?); the pool is broken"));
      return;
    }
    {
      std::lock_guard lock(m_);
      if (terminating_ || broken_ || (closed_ && queue_.empty())) return;
    }
    try {
      start_worker(w);
    } catch (const std::exception& e) {
      std::lock_guard lock(m_);
      if (!broken_)
        broken_ = std::make_exception_ptr(
            PoolBroken(std::string("proc::mp: a pool worker could not be started: ") + e.what()));
    }
  }

  static std::string died_message(Worker& w, int rc) {
    return "proc::mp: the pool worker (pid " + std::to_string(w.proc->pid()) +
           ") running this task " + proc::to_string(proc::ExitStatus(rc));
  }

  void dispatch() {
    std::vector<native_handle> handles;
    for (;;) {
      // Hand queued tasks to idle workers; fail everything once broken; stop when done.
      std::optional<Clock::time_point> wake;
      {
        std::unique_lock lock(m_);
        if (broken_) {
          for (auto& s : queue_) {
            fail(*s, broken_);
            lock.unlock();
            notify(s);
            lock.lock();
          }
          queue_.clear();
        }
      }
      for (auto& w : workers_) {
        if (!w.proc || w.task || w.retiring) continue;
        std::shared_ptr<TaskSlot> next;
        {
          std::lock_guard lock(m_);
          if (queue_.empty() || broken_) break;
          next = queue_.front();
          queue_.pop_front();
        }
        {
          std::lock_guard slock(next->m);
          next->state = TaskSlot::State::running;
          if (options_.task_timeout)
            next->deadline = proc::detail::deadline_after(options_.task_timeout->value);
        }
        w.task = next;
        if (!w.proc->control().send_bytes(next->frame)) {
          // Gone already: noticed below as its exit.
        }
        next->frame.clear();
        next->frame.shrink_to_fit();
      }
      bool all_idle = true, any_worker = false;
      for (auto& w : workers_) {
        if (w.proc) any_worker = true;
        if (w.task) all_idle = false;
      }
      {
        std::lock_guard lock(m_);
        if (terminating_) break;
        if (closed_ && queue_.empty() && all_idle) break;
        if (broken_ && all_idle) break;
        if (!any_worker && !queue_.empty() && !broken_)
          broken_ = std::make_exception_ptr(PoolBroken("proc::mp: the pool has no workers"));
      }
      // Timeouts and cancellations of running tasks.
      for (auto& w : workers_) {
        if (!w.task) continue;
        bool cancel, late = false;
        {
          std::lock_guard slock(w.task->m);
          cancel = w.task->cancel_requested;
          if (w.task->deadline) {
            if (Clock::now() >= *w.task->deadline)
              late = true;
            else if (!wake || *w.task->deadline < *wake)
              wake = w.task->deadline;
          }
        }
        if (cancel)
          replace(w, std::make_exception_ptr(TaskCancelled(
                         "proc::mp: the task was cancelled while it ran (its worker was killed)")));
        else if (late)
          replace(w, std::make_exception_ptr(TaskTimeout(
                         "proc::mp: the task ran longer than the pool's task_timeout (its worker "
                         "was killed)")));
      }
      // Wait for a result, a worker's exit, a wake-up or the next deadline.
      handles.assign(1, waker_.handle());
      std::vector<std::pair<std::size_t, int>> what;  // (worker, 0: channel, 1: exit)
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        Worker& w = workers_[i];
        if (!w.proc) continue;
        handles.push_back(w.proc->control().handle());
        what.push_back({i, 0});
        native_handle exit = w.proc->popen().native_handle();
        if (exit != invalid_handle) {
          handles.push_back(exit);
          what.push_back({i, 1});
        }
      }
      bool by_pid = false;
      for (auto& w : workers_)
        by_pid = by_pid || (w.proc && w.proc->popen().native_handle() == invalid_handle);
      if (by_pid && !wake) wake = Clock::now() + std::chrono::milliseconds(100);  // no pidfd
      auto ready = wait_readable(handles, wake);
      if (!ready.empty() && ready.front() == 0) waker_.drain();
      std::vector<bool> seen(workers_.size(), false);
      for (std::size_t k : ready) {
        if (k == 0) continue;
        auto [i, kind] = what[k - 1];
        if (seen[i]) continue;
        seen[i] = true;
        service(workers_[i]);
      }
      // Workers without a pidfd, or that exited without closing: look at each.
      for (std::size_t i = 0; i < workers_.size(); ++i)
        if (!seen[i] && workers_[i].proc && workers_[i].proc->exitcode()) service(workers_[i]);
    }
    // Wind down: tell every worker to stop, wait for it; kill it when terminating.
    for (auto& w : workers_) {
      if (!w.proc) continue;
      std::unique_lock lock(m_);
      bool kill = terminating_;
      lock.unlock();
      if (kill) {
        if (w.task) complete(w.task, {}, broken_);  // NOLINT: terminating_ implies broken_
        w.task.reset();
        kill_worker(w);
        continue;
      }
      Writer stop;
      FrameChannel::begin(stop);
      stop.write_u8(static_cast<std::uint8_t>(Kind::stop));
      w.proc->control().send(stop);
    }
    for (auto& w : workers_) {
      if (!w.proc) continue;
      try {
        if (!w.proc->popen().wait_for(std::chrono::seconds(10))) w.proc->popen().kill();
        w.proc->popen().wait();
      } catch (...) {
      }
      w.proc.reset();
    }
    std::deque<std::shared_ptr<TaskSlot>> left;
    {
      std::lock_guard lock(m_);
      left.swap(queue_);
    }
    for (auto& s : left) {
      fail(*s, broken_ ? broken_
                       : std::make_exception_ptr(PoolBroken("proc::mp: the pool was closed")));
      notify(s);
    }
  }

  // A worker's channel or exit handle is ready: take its result, or see it gone.
  void service(Worker& w) {
    FrameChannel& ch = w.proc->control();
    for (;;) {
      FrameChannel::Got got;
      try {
        std::lock_guard lock(ch.receive_mutex());
        got = ch.receive(Clock::now());  // what is there, without waiting
        if (got == FrameChannel::Got::frame) {
          std::string result = ch.take();
          if (w.task) {
            auto task = std::move(w.task);
            ++w.done;
            complete(task, std::move(result), nullptr);
          }
          if (options_.max_tasks_per_worker && w.done >= *options_.max_tasks_per_worker) {
            Writer stop;
            FrameChannel::begin(stop);
            stop.write_u8(static_cast<std::uint8_t>(Kind::stop));
            ch.send(stop);
            w.retiring = true;
          }
          continue;  // another frame may be there already
        }
      } catch (const PeerDiedMidMessage&) {
        got = FrameChannel::Got::closed;
      }
      if (got == FrameChannel::Got::timeout) {
        // Nothing whole to read: has it exited?
        if (!w.proc->exitcode()) return;
      }
      // The channel ended or the process exited: the worker is gone.
      int rc = 0;
      try {
        rc = w.proc->popen().wait();
      } catch (...) {
      }
      if (w.retiring && !w.task) {
        w.proc.reset();
        w.retiring = false;
        std::unique_lock lock(m_);
        bool wanted = !(terminating_ || broken_ || (closed_ && queue_.empty()));
        lock.unlock();
        if (wanted) {
          try {
            start_worker(w);
          } catch (const std::exception& e) {
            std::lock_guard l2(m_);
            if (!broken_)
              broken_ = std::make_exception_ptr(PoolBroken(
                  std::string("proc::mp: a pool worker could not be started: ") + e.what()));
          }
        }
        return;
      }
      int pid = w.proc->pid();
      replace(w, std::make_exception_ptr(WorkerDied(pid, rc, died_message(w, rc))));
      return;
    }
  }

  PoolOptions options_;
  std::vector<Worker> workers_;
  proc::detail::Mutex m_;
  std::deque<std::shared_ptr<TaskSlot>> queue_;
  bool closed_ = false;
  bool terminating_ = false;
  std::exception_ptr broken_;
  Waker waker_;
  std::thread thread_;
};

/// One chunk of a `Pool::map`: the target and its items, run one after another in a worker.
template <class F, class A>
struct MapChunk {
  F f;
  std::vector<A> items;
  auto operator()() {
    using R = std::invoke_result_t<F&, A>;
    if constexpr (std::is_void_v<R>) {
      for (A& x : items) f(std::move(x));
    } else {
      std::vector<std::decay_t<R>> out;
      out.reserve(items.size());
      for (A& x : items) out.push_back(f(std::move(x)));
      return out;
    }
  }
};

/// A task's frame for a worker: kind, entry key, then the target and the arguments.
template <class F, class... Args>
std::string task_frame(const F& f, const Args&... args) {
  (void)Entry<F, Args...>::registered;
  Entry<F, Args...>::check_unique();
  Writer w;
  FrameChannel::begin(w);
  w.write_u8(static_cast<std::uint8_t>(Kind::task));
  w.write(Entry<F, Args...>::key());
  w.write(f);
  (w.write(args), ...);
  if (!w.handles().empty())
    throw std::logic_error(
        "proc::mp::Pool: a task cannot carry a Connection, Lock or other resource (workers are "
        "already running); pass resources to a Process instead");
  std::string frame = w.flatten();
  return frame.substr(sizeof(std::uint64_t));  // send_bytes adds the frame header
}

}  // namespace detail

/// The result of a task submitted to a `Pool` (Python's `AsyncResult` /
/// `concurrent.futures.Future`).
template <class R>
class Future {
 public:
  Future() = default;

  /// Waits for the task and returns its result. Throws `RemoteError` (the task raised),
  /// `WorkerDied` (its worker died running it), `TaskTimeout`, `TaskCancelled` or `PoolBroken`.
  /// The result can be taken once; `std::logic_error` after that.
  R get() {
    auto& s = slot();
    std::unique_lock lock(s.m);
    s.cv.wait(lock, [&] { return s.state == detail::TaskSlot::State::done; });
    if (taken_) throw std::logic_error("proc::mp::Future::get: the result was already taken");
    taken_ = true;
    if (s.error) std::rethrow_exception(s.error);
    std::string frame = std::move(s.result);
    lock.unlock();
    return decode(frame);
  }

  /// Waits up to `timeout`; true when the task has finished (one way or another).
  bool wait_for(Duration timeout) {
    auto& s = slot();
    std::unique_lock lock(s.m);
    // wait_until on a saturated deadline: wait_for would add the timeout to now and overflow.
    return s.cv.wait_until(lock, proc::detail::deadline_after(timeout.value),
                           [&] { return s.state == detail::TaskSlot::State::done; });
  }
  /// Whether the task has finished.
  [[nodiscard]] bool ready() const {
    auto& s = slot();
    std::lock_guard lock(s.m);
    return s.state == detail::TaskSlot::State::done;
  }
  /// Cancels the task: a queued one is dropped, a running one has its worker killed and
  /// replaced; `get()` then throws `TaskCancelled`. False when it had finished already.
  bool cancel() { return pool_->cancel(slot_); }

 private:
  friend class Pool;
  template <class>
  friend class UnorderedResults;
  Future(std::shared_ptr<detail::TaskSlot> s, std::shared_ptr<detail::PoolCore> p)
      : slot_(std::move(s)), pool_(std::move(p)) {}
  detail::TaskSlot& slot() const {
    if (!slot_) throw std::logic_error("proc::mp::Future: no task (default-constructed)");
    return *slot_;
  }
  static R decode(const std::string& frame) {
    Reader r(frame);
    auto kind = static_cast<detail::Kind>(r.read_u8());
    if (kind == detail::Kind::error) {
      std::string type = r.read<std::string>();
      std::string what = r.read<std::string>();
      throw RemoteError(std::move(type), std::move(what));
    }
    if (kind != detail::Kind::value) r.fail("not a result frame");
    Reader v(std::string_view(frame).substr(1));
    if constexpr (std::is_void_v<R>) {
      (void)decode_message<std::monostate>(v);
    } else {
      return decode_message<R>(v);
    }
  }

  std::shared_ptr<detail::TaskSlot> slot_;
  std::shared_ptr<detail::PoolCore> pool_;
  bool taken_ = false;
};

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// - `submit(f, args...)` → `Future<R>`; `map(f, range)` → results in input order;
///   `imap_unordered(f, range)` → results as they finish.
/// - A worker that dies in the middle of a task (killed, `abort`, a crash, `_exit`) fails exactly
///   that task with `WorkerDied`; a fresh worker takes its place and the pool goes on. A task
///   over `task_timeout` has its worker killed: `TaskTimeout`. Workers that die before running
///   any task (a broken start) end the pool with `PoolBroken` instead of a respawn loop.
/// - Workers are daemons (they end with this process) and ignore SIGINT.
/// - `~Pool` closes the pool and waits for the queued tasks; `terminate()` stops at once.
/// Targets and arguments are as for `Process` (no Connections or other resources: workers are
/// running already).
class Pool {
 public:
  explicit Pool(PoolOptions options = {})
      : core_(std::make_shared<detail::PoolCore>(std::move(options))) {}
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    if (!core_) return;
    try {
      core_->close();
      core_->join();
    } catch (...) {
    }
  }

  /// Queues `target(args...)` for a worker.
  template <class F, class... Args>
  Future<detail::result_of<F, Args...>> submit(F target, Args... args) {
    detail::check_target<F, Args...>();
    auto slot = core().submit(detail::task_frame(target, args...));
    return Future<detail::result_of<F, Args...>>(std::move(slot), core_);
  }

  /// Runs `target(x)` for every `x` of `range` and returns the results in input order. Waits for
  /// every task, then throws the first failure (in input order) if any.
  ///
  /// As Python's `Pool.map`, the items go to the workers in chunks of `chunksize` (default:
  /// the items divided by four times the workers, rounded up), one task per chunk: a chunk
  /// stops at its first failure, and a worker that dies fails its whole chunk. Pass
  /// `chunksize = 1` for one task per item.
  template <class F, std::ranges::input_range Range>
  auto map(F target, Range&& range, std::size_t chunksize = 0) {
    using A = std::decay_t<std::ranges::range_value_t<Range>>;
    using R = detail::result_of<F, A>;
    detail::check_target<F, A>();
    if constexpr (!std::is_same_v<R, bool>) {
      std::vector<A> items;
      if constexpr (std::ranges::sized_range<Range>) items.reserve(std::ranges::size(range));
      for (auto&& x : range) items.push_back(static_cast<const A&>(x));
      const std::size_t workers = core().workers();
      if (chunksize == 0) chunksize = (items.size() + 4 * workers - 1) / (4 * workers);
      if (chunksize > 1) return map_chunked<F, A, R>(target, std::move(items), chunksize);
      return map_each<F, A, R>(target, items);
    } else {
      return map_each<F, A, R>(target, range);
    }
  }

 private:
  template <class F, class A, class R, class Range>
  auto map_each(F& target, Range&& range) {
    std::vector<std::shared_ptr<detail::TaskSlot>> slots;
    for (auto&& x : range) {
      auto slot = std::make_shared<detail::TaskSlot>();
      slot->frame = detail::task_frame(target, static_cast<const A&>(x));
      slots.push_back(std::move(slot));
    }
    if constexpr (std::is_void_v<R>) {
      collect<R>(slots, [](auto&&) {});
    } else {
      std::vector<R> out;
      out.reserve(slots.size());
      collect<R>(slots, [&](R&& r) { out.push_back(std::move(r)); });
      return out;
    }
  }

  template <class F, class A, class R>
  auto map_chunked(F& target, std::vector<A> items, std::size_t chunksize) {
    using Chunk = detail::MapChunk<F, A>;
    detail::check_target<Chunk>();
    std::vector<std::shared_ptr<detail::TaskSlot>> slots;
    for (std::size_t at = 0; at < items.size(); at += chunksize) {
      Chunk chunk{target, {}};
      std::size_t end = std::min(items.size(), at + chunksize);
      chunk.items.assign(std::make_move_iterator(items.begin() + static_cast<std::ptrdiff_t>(at)),
                         std::make_move_iterator(items.begin() + static_cast<std::ptrdiff_t>(end)));
      auto slot = std::make_shared<detail::TaskSlot>();
      slot->frame = detail::task_frame(chunk);
      slots.push_back(std::move(slot));
    }
    using Out = detail::result_of<Chunk>;
    if constexpr (std::is_void_v<R>) {
      collect<Out>(slots, [](auto&&) {});
    } else {
      std::vector<R> out;
      out.reserve(items.size());
      collect<Out>(slots, [&](Out&& chunk) {
        for (R& r : chunk) out.push_back(std::move(r));
      });
      return out;
    }
  }

  /// Submits `slots`, waits for every one of them in order, hands each value (none for void)
  /// to `take`, then throws the first failure in input order, if any.
  template <class Out, class Take>
  void collect(std::vector<std::shared_ptr<detail::TaskSlot>>& slots, Take&& take) {
    core().submit_many(slots);
    std::vector<Future<Out>> futures;
    futures.reserve(slots.size());
    for (auto& s : slots) futures.push_back(Future<Out>(s, core_));
    std::exception_ptr first;
    for (auto& f : futures) {
      try {
        if constexpr (std::is_void_v<Out>)
          f.get();
        else
          take(f.get());
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
  }

 public:
  /// The results of `target(x)` for every `x` of `range`, as the tasks finish: an input range
  /// (iterate it once). A failed task throws when its turn comes.
  template <class F, std::ranges::input_range Range>
  auto imap_unordered(F target, Range&& range);

  /// No more tasks: `submit` and `map` throw `std::logic_error` after this.
  void close() { core().close(); }
  /// After `close()`: waits until every queued task has run and the workers have exited.
  void join() { core().join(); }
  /// Stops now: kills every worker; unfinished tasks fail with `PoolBroken`.
  void terminate() { core().terminate(); }

 private:
  detail::PoolCore& core() const {
    if (!core_) throw std::logic_error("proc::mp::Pool: used after being moved from");
    return *core_;
  }
  std::shared_ptr<detail::PoolCore> core_;
};

/// What `Pool::imap_unordered` returns: results in the order the tasks finish.
template <class R>
class UnorderedResults {
 public:
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(UnorderedResults* r) : r_(r) { ++*this; }
    R& operator*() const { return *r_->current_; }
    iterator& operator++() {
      if (!r_->next()) r_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.r_; }

   private:
    UnorderedResults* r_ = nullptr;
  };

  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  friend class Pool;
  struct Shared {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::shared_ptr<detail::TaskSlot>> finished;
  };
  UnorderedResults(std::shared_ptr<detail::PoolCore> pool, std::shared_ptr<Shared> shared,
                   std::size_t total)
      : pool_(std::move(pool)), shared_(std::move(shared)), left_(total) {}

  bool next() {
    if (left_ == 0) return false;
    std::shared_ptr<detail::TaskSlot> s;
    {
      std::unique_lock lock(shared_->m);
      shared_->cv.wait(lock, [&] { return !shared_->finished.empty(); });
      s = shared_->finished.front();
      shared_->finished.pop_front();
    }
    --left_;
    Future<R> f(s, pool_);
    current_.emplace(f.get());
    return true;
  }

  std::shared_ptr<detail::PoolCore> pool_;
  std::shared_ptr<Shared> shared_;
  std::size_t left_;
  std::optional<R> current_;
};

template <class F, std::ranges::input_range Range>
auto Pool::imap_unordered(F target, Range&& range) {
  using A = std::decay_t<std::ranges::range_value_t<Range>>;
  using R = detail::result_of<F, A>;
  static_assert(!std::is_void_v<R>, "proc::mp::Pool::imap_unordered: the target returns nothing");
  detail::check_target<F, A>();
  using Shared = typename UnorderedResults<R>::Shared;
  auto shared = std::make_shared<Shared>();
  std::vector<std::shared_ptr<detail::TaskSlot>> slots;
  for (auto&& x : range) {
    auto slot = std::make_shared<detail::TaskSlot>();
    slot->frame = detail::task_frame(target, static_cast<const A&>(x));
    slot->on_done = [shared](const std::shared_ptr<detail::TaskSlot>& s) {
      std::lock_guard lock(shared->m);
      shared->finished.push_back(s);
      shared->cv.notify_all();
    };
    slots.push_back(std::move(slot));
  }
  core().submit_many(slots);
  return UnorderedResults<R>(core_, std::move(shared), slots.size());
}

}  // namespace proc::mp
