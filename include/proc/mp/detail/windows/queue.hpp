#pragma once
// The Windows back end of proc::mp::Queue (queue.hpp): one message-mode named pipe and two kernel
// mutexes, one for the writers and one for the readers.
//
// Calls: CreateNamedPipeW (through channel.hpp's named_pipe_pair; PIPE_ACCESS_INBOUND,
// PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE, FILE_FLAG_OVERLAPPED, FILE_FLAG_FIRST_PIPE_INSTANCE,
// one instance, PIPE_REJECT_REMOTE_CLIENTS), CreateFileW (the writing end), ConnectNamedPipe,
// GetNamedPipeInfo, GetFileType, WriteFile, ReadFile, GetOverlappedResult, CancelIoEx,
// CreateMutexW, DuplicateHandle, WaitForSingleObject, WaitForMultipleObjects, ReleaseMutex,
// CloseHandle.
//
// Design:
// - The pipe is made as channel.hpp makes a Connection's (a unique name, the first and only
//   instance, its client end opened at once by this process), but in message mode: each
//   WriteFile is one pipe message, which a ReadFile with room for it takes whole, and a write
//   that is cancelled or whose process dies before it completed leaves nothing behind (the
//   message is queued whole or not at all). The server end only reads (the receivers'), the
//   client end only writes (the senders'). Every copy of an end in any process is a handle to
//   the same pipe end, so the system knows when the last copy is gone: readers then get what was
//   queued and ERROR_BROKEN_PIPE (every sender gone: ChannelClosed), writers ERROR_NO_DATA
//   (every receiver gone: ChannelClosed). No feeder thread: a put that returned is in the pipe.
// - A message is one or more pipe messages ("chunks") of at most queue_chunk bytes, each with a
//   kind byte first: `whole` (the message itself), or `first` (the message's size, then its
//   start) followed by `more` chunks until the size is reached. Senders write a message's chunks
//   under the writers' mutex and receivers read one under the readers' mutex, so the chunks of
//   one message are consecutive in the pipe and all go to one receiver.
// - Owner death: a kernel mutex whose holder dies is handed to the next waiter (WAIT_ABANDONED),
//   so nobody waits for a dead process. A sender killed in the middle of a big message leaves a
//   `first` and some `more` chunks. The receiver reading it waits for the next chunk and for the
//   writers' mutex together: once it holds that mutex, the sender has let go of it, so all it
//   will ever write of the message is in the pipe; a read that is still pending then means the
//   message is torn, and it is dropped (the receiver goes on to the next message, within its
//   own deadline). A `whole` or `first` chunk, or the end of the pipe, before the size is
//   reached means the same.
//   A receiver killed in the middle of one leaves `more` chunks that belong to no message: the
//   next receiver skips them. Either way no partial message is ever returned.
// - Deadlines (put_for, get_for, try_*) bound the wait for the mutex and for the first chunk;
//   a pending write or read that is still pending at the deadline is cancelled (CancelIoEx) and
//   waited for, and counts only if it completed after all. Once a big message has started to go
//   out (or to come in), its other chunks are written (or read) without a deadline: stopping
//   half-way would throw away a message that was already half delivered.
//
// Invariants:
// - Every handle is not inheritable from birth (spawn.hpp makes it so for one CreateProcessW).
// - A receiver's reads have room for queue_chunk bytes, the most a sender ever writes at once,
//   so a read never takes part of a pipe message (ERROR_MORE_DATA is a message not ours).
// - No empty write is ever made: each chunk has its kind byte.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/windows/channel.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp::detail {

// The same names as in detail/posix/queue.hpp.
using QueueClock = std::chrono::steady_clock;
using QueueDeadline = std::optional<QueueClock::time_point>;
enum class SendResult { sent, not_now, closed };
enum class ReceiveResult { value, not_now, closed };

/// The biggest pipe message a queue writes: a chunk, its kind byte included.
inline constexpr std::size_t queue_chunk = 64 * 1024;
/// What the pipe holds before a put waits (its buffer quota; Linux's queue has the same depth,
/// SO_SNDBUF): a put of a message bigger than this returns only once receivers have taken its
/// start, where Linux's returns at once (the message goes as a memfd).
inline constexpr DWORD queue_buffer_size = 4 << 20;

