#pragma once
// The byte channel under proc::mp on Windows: the two ends of one named pipe, for a Connection
// and for the control channel between a parent and a child Process.
//
// Calls: CreateNamedPipeW (PIPE_TYPE_BYTE, FILE_FLAG_OVERLAPPED, FILE_FLAG_FIRST_PIPE_INSTANCE,
// one instance, PIPE_REJECT_REMOTE_CLIENTS), CreateFileW (the other end, FILE_FLAG_OVERLAPPED),
// ConnectNamedPipe, SetNamedPipeHandleState (the message-mode pipes that named_pipe_pair also
// makes for queue.hpp and manager.hpp), ReadFile, WriteFile, GetOverlappedResult, CancelIoEx,
// PeekNamedPipe, GetFileType, SetHandleInformation, CreateEventW, SetEvent, ResetEvent,
// WaitForSingleObject, WaitForMultipleObjects (through proc::detail::wait_for_any), CloseHandle.
//
// Why named pipes: anonymous pipes have no overlapped I/O, so a read could be neither timed out
// nor waited for together with other handles. A named pipe opened with FILE_FLAG_OVERLAPPED can
// be both. The pipe is made with a unique name (\\.\pipe\proc-mp-<pid>-<counter>-<random>), as
// the first and only instance, and this process opens the other end at once. Nobody else can
// become the peer: while our end is unconnected another process could connect first, but then
// our CreateFileW fails (the one instance is busy) and a new pipe is made; once we are
// connected the instance is taken.
//
// Readiness (wait_readable) for a channel end is "a read would not block": PeekNamedPipe reports
// bytes waiting, or fails (the peer has closed: the read sees the end of the stream). To sleep
// until that changes, each channel in the set gets an overlapped ReadFile of zero bytes, which
// completes when data arrives or the peer goes, without consuming anything; those reads' events
// and the other handles of the set (process handles, a Waker's event) are waited for together
// with proc::detail::wait_for_any (any number of handles, no polling tick). On waking, the
// zero-byte reads still pending are cancelled (CancelIoEx) and waited for, and PeekNamedPipe /
// WaitForSingleObject(0) decide again what is ready. (CPython's multiprocessing.connection.wait
// does the same.) A handle is taken for a channel when GetFileType says FILE_TYPE_PIPE, else for
// a waitable object that is ready when signalled.
//
// Invariants:
// - Both ends are NOT inheritable from birth: a child gets one only when it is passed on purpose
//   (spawn.hpp makes it inheritable for that one CreateProcessW, at the same value), and the
//   child marks it not inheritable again (set_inheritable(false)).
// - In the pair, `first` is the pipe's server end (made by this process) and `second` the
//   client end; the control channel's child end is `second` (child.hpp checks the marker with
//   the server's process id).
// - Every operation is overlapped with an event of its own (from a process-wide pool), so one
//   thread may write while another reads or waits on the same end, and no operation is left
//   pending when its function returns (wait_readable cancels its zero-byte reads and waits for
//   them before it returns or throws).
// - Bytes written before the writer closed (or exited) stay in the pipe: a reader gets all of
//   them, then ERROR_BROKEN_PIPE, which is the end of the stream (read_some returns 0). A
//   zero-byte completion is never taken for the end. No empty write is ever made.
// - Writing to an end whose reader has gone fails with ERROR_NO_DATA / ERROR_BROKEN_PIPE: `false`
//   from write_chunks (Windows has no SIGPIPE).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/detail/platform.hpp"

