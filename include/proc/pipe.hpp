#pragma once
/// \file
/// `proc::PipeEnd`: the parent's end of a pipe to or from a child.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "proc/detail/buffer.hpp"
#include "proc/detail/platform.hpp"
#include "proc/duration.hpp"
#include "proc/errors.hpp"

namespace proc {

/// A descriptor (POSIX) or `HANDLE` (Windows): what `native_handle()` members return.
using native_handle_type = detail::native_handle;
/// The value of a `native_handle_type` that names nothing (-1 on POSIX, null on Windows).
inline constexpr native_handle_type invalid_handle = detail::invalid_handle;

/// Owns one end of a pipe (a file descriptor on POSIX, a `HANDLE` on Windows) and closes it on
/// destruction.
///
/// Reading is buffered only as far as `readline()` and `lines()` need: bytes they read ahead are
/// returned first by `read()`, `read_all()` and `Popen::communicate()`, so nothing is lost when
/// the styles are mixed. All reads block until data arrives (use `native_handle()` with
/// `poll`/`epoll`/asio for readiness).
class PipeEnd {
 public:
  using native_handle_type = detail::native_handle;

  /// A closed end.
  PipeEnd() noexcept = default;
  /// Takes ownership of `handle`.
  explicit PipeEnd(native_handle_type handle) noexcept : h_(handle) {}

  PipeEnd(PipeEnd&& other) noexcept
      : h_(std::exchange(other.h_, detail::invalid_handle)),
        buf_(std::move(other.buf_)),
        cap_(std::exchange(other.cap_, 0)),
        begin_(std::exchange(other.begin_, 0)),
        end_(std::exchange(other.end_, 0)) {}
  PipeEnd& operator=(PipeEnd&& other) noexcept {
    if (this != &other) {
      detail::close_handle(h_);
      h_ = std::exchange(other.h_, detail::invalid_handle);
      buf_ = std::move(other.buf_);
      cap_ = std::exchange(other.cap_, 0);
      begin_ = std::exchange(other.begin_, 0);
      end_ = std::exchange(other.end_, 0);
    }
    return *this;
  }
  PipeEnd(const PipeEnd&) = delete;
  PipeEnd& operator=(const PipeEnd&) = delete;
  ~PipeEnd() { detail::close_handle(h_); }

  /// Whether this end is open.
  [[nodiscard]] bool is_open() const noexcept { return h_ != detail::invalid_handle; }
  explicit operator bool() const noexcept { return is_open(); }

  /// The descriptor or `HANDLE`, still owned by this object.
  [[nodiscard]] native_handle_type native_handle() const noexcept { return h_; }

  /// Gives up ownership: returns the handle and leaves this end closed.
  native_handle_type release() noexcept { return std::exchange(h_, detail::invalid_handle); }

  /// Closes this end now (a child reading from it sees end of stream). Idempotent.
  void close() noexcept {
    detail::close_handle(std::exchange(h_, detail::invalid_handle));
    buf_.reset();
    cap_ = begin_ = end_ = 0;
  }

  /// Writes all of `data`, blocking as needed.
  ///
  /// Throws `std::system_error` — `EPIPE` (POSIX) / `ERROR_NO_DATA`, `ERROR_BROKEN_PIPE`
  /// (Windows) when the child has closed its end; the parent is never killed by SIGPIPE.
  void write(std::string_view data) {
    ensure_open("write");
    detail::write_all(h_, data.data(), data.size());
  }

  /// Reads up to `buf.size()` bytes (at least one unless at end of stream); 0 at end of stream.
  std::size_t read(std::span<char> buf) {
    ensure_open("read");
    if (buf.empty()) return 0;
    if (begin_ < end_) {
      std::size_t n = std::min(buf.size(), end_ - begin_);
      std::memcpy(buf.data(), buf_.get() + begin_, n);
      begin_ += n;
      return n;
    }
    return detail::read_some(h_, buf.data(), buf.size());
  }

  /// As `read(buf)`, but throws `TimeoutExpired` when nothing arrived within `timeout` (0 still
  /// means the end of the stream).
  std::size_t read(std::span<char> buf, Duration timeout) {
    ensure_open("read");
    if (buf.empty() || begin_ < end_) return read(buf);
    wait_for_bytes(detail::deadline_after(timeout.value), timeout);
    return detail::read_some(h_, buf.data(), buf.size());
  }

  /// Reads until end of stream and returns everything.
  std::string read_all() {
    ensure_open("read_all");
    std::string out = take_buffered();
    detail::grow_pipe(h_, 1 << 20);
    detail::read_to_end(h_, out);
    return out;
  }

  /// The next line including its `\n` (as Python's `readline`); a last line without `\n` is
  /// returned as it is; `std::nullopt` at end of stream.
  std::optional<std::string> readline() {
    ensure_open("readline");
    auto line = next_line(true);
    if (!line) return std::nullopt;
    return std::string(*line);
  }

