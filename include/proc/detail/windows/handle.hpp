#pragma once
// HANDLEs and the blocking I/O on them.
//
// Calls: CreatePipe, CreateFileW (files and NUL), ReadFile, WriteFile, GetFileType,
// GetHandleInformation, CloseHandle.
//
// Invariants:
// - Every handle created here is NOT inheritable (no SECURITY_ATTRIBUTES with bInheritHandle),
//   so a child started by another thread at the same moment never inherits it. spawn.hpp gives a
//   child inheritable *duplicates* of its three standard handles and nothing else.
// - `invalid_handle` is null: INVALID_HANDLE_VALUE returned by CreateFileW is turned into it at
//   once (and -1 is also the current-process pseudo handle, so it must never be stored).
// - End of stream on a pipe is ERROR_BROKEN_PIPE from ReadFile: read_some returns 0 for it. A
//   successful zero-byte read on a pipe (a writer's WriteFile of 0 bytes) is not the end: it is
//   retried. Writing to a pipe whose reader has gone is ERROR_NO_DATA / ERROR_BROKEN_PIPE as a
//   std::system_error; Windows has no SIGPIPE.
// - A pump that ran out of time may leave one write in flight on a stdin pipe (pump.hpp explains
//   why it is not cancelled). Such writes are registered here by handle: close_handle cancels and
//   joins one before closing, and write_all waits for one first, so bytes never overtake each
//   other and no thread ever writes to a closed (or reused) handle value.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>

#include "proc/detail/mutex.hpp"
#include "proc/detail/windows/win32.hpp"

namespace proc::detail {

/// A Windows HANDLE.
using native_handle = void*;
inline constexpr native_handle invalid_handle = nullptr;

/// A write left running on a pipe by a pump that ran out of time (implemented in pump.hpp).
class DetachedWrite {
 public:
  virtual ~DetachedWrite() = default;
  /// Cancels the write and joins its thread (the pipe is about to be closed).
  virtual void abandon() noexcept = 0;
  /// Blocks until the write in flight has finished (successfully or not).
  virtual void wait_idle() = 0;
};

/// The writes left in flight, by pipe handle.
class DetachedWrites {
 public:
  static DetachedWrites& instance() {
    static DetachedWrites* r = new DetachedWrites();  // leaked: may be used during exit
    return *r;
  }
  void put(native_handle h, std::shared_ptr<DetachedWrite> w) {
    std::lock_guard lock(m_);
    map_[h] = std::move(w);
    any_ = true;
  }
  std::shared_ptr<DetachedWrite> take(native_handle h) {
    std::lock_guard lock(m_);
    if (!any_) return nullptr;
    auto it = map_.find(h);
    if (it == map_.end()) return nullptr;
    auto w = std::move(it->second);
    map_.erase(it);
    any_ = !map_.empty();
    return w;
  }
  /// Waits until no write is in flight on `h` (the entry stays for the next pump). The map is
  /// not locked while waiting.
  void wait_idle(native_handle h) {
    std::shared_ptr<DetachedWrite> w;
    {
      std::lock_guard lock(m_);
      if (!any_) return;
      auto it = map_.find(h);
      if (it == map_.end()) return;
      w = it->second;
    }
    w->wait_idle();
  }

 private:
  Mutex m_;
  std::map<native_handle, std::shared_ptr<DetachedWrite>> map_;
  bool any_ = false;
};

/// Closes `h`, first ending a write a pump left in flight on it.
inline void close_handle(native_handle h) noexcept {
  if (h == invalid_handle) return;
  try {
    if (auto w = DetachedWrites::instance().take(h)) w->abandon();
  } catch (...) {
    // Out of memory for the registry: nothing better to do than closing.
  }
  ::CloseHandle(h);
}

/// A handle as text, for messages ("0x1a4").
inline std::string handle_to_string(native_handle h) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx",
                static_cast<unsigned long long>(reinterpret_cast<std::uintptr_t>(h)));
  return buf;
}

/// Whether `h` is an open handle of this process.
inline bool handle_is_valid(native_handle h) noexcept {
  DWORD flags = 0;
  return h != invalid_handle && h != INVALID_HANDLE_VALUE && ::GetHandleInformation(h, &flags);
}

struct PipePair {
  native_handle read = invalid_handle;
  native_handle write = invalid_handle;
};

/// The buffer size asked of CreatePipe (Windows rounds and may ignore it; 0 would mean 4 KiB).
inline constexpr DWORD pipe_buffer_size = 64 * 1024;

/// A new anonymous pipe; neither end is inheritable.
inline PipePair make_pipe() {
  HANDLE r = nullptr, w = nullptr;
  if (!::CreatePipe(&r, &w, nullptr, pipe_buffer_size)) throw_last_error("proc: CreatePipe");
  return {r, w};
}