namespace proc::mp::detail {

using proc::detail::Clock;
using proc::detail::invalid_handle;
using proc::detail::native_handle;

/// Two connected ends. Duplex: both read and write; one-way: `first` reads, `second` writes.
struct HandlePair {
  native_handle first = invalid_handle;
  native_handle second = invalid_handle;
};

/// The pipe's buffer quota each way (Windows treats it as a hint).
inline constexpr DWORD channel_buffer_size = 64 * 1024;

/// Manual-reset events for overlapped operations, lent out for one operation each and kept for
/// the next (a process-wide free list). Not thread_local: with mingw-w64, thread_local objects
/// are destroyed after emutls has freed their storage, so a destructor closing handles would
/// close whatever values it then reads.
class EventPool {
 public:
  static HANDLE acquire() {
    EventPool& p = instance();
    {
      std::lock_guard lock(p.m_);
      if (!p.free_.empty()) {
        HANDLE e = p.free_.back();
        p.free_.pop_back();
        return e;
      }
    }
    HANDLE e = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (!e) proc::detail::throw_last_error("proc::mp: CreateEvent");
    return e;
  }
  /// Takes `e` back once no operation uses it (ReadFile, WriteFile and ConnectNamedPipe reset it
  /// when they start, so its state does not matter).
  static void release(HANDLE e) noexcept {
    EventPool& p = instance();
    {
      std::lock_guard lock(p.m_);
      if (p.free_.size() < keep) {
        try {
          p.free_.push_back(e);
          return;
        } catch (...) {
        }
      }
    }
    ::CloseHandle(e);
  }
  /// How many events wait in the free list (handles this process holds for later operations).
  static std::size_t idle() noexcept {
    EventPool& p = instance();
    std::lock_guard lock(p.m_);
    return p.free_.size();
  }