inline constexpr char chunk_whole = 1;
inline constexpr char chunk_first = 2;  // then the message's size (u64), then its start
inline constexpr char chunk_more = 3;

/// One end of a queue: the pipe end and the mutex of that side, shared by the copies of a
/// Sender or Receiver in this process.
struct QueueEnd {
  QueueEnd(native_handle p, native_handle m, native_handle w = invalid_handle) noexcept
      : pipe(p), mutex(m), writers(w) {}
  QueueEnd(const QueueEnd&) = delete;
  QueueEnd& operator=(const QueueEnd&) = delete;
  ~QueueEnd() {
    proc::detail::close_handle(pipe);
    proc::detail::close_handle(mutex);
    proc::detail::close_handle(writers);
  }
  native_handle pipe;
  native_handle mutex;    // the writers' or the readers'
  native_handle writers;  // a receiver's: the writers' mutex too (see read_chunk)
  std::string buffer;     // a receiver's room for one chunk, used under `mutex`
};

/// Holds a side's mutex for one message.
class SideLock {
 public:
  /// Waits for the mutex until `deadline` (`try_only`: not at all); `held()` says whether it
  /// was taken. A holder that died (WAIT_ABANDONED) hands it over like one that released it.
  SideLock(native_handle m, const QueueDeadline& deadline, bool try_only) : m_(m) {
    for (;;) {
      DWORD r = ::WaitForSingleObject(m, try_only ? 0 : proc::detail::wait_millis(deadline));
      if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED) {
        held_ = true;
        return;
      }
      if (r != WAIT_TIMEOUT) proc::detail::throw_last_error("proc::mp::Queue: WaitForSingleObject");
      if (try_only || (deadline && QueueClock::now() >= *deadline)) return;
    }
  }
  SideLock(const SideLock&) = delete;
  SideLock& operator=(const SideLock&) = delete;
  ~SideLock() {
    if (held_) ::ReleaseMutex(m_);
  }
  [[nodiscard]] bool held() const noexcept { return held_; }

 private:
  native_handle m_;
  bool held_ = false;
};

enum class Io { done, not_now, broken, torn };

/// Waits for an overlapped operation started on `h` until `deadline` (`try_only`: not at all),
/// cancelling it then. `done` with the byte count when it completed (also after a cancel that
/// came too late), `not_now` when it was cancelled; failures are left in `error`.
inline Io finish_overlapped(native_handle h, OVERLAPPED& ov, const QueueDeadline& deadline,
                            bool try_only, DWORD& count, DWORD& error) {
  for (;;) {
    DWORD r = ::WaitForSingleObject(ov.hEvent, try_only ? 0 : proc::detail::wait_millis(deadline));
    if (r == WAIT_OBJECT_0) break;
    if (r != WAIT_TIMEOUT) {
      error = ::GetLastError();
      ::CancelIoEx(h, &ov);
      ::GetOverlappedResult(h, &ov, &count, TRUE);
      return Io::broken;
    }
    if (try_only || (deadline && QueueClock::now() >= *deadline)) {
      ::CancelIoEx(h, &ov);
      break;
    }
  }
  if (::GetOverlappedResult(h, &ov, &count, TRUE)) return Io::done;
  error = ::GetLastError();
  return error == ERROR_OPERATION_ABORTED ? Io::not_now : Io::broken;
}