/// Opens `path` (not inheritable): for reading, or for writing, truncating or appending.
/// Files are shared for reading, writing and deletion, as POSIX files are.
inline native_handle open_file(const std::filesystem::path& path, bool for_write, bool append) {
  DWORD access = !for_write ? GENERIC_READ
                 : append   ? (FILE_APPEND_DATA | SYNCHRONIZE)
                            : GENERIC_WRITE;
  DWORD disposition = !for_write ? OPEN_EXISTING : append ? OPEN_ALWAYS : CREATE_ALWAYS;
  HANDLE h = ::CreateFileW(path.wstring().c_str(), access,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                           disposition, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE)
    throw_last_error("proc: cannot open '" + to_utf8(path.wstring()) + "'");
  return h;
}

/// The null device (NUL), not inheritable.
inline native_handle open_devnull(bool for_write) {
  HANDLE h = ::CreateFileW(L"NUL", for_write ? GENERIC_WRITE : GENERIC_READ,
                           FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0, nullptr);
  if (h == INVALID_HANDLE_VALUE) throw_last_error("proc: cannot open NUL");
  return h;
}

/// A duplicate of `h`, not inheritable.
inline native_handle duplicate(native_handle h) {
  HANDLE out = nullptr;
  if (!::DuplicateHandle(::GetCurrentProcess(), h, ::GetCurrentProcess(), &out, 0, FALSE,
                         DUPLICATE_SAME_ACCESS))
    throw_last_error("proc: DuplicateHandle");
  return out;
}

/// This process's own stdin (0), stdout (1) or stderr (2) (not to be closed).
inline native_handle standard_handle(int i) noexcept {
  const DWORD ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  HANDLE h = ::GetStdHandle(ids[i]);
  return h == INVALID_HANDLE_VALUE ? nullptr : h;
}

/// Pipe buffers are sized at creation on Windows: nothing to grow.
inline void grow_pipe(native_handle /*h*/, int /*bytes*/) noexcept {}

/// Whether a failed ReadFile's error means end of stream.
inline bool is_end_of_stream(DWORD e) noexcept {
  return e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF || e == ERROR_PIPE_NOT_CONNECTED;
}

/// Whether a failed WriteFile's error means the reader has gone.
inline bool is_reader_gone(DWORD e) noexcept {
  return e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED;
}

/// One ReadFile of at most `n` bytes: the count, 0 at end of stream (and for a zero-byte
/// message on a pipe, which the caller may retry), or the error in `error`.
inline std::size_t read_once(native_handle h, char* buf, std::size_t n, DWORD& error) noexcept {
  DWORD got = 0;
  DWORD want = n > 0x7fffffff ? 0x7fffffffu : static_cast<DWORD>(n);
  error = ::ReadFile(h, buf, want, &got, nullptr) ? 0 : ::GetLastError();
  return got;
}

/// Waits until the pipe `h` has bytes to read (or has ended) or `deadline` passes; false on
/// timeout. Anonymous pipes cannot be waited on: this looks with PeekNamedPipe in growing steps
/// (50 us to 10 ms). A handle that is not a pipe counts as readable.
inline bool wait_readable_until(native_handle h, std::chrono::steady_clock::time_point deadline) {
  auto step = std::chrono::microseconds(50);
  for (;;) {
    DWORD avail = 0;
    if (!::PeekNamedPipe(h, nullptr, 0, nullptr, &avail, nullptr) || avail > 0) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    auto nap = std::min<std::chrono::steady_clock::duration>(step, deadline - now);
    ::Sleep(static_cast<DWORD>(
        std::max<long long>(1, std::chrono::ceil<std::chrono::milliseconds>(nap).count())));
    step = std::min(step * 2, std::chrono::microseconds(10000));
  }
}

/// Reads at most `n` bytes; returns 0 at end of stream. Throws `std::system_error`.
inline std::size_t read_some(native_handle h, char* buf, std::size_t n) {
  if (n == 0) return 0;
  bool is_pipe = false, checked = false;
  for (;;) {
    DWORD error = 0;
    std::size_t got = read_once(h, buf, n, error);
    if (error) {
      if (is_end_of_stream(error)) return 0;
      throw_win32(error, "proc: ReadFile");
    }
    if (got > 0) return got;
    if (!checked) is_pipe = ::GetFileType(h) == FILE_TYPE_PIPE, checked = true;
    if (!is_pipe) return 0;  // a file at its end
  }
}

/// Writes all `n` bytes. Throws `std::system_error` (ERROR_NO_DATA or ERROR_BROKEN_PIPE when
/// the reader has gone).
inline void write_all(native_handle h, const char* data, std::size_t n) {
  DetachedWrites::instance().wait_idle(h);  // earlier bytes of a timed-out pump go first
  while (n > 0) {
    DWORD put = 0;
    DWORD want = n > (1u << 30) ? (1u << 30) : static_cast<DWORD>(n);
    if (!::WriteFile(h, data, want, &put, nullptr)) throw_last_error("proc: WriteFile");
    data += put;
    n -= put;
  }
}

}  // namespace proc::detail
