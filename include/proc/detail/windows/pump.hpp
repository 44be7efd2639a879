#pragma once
// Moving data to and from a child's pipes at once: what communicate() runs on Windows.
//
// Calls: CreateThread, WaitForSingleObject, WaitForMultipleObjects, CancelSynchronousIo,
// ReadFile, WriteFile, GetFileType, CloseHandle.
//
// Anonymous pipes have no overlapped I/O, and Windows has no poll() for them, so each stream
// that is still open gets a thread of its own doing plain blocking ReadFile/WriteFile, and the
// calling thread waits for those threads with one WaitForMultipleObjects (which also gives the
// deadline). With no deadline and a single stream the calling thread does the work itself.
// Named pipes with overlapped I/O were not chosen: the parent's ends are handed on to other
// children (take_out()), and a child given an overlapped handle as its stdin or stdout misbehaves.
//
// Invariants:
// - All three pipes move at once, so a child that fills stdout while we write its stdin (or
//   stderr while we read stdout) never deadlocks us. Reads go straight into the sinks; each sink
//   is touched by one thread only while the pump runs, and by none after it returns.
// - Each end is closed as soon as its stream is done (the child sees EOF on stdin right after
//   the last byte); a child that closes its stdin early ends the writing quietly (as Python).
// - At the deadline nothing is lost. A blocked ReadFile is cancelled with CancelSynchronousIo:
//   a cancelled read has consumed nothing (bytes that did arrive complete the read and reach the
//   sink before the thread is joined). A blocked WriteFile is NOT cancelled: Windows (and Wine)
//   may have handed part of the chunk to the reader and report 0 bytes written, so a resumed pump
//   would send those bytes twice. The writer instead finishes the chunk in flight — a private
//   copy, so it never reads the caller's buffer after the pump has returned — and is parked in
//   the DetachedWrites registry (handle.hpp) under its pipe: the next pump on that pipe takes it
//   back and counts what it wrote, close_handle() cancels it, and write_all() waits for it.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/detail/windows/handle.hpp"
#include "proc/detail/windows/wait.hpp"
#include "proc/detail/windows/win32.hpp"

// After handle.hpp: it uses native_handle and invalid_handle.
#include "proc/detail/pump_state.hpp"

namespace proc::detail {

// A thread procedure must be WINAPI (__stdcall on 32-bit x86), which a lambda cannot promise.
template <class T>
DWORD WINAPI worker_main(void* self) {
  static_cast<T*>(self)->run();
  return 0;
}

/// Starts `T::run()` of `self` on a new thread with a small stack.
template <class T>
HANDLE start_worker(T* self) {
  HANDLE t = ::CreateThread(nullptr, 256 * 1024, &worker_main<T>, self,
                            STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr);
  if (!t) throw_last_error("proc: CreateThread");
  return t;
}

/// Cancels the blocking I/O of `thread` until the thread has ended, then closes its handle.
/// The thread must be on its way out (a stop flag set), so a cancel that came too early (before
/// it blocked) is simply repeated.
inline void cancel_and_join(HANDLE& thread) noexcept {
  if (!thread) return;
  for (;;) {
    ::CancelSynchronousIo(thread);
    if (::WaitForSingleObject(thread, 1) != WAIT_TIMEOUT) break;
  }
  ::CloseHandle(thread);
  thread = nullptr;
}

/// Reads one pipe into a sink until end of stream or until stopped.
class StreamReader {
 public:
  StreamReader(native_handle h, Sink* sink) : h_(h), sink_(sink) {}
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;
  ~StreamReader() { stop(); }

  void start() { thread_ = start_worker(this); }
  [[nodiscard]] HANDLE thread() const noexcept { return thread_; }

  /// Stops the thread (a read in progress is cancelled without loss) and joins it.
  void stop() noexcept {
    stop_ = true;
    cancel_and_join(thread_);
  }
  /// Joins a thread that has ended by itself.
  void join() noexcept {
    if (thread_) {
      ::WaitForSingleObject(thread_, INFINITE);
      ::CloseHandle(thread_);
      thread_ = nullptr;
    }
  }

  [[nodiscard]] bool ended() const noexcept { return ended_; }
  [[nodiscard]] std::exception_ptr error() const noexcept { return error_; }