/// Writes one chunk (one pipe message), waiting while the pipe is full until `deadline`.
inline Io write_chunk(native_handle pipe, const char* p, std::size_t n,
                      const QueueDeadline& deadline, bool try_only) {
  PooledEvent event;
  OVERLAPPED ov{};
  ov.hEvent = event.get();
  DWORD count = 0, error = 0;
  Io r = Io::done;
  if (!::WriteFile(pipe, p, static_cast<DWORD>(n), nullptr, &ov)) {
    error = ::GetLastError();
    if (error == ERROR_IO_PENDING)
      r = finish_overlapped(pipe, ov, deadline, try_only, count, error);
    else
      r = Io::broken;
  } else if (!::GetOverlappedResult(pipe, &ov, &count, TRUE)) {
    error = ::GetLastError();
    r = Io::broken;
  }
  if (r != Io::broken) return r;
  if (proc::detail::is_reader_gone(error)) return Io::broken;
  proc::detail::throw_win32(error, "proc::mp::Queue: WriteFile");
}

/// Copies a Writer's message out piece by piece.
class MessageCursor {
 public:
  explicit MessageCursor(const Writer& w) : segments_(w.segments()) {}
  /// Copies the next `n` bytes (no more than are left) to `out`.
  void take(char* out, std::size_t n) {
    while (n > 0) {
      const auto& s = segments_[index_];
      std::size_t k = std::min(n, s.size - offset_);
      std::memcpy(out, s.data + offset_, k);
      out += k;
      n -= k;
      offset_ += k;
      if (offset_ == s.size) ++index_, offset_ = 0;
    }
  }

 private:
  std::vector<Writer::Segment> segments_;
  std::size_t index_ = 0, offset_ = 0;
};

/// Sends `w` as one message: one `whole` chunk, or a `first` chunk and `more` chunks, under the
/// writers' mutex.
inline SendResult send_message(QueueEnd& end, const Writer& w, const QueueDeadline& deadline,
                               bool try_only) {
  SideLock lock(end.mutex, deadline, try_only);
  if (!lock.held()) return SendResult::not_now;
  MessageCursor cursor(w);
  const std::uint64_t total = w.size();
  std::string chunk;
  if (total + 1 <= queue_chunk) {
    chunk.resize(static_cast<std::size_t>(total) + 1);
    chunk[0] = chunk_whole;
    cursor.take(chunk.data() + 1, static_cast<std::size_t>(total));
    Io r = write_chunk(end.pipe, chunk.data(), chunk.size(), deadline, try_only);
    return r == Io::done      ? SendResult::sent
           : r == Io::not_now ? SendResult::not_now
                              : SendResult::closed;
  }
  chunk.resize(queue_chunk);
  chunk[0] = chunk_first;
  std::memcpy(chunk.data() + 1, &total, sizeof total);
  std::size_t head = 1 + sizeof total;
  std::uint64_t left = total;
  bool started = false;
  while (left > 0) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, queue_chunk - head));
    cursor.take(chunk.data() + head, n);
    // The first chunk waits as the caller asked; the rest as long as it takes (see above).
    Io r = started ? write_chunk(end.pipe, chunk.data(), head + n, std::nullopt, false)
                   : write_chunk(end.pipe, chunk.data(), head + n, deadline, try_only);
    if (r == Io::broken) return SendResult::closed;
    if (r == Io::not_now) return SendResult::not_now;
    started = true;
    left -= n;
    chunk[0] = chunk_more;
    head = 1;
  }
  return SendResult::sent;
}

/// Waits for a read started inside a big message: for its chunk, or for the writers' mutex.
/// Holding that mutex, the sender of the message has let go of it (it finished, or died), so
/// everything it wrote is in the pipe, and nobody else writes: a read still pending then has
/// nothing left to get, and the message is `torn`.
inline Io finish_inside(QueueEnd& end, OVERLAPPED& ov, DWORD& count, DWORD& error) {
  HANDLE waits[2] = {ov.hEvent, end.writers};
  DWORD r = ::WaitForMultipleObjects(2, waits, FALSE, INFINITE);
  bool holds = r == WAIT_OBJECT_0 + 1 || r == WAIT_ABANDONED_0 + 1;
  if (r == WAIT_FAILED) error = ::GetLastError();
  if (r != WAIT_OBJECT_0) ::CancelIoEx(end.pipe, &ov);
  BOOL ok = ::GetOverlappedResult(end.pipe, &ov, &count, TRUE);
  if (!ok) error = ::GetLastError();
  if (holds) ::ReleaseMutex(end.writers);
  if (r == WAIT_FAILED) return Io::broken;
  if (ok) return Io::done;
  return error == ERROR_OPERATION_ABORTED ? Io::torn : Io::broken;
}