 private:
  static constexpr std::size_t keep = 1024;  // more than the busiest moment needs, as a rule
  static EventPool& instance() {
    static EventPool* p = new EventPool();  // never destroyed: used until exit
    return *p;
  }
  proc::detail::Mutex m_;
  std::vector<HANDLE> free_;
};

/// One event from the pool, for the life of one overlapped operation.
class PooledEvent {
 public:
  PooledEvent() : h_(EventPool::acquire()) {}
  PooledEvent(PooledEvent&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  PooledEvent& operator=(PooledEvent&&) = delete;
  PooledEvent(const PooledEvent&) = delete;
  PooledEvent& operator=(const PooledEvent&) = delete;
  ~PooledEvent() {
    if (h_) EventPool::release(h_);
  }
  [[nodiscard]] HANDLE get() const noexcept { return h_; }

 private:
  HANDLE h_;
};

/// A name no other pipe has: this process's id, a counter, and random bits (so that a name
/// cannot be guessed ahead and taken first; FILE_FLAG_FIRST_PIPE_INSTANCE would refuse it).
inline std::wstring unique_pipe_name() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t salt = [] {
    std::uint64_t s = 0;
    try {
      std::random_device rd;
      s = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {
    }
    LARGE_INTEGER t{};
    ::QueryPerformanceCounter(&t);
    return s ^ static_cast<std::uint64_t>(t.QuadPart) * 0x9E3779B97F4A7C15ULL;
  }();
  std::uint64_t n = counter.fetch_add(1);
  LARGE_INTEGER t{};
  ::QueryPerformanceCounter(&t);
  std::uint64_t r = salt ^ (static_cast<std::uint64_t>(t.QuadPart) * 0xBF58476D1CE4E5B9ULL) ^
                    (n * 0x94D049BB133111EBULL);
  return L"\\\\.\\pipe\\proc-mp-" + std::to_wstring(::GetCurrentProcessId()) + L"-" +
         std::to_wstring(n) + L"-" + std::to_wstring(r);
}

/// How a pipe from named_pipe_pair is made.
struct PipeShape {
  bool duplex;        // PIPE_ACCESS_DUPLEX, else PIPE_ACCESS_INBOUND (the client only writes)
  bool message;       // PIPE_TYPE_MESSAGE (both ends read in message mode), else bytes
  DWORD buffer_size;  // each direction's
  const char* who;    // for error messages: "proc::mp", "proc::mp::Queue", ...
};

/// A new named pipe that only this process holds: `first` its server end, `second` its client
/// end, both overlapped and not inheritable (see the header for why nobody else can connect).
inline HandlePair named_pipe_pair(const PipeShape& shape) {
  const std::string who = shape.who;
  for (int attempt = 0;; ++attempt) {
    const std::wstring name = unique_pipe_name();
    const DWORD type = shape.message ? (PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE)
                                     : (PIPE_TYPE_BYTE | PIPE_READMODE_BYTE);
    proc::detail::UniqueHandle server(
        ::CreateNamedPipeW(name.c_str(),
                           (shape.duplex ? PIPE_ACCESS_DUPLEX : PIPE_ACCESS_INBOUND) |
                               FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                           type | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, shape.buffer_size,
                           shape.buffer_size, 0, nullptr));
    if (!server) {
      DWORD e = ::GetLastError();
      // The name exists already (ERROR_ACCESS_DENIED / ERROR_PIPE_BUSY): try another one.
      if ((e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY) && attempt < 100) continue;
      proc::detail::throw_win32(e, who + ": CreateNamedPipe");
    }
    // SECURITY_ANONYMOUS: the server end may not impersonate us (it is ours, but say so).
    proc::detail::UniqueHandle client(::CreateFileW(
        name.c_str(),
        shape.duplex ? (GENERIC_READ | GENERIC_WRITE) : (GENERIC_WRITE | FILE_READ_ATTRIBUTES), 0,
        nullptr, OPEN_EXISTING, FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_ANONYMOUS,
        nullptr));
    if (!client) {
      DWORD e = ::GetLastError();
      // Someone else connected first (the one instance is busy): not our pipe; make another.
      if (e == ERROR_PIPE_BUSY && attempt < 100) continue;
      proc::detail::throw_win32(e, who + ": CreateFile (pipe client)");
    }
    if (shape.message && shape.duplex) {
      DWORD mode = PIPE_READMODE_MESSAGE;  // a client end opens in byte read mode
      if (!::SetNamedPipeHandleState(client.get(), &mode, nullptr, nullptr))
        proc::detail::throw_last_error(who + ": SetNamedPipeHandleState");
    }
    PooledEvent event;
    OVERLAPPED ov{};
    ov.hEvent = event.get();
    if (!::ConnectNamedPipe(server.get(), &ov)) {
      DWORD e = ::GetLastError();
      DWORD ignored = 0;
      if (e == ERROR_IO_PENDING && !::GetOverlappedResult(server.get(), &ov, &ignored, TRUE))
        e = ::GetLastError();
      else if (e == ERROR_IO_PENDING)
        e = ERROR_PIPE_CONNECTED;
      if (e != ERROR_PIPE_CONNECTED) proc::detail::throw_win32(e, who + ": ConnectNamedPipe");
    }
    return {server.release(), client.release()};
  }
}

inline HandlePair channel_pair(bool duplex) {
  return named_pipe_pair({duplex, false, channel_buffer_size, "proc::mp"});
}

inline void close_channel(native_handle h) noexcept { proc::detail::close_handle(h); }

/// Whether `h` reaches a child it is passed to (Windows: HANDLE_FLAG_INHERIT). spawn.hpp sets the
/// flag only for the CreateProcessW that passes it, so this is for a child's own copies.
inline void set_inheritable(native_handle h, bool on) {
  if (!::SetHandleInformation(h, HANDLE_FLAG_INHERIT, on ? HANDLE_FLAG_INHERIT : 0))
    proc::detail::throw_last_error("proc::mp: SetHandleInformation");
}

/// A piece of a message to write.
struct Chunk {
  const char* data;
  std::size_t size;
};

/// Writes all `n` bytes with overlapped WriteFile calls, each waited for. False when the reader
/// has gone.
inline bool write_all_overlapped(native_handle h, const char* p, std::size_t n) {
  PooledEvent event;
  while (n > 0) {
    OVERLAPPED ov{};
    ov.hEvent = event.get();
    DWORD want = n > (std::size_t{1} << 30) ? (DWORD{1} << 30) : static_cast<DWORD>(n);
    DWORD put = 0;
    if (!::WriteFile(h, p, want, nullptr, &ov) && ::GetLastError() != ERROR_IO_PENDING) {
      DWORD e = ::GetLastError();
      if (proc::detail::is_reader_gone(e)) return false;
      proc::detail::throw_win32(e, "proc::mp: WriteFile");
    }
    if (!::GetOverlappedResult(h, &ov, &put, TRUE)) {
      DWORD e = ::GetLastError();
      if (proc::detail::is_reader_gone(e)) return false;
      proc::detail::throw_win32(e, "proc::mp: WriteFile");
    }
    p += put;
    n -= put;
  }
  return true;
}

/// Writes every chunk in order, whole, blocking as needed. False when the reader has gone
/// (ERROR_NO_DATA, ERROR_BROKEN_PIPE): nothing more can be sent. Small chunks are gathered into
/// one write (a frame header and a small body go out in one WriteFile, as one sendmsg does on
/// POSIX); bigger ones are written from where they are.
inline bool write_chunks(native_handle h, std::span<const Chunk> chunks) {
  char gathered[4096];
  std::size_t used = 0;
  for (const Chunk& c : chunks) {
    if (c.size == 0) continue;  // never an empty write: the reader could wake for nothing
    if (used + c.size <= sizeof gathered) {
      std::memcpy(gathered + used, c.data, c.size);
      used += c.size;
      continue;
    }
    if (used && !write_all_overlapped(h, gathered, used)) return false;
    used = 0;
    if (c.size <= sizeof gathered) {
      std::memcpy(gathered, c.data, c.size);
      used = c.size;
    } else if (!write_all_overlapped(h, c.data, c.size)) {
      return false;
    }
  }
  return used == 0 || write_all_overlapped(h, gathered, used);
}

/// Reads at most `n` bytes (at least one unless at the end); 0 at the end of the stream (the
/// peer closed its end or died).
inline std::size_t read_some(native_handle h, char* p, std::size_t n) {
  if (n == 0) return 0;
  const DWORD want = n > (std::size_t{1} << 30) ? (DWORD{1} << 30) : static_cast<DWORD>(n);
  PooledEvent event;
  for (;;) {
    OVERLAPPED ov{};
    ov.hEvent = event.get();
    DWORD got = 0;
    if (!::ReadFile(h, p, want, nullptr, &ov) && ::GetLastError() != ERROR_IO_PENDING) {
      DWORD e = ::GetLastError();
      if (proc::detail::is_end_of_stream(e)) return 0;
      proc::detail::throw_win32(e, "proc::mp: ReadFile");
    }
    if (!::GetOverlappedResult(h, &ov, &got, TRUE)) {
      DWORD e = ::GetLastError();
      if (proc::detail::is_end_of_stream(e)) return 0;
      proc::detail::throw_win32(e, "proc::mp: ReadFile");
    }
    if (got > 0) return got;
    // Zero bytes with success: someone wrote an empty message. Not the end; read again.
  }
}

/// Whether a read of channel end `h` would not block: bytes are waiting, or the pipe is broken
/// (the end of the stream) or otherwise unusable (the read reports it).
inline bool channel_ready(native_handle h) noexcept {
  DWORD avail = 0;
  return !::PeekNamedPipe(h, nullptr, 0, nullptr, &avail, nullptr) || avail > 0;
}

/// Whether a waitable object (a process handle, an event) is signalled; a handle that cannot be
/// waited for counts as ready, so that the caller's next call on it reports the problem.
inline bool object_ready(native_handle h) noexcept {
  DWORD r = ::WaitForSingleObject(h, 0);
  return r != WAIT_TIMEOUT;
}

/// The indices of `handles` that are ready, in order: channel ends that are readable (data, or
/// the end of the stream), and other handles (process handles, a Waker's event) that are
/// signalled. Waits until one is or `deadline` passes (then none); a deadline already passed
/// looks once without waiting.
inline std::vector<std::size_t> wait_readable(std::span<const native_handle> handles,
                                              std::optional<Clock::time_point> deadline) {
  const std::size_t n = handles.size();
  std::vector<char> is_channel(n), fired(n, 0);
  for (std::size_t i = 0; i < n; ++i) is_channel[i] = ::GetFileType(handles[i]) == FILE_TYPE_PIPE;

  // The zero-byte reads armed for one wait; cancelled and finished before they go out of scope
  // (the system writes their OVERLAPPED until then). One that completed rather than being
  // cancelled marks its channel ready: it saw data, the end, or an empty write.
  struct Armed {
    std::span<const native_handle> handles;
    std::vector<char>& fired;
    std::vector<std::size_t> index;
    std::vector<OVERLAPPED> ov;
    std::vector<PooledEvent> events;
    ~Armed() { disarm(); }
    void disarm() noexcept {
      for (std::size_t k = 0; k < index.size(); ++k) {
        native_handle h = handles[index[k]];
        DWORD ignored = 0;
        ::CancelIoEx(h, &ov[k]);
        if (::GetOverlappedResult(h, &ov[k], &ignored, TRUE) ||
            ::GetLastError() != ERROR_OPERATION_ABORTED)
          fired[index[k]] = 1;
      }
      index.clear();
    }
  } armed{handles, fired, {}, {}, {}};
  const auto channels =
      static_cast<std::size_t>(std::count(is_channel.begin(), is_channel.end(), 1));
  armed.index.reserve(channels);
  armed.ov.resize(channels);
  std::vector<HANDLE> waits;
  waits.reserve(n);
  std::vector<std::size_t> ready;
  if (n == 0) {  // nothing can become ready: sleep out the deadline, as poll() with no fds does
    ::Sleep(proc::detail::wait_millis(deadline));
    return ready;
  }

  for (;;) {
    for (std::size_t i = 0; i < n; ++i)
      if (fired[i] || (is_channel[i] ? channel_ready(handles[i]) : object_ready(handles[i])))
        ready.push_back(i);
    if (!ready.empty()) return ready;
    if (deadline && Clock::now() >= *deadline) return ready;
    waits.clear();
    char none = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!is_channel[i]) {
        waits.push_back(handles[i]);
        continue;
      }
      std::size_t k = armed.index.size();
      armed.ov[k] = OVERLAPPED{};
      if (armed.events.size() == k) armed.events.emplace_back();
      armed.ov[k].hEvent = armed.events[k].get();
      if (::ReadFile(handles[i], &none, 0, nullptr, &armed.ov[k]) ||
          ::GetLastError() != ERROR_IO_PENDING) {
        fired[i] = 1;  // finished at once: data arrived, or the pipe broke, since the look above
        break;
      }
      armed.index.push_back(i);
      waits.push_back(armed.ov[k].hEvent);
    }
    if (std::find(fired.begin(), fired.end(), 1) == fired.end())
      (void)proc::detail::wait_for_any(waits, deadline);
    armed.disarm();
  }
}

}  // namespace proc::mp::detail

namespace proc::mp::detail {

/// Wakes a thread sleeping in wait_readable() from another thread: a manual-reset event in the
/// wait set (wait_readable treats a signalled object as ready).
class Waker {
 public:
  Waker() : event_(::CreateEventW(nullptr, TRUE, FALSE, nullptr)) {
    if (!event_) proc::detail::throw_last_error("proc::mp: CreateEvent");
  }
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  /// What to add to the wait set.
  [[nodiscard]] native_handle handle() const noexcept { return event_.get(); }
  void wake() noexcept { ::SetEvent(event_.get()); }
  /// After a wake-up: resets the event.
  void drain() noexcept { ::ResetEvent(event_.get()); }

 private:
  proc::detail::UniqueHandle event_;
};

}  // namespace proc::mp::detail