  void run() noexcept {
    try {
      const bool pipe = ::GetFileType(h_) == FILE_TYPE_PIPE;
      while (!stop_.load()) {
        std::size_t room = 0;
        char* p = sink_->prepare(room);
        DWORD e = 0;
        std::size_t n = read_once(h_, p, room, e);
        sink_->commit(n);
        if (e == ERROR_OPERATION_ABORTED) return;  // cancelled by stop(): not the end
        if ((e && is_end_of_stream(e)) || (!e && n == 0 && !pipe)) {
          ended_ = true;  // (a pipe's successful 0 is an empty message, not the end)
          return;
        }
        if (e) throw_win32(e, "proc: ReadFile");
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }

 private:
  native_handle h_;
  Sink* sink_;
  HANDLE thread_ = nullptr;
  std::atomic<bool> stop_{false};
  bool ended_ = false;
  std::exception_ptr error_;
};

/// Writes a pump's input to a child's stdin, one privately copied chunk at a time. It outlives
/// the pump that started it when a chunk is still in flight at the deadline (see above).
class InputWriter final : public DetachedWrite {
 public:
  static constexpr std::size_t chunk_size = 256 * 1024;

  InputWriter(native_handle h, std::size_t pos) : h_(h), pos_(pos) {}
  InputWriter(const InputWriter&) = delete;
  InputWriter& operator=(const InputWriter&) = delete;
  ~InputWriter() override { abandon(); }

  /// Points the writer at `input` (the whole input; bytes before pos() are written) and, unless
  /// `here`, makes sure a thread is writing. With `here` the calling thread writes it all.
  void attach(std::string_view input, bool here) {
    bool need_thread = false;
    {
      std::lock_guard lock(m_);
      input_ = input;
      total_ = input.size();
      detached_ = false;
      if (pos_ >= total_) finished_ = true;
      need_thread = exited_ && !finished_ && !error_;
      if (need_thread) exited_ = false;
    }
    if (!need_thread) return;
    if (here) return run();
    if (thread_) ::CloseHandle(std::exchange(thread_, nullptr));
    try {
      thread_ = start_worker(this);
    } catch (...) {
      std::lock_guard lock(m_);
      exited_ = true;
      throw;
    }
  }

  /// The pump is returning: finish the chunk in flight, touch `input` no more.
  void detach() noexcept {
    std::lock_guard lock(m_);
    detached_ = true;
    input_ = {};
  }

  void abandon() noexcept override {
    detach();
    cancel_and_join(thread_);
  }
  void wait_idle() override {
    if (thread_) ::WaitForSingleObject(thread_, INFINITE);
  }

  [[nodiscard]] HANDLE thread() const noexcept { return thread_; }
  [[nodiscard]] native_handle handle() const noexcept { return h_; }
  bool exited() {
    std::lock_guard lock(m_);
    return exited_;
  }
  /// All written, or the reader has gone: the pipe can be closed.
  bool finished() {
    std::lock_guard lock(m_);
    return finished_;
  }
  std::size_t pos() {
    std::lock_guard lock(m_);
    return pos_;
  }
  std::exception_ptr error() {
    std::lock_guard lock(m_);
    return error_;
  }

  void run() noexcept {
    for (;;) {
      std::size_t start = 0, len = 0;
      {
        std::lock_guard lock(m_);
        if (pos_ >= total_) finished_ = true;
        if (finished_ || detached_ || error_) {
          exited_ = true;
          return;
        }
        start = pos_;
        len = std::min(chunk_size, total_ - pos_);
        try {
          chunk_.assign(input_.data() + start, len);
        } catch (...) {
          error_ = std::current_exception();
          exited_ = true;
          return;
        }
      }
      std::size_t done = 0;
      DWORD e = 0;
      while (done < len) {
        DWORD put = 0;
        if (!::WriteFile(h_, chunk_.data() + done, static_cast<DWORD>(len - done), &put, nullptr)) {
          e = ::GetLastError();
          break;
        }
        done += put;
      }
      std::lock_guard lock(m_);
      pos_ = start + done;
      if (e == 0) continue;
      if (is_reader_gone(e)) {
        finished_ = true;  // the child stopped reading: not an error (as Python)
      } else if (e != ERROR_OPERATION_ABORTED) {  // aborted: abandon() is closing the pipe
        try {
          throw_win32(e, "proc: WriteFile");
        } catch (...) {
          error_ = std::current_exception();
        }
      }
      exited_ = true;
      return;
    }
  }

 private:
  native_handle h_;
  HANDLE thread_ = nullptr;
  Mutex m_;
  std::string_view input_;  // valid only while attached
  std::size_t total_ = 0;
  std::size_t pos_;
  bool detached_ = true;
  bool exited_ = true;  // no thread running run()
  bool finished_ = false;
  std::exception_ptr error_;
  std::string chunk_;
};

/// The reader and writer threads of one PumpState while a pump runs.
class StateStreams {
 public:
  explicit StateStreams(PumpState& st) : st_(st) {}
  StateStreams(const StateStreams&) = delete;
  StateStreams& operator=(const StateStreams&) = delete;
  ~StateStreams() { stop_all(); }

  PumpState& state() noexcept { return st_; }

  /// Takes back a write parked on stdin, closes stdin when nothing is left to write; then
  /// prepares the readers and the writer for the streams still open.
  void prepare() {
    if (st_.in != invalid_handle) {
      if (auto left = DetachedWrites::instance().take(st_.in)) {
        writer_ = std::static_pointer_cast<InputWriter>(left);  // the only kind ever parked
        st_.in_pos = std::max(st_.in_pos, writer_->pos());
      } else if (st_.in_pos >= st_.input.size()) {
        close_handle(st_.in);
        st_.in = invalid_handle;
      }
    }
    if (st_.out != invalid_handle) out_.emplace(st_.out, st_.out_sink);
    if (st_.err != invalid_handle) err_.emplace(st_.err, st_.err_sink);
    if (st_.in != invalid_handle && !writer_)
      writer_ = std::make_shared<InputWriter>(st_.in, st_.in_pos);
  }

  [[nodiscard]] int streams() const noexcept {
    return (out_ ? 1 : 0) + (err_ ? 1 : 0) + (writer_ ? 1 : 0);
  }

  /// With one stream and no deadline: the calling thread does the work itself.
  void run_here() {
    if (writer_) {
      writer_->attach(st_.input, true);
      finish_writer();
    }
    for (auto* r : {&out_, &err_}) {
      if (!*r) continue;
      (*r)->run();
      finish_reader(*r);
    }
  }

  void start() {
    if (writer_) writer_->attach(st_.input, false);
    if (out_) out_->start();
    if (err_) err_->start();
  }

  /// The threads to wait for; a writer with nothing left to do is finished here.
  void waits(std::vector<HANDLE>& v) {
    if (out_) v.push_back(out_->thread());
    if (err_) v.push_back(err_->thread());
    if (writer_) {
      if (!writer_->thread())
        finish_writer();  // nothing was left to write
      else
        v.push_back(writer_->thread());
    }
  }

  /// `ended` (a thread of ours) has returned: finish its stream. False if not ours.
  bool finish(HANDLE ended) {
    if (out_ && out_->thread() == ended) return finish_reader(out_), true;
    if (err_ && err_->thread() == ended) return finish_reader(err_), true;
    if (writer_ && writer_->thread() == ended) return finish_writer(), true;
    return false;
  }

  /// At the deadline, on an error or when the pump returns: stop the readers (nothing is lost;
  /// an error a reader met in the meantime goes to the state), park a busy writer.
  void stop_all() noexcept {
    for (auto* r : {&out_, &err_}) {
      if (!*r) continue;
      (*r)->stop();
      native_handle& h = r == &out_ ? st_.out : st_.err;
      if (auto e = (*r)->error()) {
        // It failed (the sink's limit, say) just before the pump returned for another reason
        // (the child exited, the deadline): the state keeps the error for the caller.
        if (!st_.error) st_.error = e;
      } else if ((*r)->ended()) {
        close_handle(h);
        h = invalid_handle;
      }
      r->reset();
    }
    if (!writer_) return;
    writer_->detach();
    st_.in_pos = writer_->pos();
    if (!writer_->exited()) {
      try {
        DetachedWrites::instance().put(st_.in, writer_);
      } catch (...) {
        writer_->abandon();  // no memory to park it: cancel (bytes in flight may repeat)
      }
    } else if (writer_->finished() && !writer_->error()) {
      close_handle(st_.in);
      st_.in = invalid_handle;
    }
    writer_.reset();
  }

 private:
  // A reader whose thread has ended (or that ran here): rethrow its error, or close its pipe
  // when it reached the end.
  void finish_reader(std::optional<StreamReader>& r) {
    r->join();
    native_handle& h = &r == &out_ ? st_.out : st_.err;
    auto e = r->error();
    bool ended = r->ended();
    r.reset();
    if (e) std::rethrow_exception(e);
    if (ended) {
      close_handle(h);
      h = invalid_handle;
    }
  }
  // The writer whose run() has returned: rethrow its error, or close stdin (all written, or the
  // child stopped reading) so that the child sees EOF now.
  void finish_writer() {
    if (writer_->thread()) ::WaitForSingleObject(writer_->thread(), INFINITE);
    auto e = writer_->error();
    st_.in_pos = writer_->pos();
    bool finished = writer_->finished();
    writer_.reset();
    if (e) std::rethrow_exception(e);
    if (finished) {
      close_handle(st_.in);
      st_.in = invalid_handle;
    }
  }

  PumpState& st_;
  std::optional<StreamReader> out_, err_;
  std::shared_ptr<InputWriter> writer_;
};

/// Moves data on the streams of every state and watches the exit handles (process handles) in
/// `exits`, until a state has all its streams ended or records an error, an exit handle is
/// signalled, or `deadline` passes. States already done (or holding an error) are skipped.
inline void pump_many(std::span<PumpState* const> states, std::span<const native_handle> exits,
                      std::optional<Clock::time_point> deadline) {
  std::vector<std::unique_ptr<StateStreams>> all;
  all.reserve(states.size());
  for (PumpState* st : states) {
    if (st->error || st->done()) continue;
    auto ss = std::make_unique<StateStreams>(*st);
    try {
      ss->prepare();
    } catch (...) {
      st->error = std::current_exception();
      return;
    }
    if (!st->done()) all.push_back(std::move(ss));
  }
  if (all.empty() && exits.empty()) return;

  // One stream, no exits and no deadline: this thread does the work.
  if (all.size() == 1 && exits.empty() && !deadline && all[0]->streams() == 1) {
    try {
      all[0]->run_here();
    } catch (...) {
      all[0]->state().error = std::current_exception();
    }
    return;
  }
  for (auto& ss : all) {
    try {
      ss->start();
    } catch (...) {
      ss->state().error = std::current_exception();
      return;  // the destructors stop every thread started so far
    }
  }
  std::vector<HANDLE> waits;
  for (;;) {
    waits.assign(exits.begin(), exits.end());
    const std::size_t first_thread = waits.size();
    std::vector<StateStreams*> owners;
    for (auto& ss : all) {
      if (ss->state().error || ss->state().done()) continue;
      const bool was_done = ss->state().done();
      std::size_t before = waits.size();
      try {
        ss->waits(waits);
      } catch (...) {
        ss->state().error = std::current_exception();
        return;
      }
      if (!was_done && ss->state().done()) return;
      owners.insert(owners.end(), waits.size() - before, ss.get());
    }
    if (waits.empty()) return;
    if (deadline && Clock::now() >= *deadline) return;
    std::optional<std::size_t> i = wait_for_any(waits, deadline);
    if (!i) {
      if (deadline && Clock::now() >= *deadline) return;
      continue;
    }
    if (*i < first_thread) return;  // a child exited
    StateStreams* owner = owners[*i - first_thread];
    try {
      owner->finish(waits[*i]);
    } catch (...) {
      owner->state().error = std::current_exception();
      return;
    }
    if (owner->state().done()) return;
  }
}

/// Moves data until every stream of `st` has ended (true) or `deadline` passes (false). An
/// error is rethrown (and cleared from the state, which can then be pumped again).
inline bool pump(PumpState& st, std::optional<Clock::time_point> deadline) {
  PumpState* one[1] = {&st};
  for (;;) {
    pump_many(one, {}, deadline);
    if (st.error) std::rethrow_exception(std::exchange(st.error, nullptr));
    if (st.done()) return true;
    if (deadline && Clock::now() >= *deadline) return false;
  }
}

}  // namespace proc::detail