enum class ChunkRead { chunk, not_now, closed, torn };

/// Reads one chunk into `end.buffer`; `n` is its size. `inside`: a big message's next chunk,
/// waited for without a deadline, but `torn` when its sender is gone (finish_inside).
inline ChunkRead read_chunk(QueueEnd& end, const QueueDeadline& deadline, bool try_only,
                            bool inside, std::size_t& n) {
  PooledEvent event;
  for (;;) {
    OVERLAPPED ov{};
    ov.hEvent = event.get();
    DWORD count = 0, error = 0;
    Io r = Io::done;
    if (!::ReadFile(end.pipe, end.buffer.data(), static_cast<DWORD>(end.buffer.size()), nullptr,
                    &ov)) {
      error = ::GetLastError();
      if (error == ERROR_IO_PENDING && inside)
        r = finish_inside(end, ov, count, error);
      else if (error == ERROR_IO_PENDING)
        r = finish_overlapped(end.pipe, ov, deadline, try_only, count, error);
      else
        r = Io::broken;
    } else if (!::GetOverlappedResult(end.pipe, &ov, &count, TRUE)) {
      error = ::GetLastError();
      r = Io::broken;
    }
    if (r == Io::not_now) return ChunkRead::not_now;
    if (r == Io::torn) return ChunkRead::torn;
    if (r == Io::done) {
      if (count == 0) continue;  // an empty pipe message: none of ours
      n = count;
      return ChunkRead::chunk;
    }
    if (proc::detail::is_end_of_stream(error)) return ChunkRead::closed;
    if (error == ERROR_MORE_DATA) {
      // Bigger than any chunk: not one of ours. Take the rest of it, then say so.
      for (;;) {
        OVERLAPPED more{};
        more.hEvent = event.get();
        BOOL ok = ::ReadFile(end.pipe, end.buffer.data(), static_cast<DWORD>(end.buffer.size()),
                             nullptr, &more);
        if (ok || ::GetLastError() == ERROR_IO_PENDING)
          ok = ::GetOverlappedResult(end.pipe, &more, &count, TRUE);
        if (ok || ::GetLastError() != ERROR_MORE_DATA) break;
      }
      throw SerializationError("proc::mp::Queue: a pipe message of more than " +
                               std::to_string(queue_chunk) + " bytes; not one of ours");
    }
    proc::detail::throw_win32(error, "proc::mp::Queue: ReadFile");
  }
}

/// Receives one message and decodes it with `decode(std::string_view)`.
template <class Decode>
ReceiveResult receive_message(QueueEnd& end, const QueueDeadline& deadline, bool try_only,
                              Decode&& decode) {
  SideLock lock(end.mutex, deadline, try_only);
  if (!lock.held()) return ReceiveResult::not_now;
  end.buffer.resize(queue_chunk);
  std::string message;     // a big message, as its chunks come in
  std::uint64_t want = 0;  // its size; 0: not inside one
  for (;;) {
    std::size_t n = 0;
    // Inside a big message, its other chunks are on the way: wait for them (see above).
    ChunkRead got = want != 0 ? read_chunk(end, std::nullopt, false, true, n)
                              : read_chunk(end, deadline, try_only, false, n);
    if (got == ChunkRead::not_now) return ReceiveResult::not_now;
    if (got == ChunkRead::closed) return ReceiveResult::closed;  // a torn message is dropped
    if (got == ChunkRead::torn) {  // its sender died inside it: drop it, wait for the next
      want = 0;
      message.clear();
      continue;
    }
    const char kind = end.buffer[0];
    std::string_view body(end.buffer.data() + 1, n - 1);
    if (kind == chunk_whole) {  // (a big message before it was torn: its sender died)
      decode(body);
      return ReceiveResult::value;
    }
    if (kind == chunk_first) {
      std::uint64_t size = 0;
      if (body.size() < sizeof size)
        throw SerializationError("proc::mp::Queue: a malformed first chunk");
      std::memcpy(&size, body.data(), sizeof size);
      body.remove_prefix(sizeof size);
      if (size <= body.size())
        throw SerializationError("proc::mp::Queue: a big message's size (" + std::to_string(size) +
                                 ") does not exceed its first chunk");
      message.clear();
      // Grown as chunks come, not from the announced size alone.
      message.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(size, 1u << 26)));
      message.append(body);
      want = size;
      continue;
    }
    if (kind != chunk_more)
      throw SerializationError("proc::mp::Queue: a chunk of unknown kind " +
                               std::to_string(static_cast<int>(kind)));
    if (want == 0) continue;  // left by a receiver that died inside its message: skip it
    if (body.size() > want - message.size())
      throw SerializationError("proc::mp::Queue: a big message longer than announced");
    message.append(body);
    if (message.size() == want) {
      decode(std::string_view(message));
      return ReceiveResult::value;
    }
  }
}