  /// As `readline()`, but throws `TimeoutExpired` when the line is not complete within
  /// `timeout`; the bytes of an unfinished line are kept, and the next call goes on with them.
  std::optional<std::string> readline(Duration timeout) {
    ensure_open("readline");
    auto line = next_line(true, detail::deadline_after(timeout.value), timeout);
    if (!line) return std::nullopt;
    return std::string(*line);
  }

  /// An input range over the remaining lines, each a `std::string_view` without its `\n`
  /// (valid until the next increment). A last line without `\n` is still a line. A `\r`
  /// before the `\n` is kept.
  class LineRange;
  LineRange lines();

  /// How many bytes `readline`/`lines` read ahead that no read has consumed yet.
  [[nodiscard]] std::size_t buffered() const noexcept { return end_ - begin_; }

  /// Puts `bytes` back in front of the read-ahead bytes: the next read returns them first.
  void unread(std::string_view bytes) {
    if (bytes.empty()) return;
    if (begin_ >= bytes.size()) {
      begin_ -= bytes.size();
      std::memcpy(buf_.get() + begin_, bytes.data(), bytes.size());
      return;
    }
    std::size_t held = end_ - begin_;
    std::size_t cap = std::max<std::size_t>(64 * 1024, (bytes.size() + held) * 2);
    std::unique_ptr<char[]> bigger(new char[cap]);  // not zeroed: filled right here
    std::memcpy(bigger.get(), bytes.data(), bytes.size());
    if (held) std::memcpy(bigger.get() + bytes.size(), buf_.get() + begin_, held);
    buf_ = std::move(bigger);
    cap_ = cap;
    begin_ = 0;
    end_ = bytes.size() + held;
  }

  /// Bytes read ahead by `readline`/`lines` and not yet consumed (they are handed out first).
  std::string take_buffered() {
    std::string out(buf_.get() + begin_, end_ - begin_);
    begin_ = end_ = 0;
    return out;
  }

  /// The next line (without `\n` unless `keep_newline`), or nullopt at end of stream. The view
  /// stays valid until the next call. Used by `lines()`, `readline()` and `stream_lines`.
  std::optional<std::string_view> next_line(
      bool keep_newline = false,
      std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
      Duration timeout = {}) {
    std::size_t scanned = begin_;
    for (;;) {
      auto* nl = scanned < end_
                     ? static_cast<char*>(std::memchr(buf_.get() + scanned, '\n', end_ - scanned))
                     : nullptr;
      if (nl) {
        std::size_t stop = static_cast<std::size_t>(nl - buf_.get());
        std::string_view line(buf_.get() + begin_, stop - begin_ + (keep_newline ? 1 : 0));
        begin_ = stop + 1;
        return line;
      }
      scanned = end_ - begin_;  // offset after the compaction fill() is about to do
      if (deadline) wait_for_bytes(*deadline, timeout);
      if (!fill()) {
        if (begin_ == end_) return std::nullopt;
        std::string_view line(buf_.get() + begin_, end_ - begin_);
        begin_ = end_;
        return line;
      }
      scanned += begin_;
    }
  }

 private:
  // Throws TimeoutExpired unless bytes (or the end) arrive by `deadline`.
  void wait_for_bytes(std::chrono::steady_clock::time_point deadline, Duration timeout) {
    if (!detail::wait_readable_until(h_, deadline)) throw TimeoutExpired({}, timeout.value);
  }

  void ensure_open(const char* what) const {
    if (!is_open())
      throw std::logic_error(std::string("proc::PipeEnd::") + what + ": the pipe end is closed");
  }

  // Reads more into the buffer, first moving the unconsumed bytes to its front (and growing it
  // when a line is longer than the buffer). Returns false at end of stream.
  bool fill() {
    constexpr std::size_t chunk = 64 * 1024;
    if (begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (cap_ - end_ < chunk / 2) {
      std::size_t cap = cap_ == 0 ? chunk : cap_ * 2;
      std::unique_ptr<char[]> bigger(new char[cap]);  // not zeroed: read() fills it
      if (end_) std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      cap_ = cap;
    }
    std::size_t n = detail::read_some(h_, buf_.get() + end_, cap_ - end_);
    end_ += n;
    return n > 0;
  }

  native_handle_type h_ = detail::invalid_handle;
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

/// The range returned by `PipeEnd::lines()`: iterate it once, with range-for.
class PipeEnd::LineRange {
 public:
  class iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;

    iterator() = default;
    explicit iterator(PipeEnd* p) : p_(p) { ++*this; }

    std::string_view operator*() const { return line_; }
    iterator& operator++() {
      auto line = p_->next_line();
      if (line)
        line_ = *line;
      else
        p_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.p_ == nullptr; }

   private:
    PipeEnd* p_ = nullptr;
    std::string_view line_;
  };

  explicit LineRange(PipeEnd* p) : p_(p) {}
  iterator begin() { return iterator(p_); }
  std::default_sentinel_t end() const { return {}; }

 private:
  PipeEnd* p_;
};

inline PipeEnd::LineRange PipeEnd::lines() {
  ensure_open("lines");
  return LineRange(this);
}

}  // namespace proc