/// A new queue: its receiving end and its sending end.
inline std::pair<std::shared_ptr<QueueEnd>, std::shared_ptr<QueueEnd>> make_queue() {
  proc::detail::UniqueHandle readers(::CreateMutexW(nullptr, FALSE, nullptr));
  proc::detail::UniqueHandle writers(::CreateMutexW(nullptr, FALSE, nullptr));
  if (!readers || !writers) proc::detail::throw_last_error("proc::mp::Queue: CreateMutex");
  HandlePair p = named_pipe_pair({false, true, queue_buffer_size, "proc::mp::Queue"});
  proc::detail::UniqueHandle server(p.first), client(p.second);
  HANDLE self = ::GetCurrentProcess(), watch = nullptr;
  if (!::DuplicateHandle(self, writers.get(), self, &watch, 0, FALSE, DUPLICATE_SAME_ACCESS))
    proc::detail::throw_last_error("proc::mp::Queue: DuplicateHandle");
  auto rx = std::make_shared<QueueEnd>(server.get(), readers.get(), watch);
  server.release(), readers.release();
  auto tx = std::make_shared<QueueEnd>(client.get(), writers.get());
  client.release(), writers.release();
  return {std::move(rx), std::move(tx)};
}

/// The Writer for one message (its own: a thread_local one would be destroyed after mingw's
/// emutls freed it, see channel.hpp's EventPool).
class MessageWriter {
 public:
  Writer& get() noexcept { return w_; }

 private:
  Writer w_;
};

/// Encodes an end as its handle slots: the pipe end, the side's mutex, and for a receiver the
/// writers' mutex.
inline void write_queue_end(Writer& w, const QueueEnd& end) {
  w.write_u64(w.add_handle(end.pipe));
  w.write_u64(w.add_handle(end.mutex));
  if (end.writers != invalid_handle) w.write_u64(w.add_handle(end.writers));
}

/// Decodes an end passed by a parent; the pipe end must be a message-mode pipe's end of the
/// right side (the server end receives, the client end sends).
inline std::shared_ptr<QueueEnd> read_queue_end(Reader& r, bool sending) {
  std::uint64_t pipe_slot = r.read_u64();
  std::uint64_t mutex_slot = r.read_u64();
  native_handle pipe = r.take_handle(static_cast<std::size_t>(pipe_slot));
  auto end = std::make_shared<QueueEnd>(pipe, invalid_handle);
  end->mutex = r.take_handle(static_cast<std::size_t>(mutex_slot));
  if (!sending) end->writers = r.take_handle(static_cast<std::size_t>(r.read_u64()));
  DWORD flags = 0;
  if (::GetFileType(pipe) != FILE_TYPE_PIPE ||
      !::GetNamedPipeInfo(pipe, &flags, nullptr, nullptr, nullptr) ||
      (flags & PIPE_TYPE_MESSAGE) == 0 || ((flags & PIPE_SERVER_END) != 0) == sending)
    r.fail("the handle passed is not a queue's pipe");
  return end;
}

}  // namespace proc::mp::detail
