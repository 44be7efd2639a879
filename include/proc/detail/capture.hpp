#pragma once
// The sinks behind communicate() and stream_lines(): CaptureBuffer collects a stream into the
// result string (through ByteStore, see buffer.hpp), LineSink cuts it into lines for callbacks.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "proc/detail/buffer.hpp"
#include "proc/detail/platform.hpp"
#include "proc/detail/sink.hpp"

namespace proc::detail {

/// Thrown by a capture that reached Options::max_output (turned into OutputLimitExceeded by the
/// helper that ran the child).
struct OutputLimitReached {};

/// Captured output (see ByteStore: read straight into storage that becomes the result string).
/// With a limit, it keeps at most `limit` bytes: the first byte past it throws
/// OutputLimitReached once, and later bytes (a draining pump) are dropped.
class CaptureBuffer final : public Sink {
 public:
  void set_limit(std::optional<std::size_t> limit) noexcept { limit_ = limit; }
  [[nodiscard]] bool exceeded() const noexcept { return exceeded_; }

  char* prepare(std::size_t& room) override {
    char* p = store_.prepare(std::size_t{64} << 10, room);
    if (limit_) {
      if (exceeded_) return scratch(room);
      room = std::min(room, *limit_ - store_.size() + 1);  // one byte past the limit tells
    }
    return p;
  }
  void commit(std::size_t n) override {
    if (exceeded_) return;
    if (limit_ && store_.size() + n > *limit_) {
      store_.commit(*limit_ - store_.size());
      exceeded_ = true;
      throw OutputLimitReached{};
    }
    store_.commit(n);
  }

  void append(std::string_view s) { store_.append(s); }
  [[nodiscard]] std::size_t size() const noexcept { return store_.size(); }
  /// A copy of the data so far (for TimeoutExpired, which must not consume it).
  [[nodiscard]] std::string copy() const { return std::string(store_.view()); }
  /// The data, leaving this buffer empty.
  std::string take() { return store_.take(); }

 private:
  char* scratch(std::size_t& room) {
    if (!drop_) drop_.reset(new char[4096]);
    room = 4096;
    return drop_.get();
  }
  ByteStore store_;
  std::optional<std::size_t> limit_;
  bool exceeded_ = false;
  std::unique_ptr<char[]> drop_;  // where bytes past the limit go
};

/// A sink that copies every chunk to a handle (proc::tee's target) before its own sink gets it.
/// A target that fails (a closed pipe) stops getting copies; the capture goes on.
class TeeSink final : public Sink {
 public:
  TeeSink(Sink& inner, native_handle target) : inner_(inner), target_(target) {}
  char* prepare(std::size_t& room) override { return last_ = inner_.prepare(room); }
  void commit(std::size_t n) override {
    if (n && !broken_) {
      try {
        write_all(target_, last_, n);
      } catch (...) {
        broken_ = true;
      }
    }
    inner_.commit(n);
  }

 private:
  Sink& inner_;
  native_handle target_;
  char* last_ = nullptr;
  bool broken_ = false;
};

/// Longest line `stream_lines` delivers whole; a longer one arrives in pieces of this size.
inline constexpr std::size_t max_line_length = 8u << 20;

/// Splits what it is given into lines and calls `on_line` with each (without the `\n`). The
/// unfinished tail is kept in `rest` (owned by the caller, so it survives a timed-out call).
class LineSink final : public Sink {
 public:
  template <class F>
  LineSink(std::string& rest, F&& on_line) : rest_(rest), on_line_(std::forward<F>(on_line)) {}

  char* prepare(std::size_t& room) override {
    constexpr std::size_t chunk = 64 * 1024;
    std::size_t used = rest_.size();
    if (rest_.capacity() - used < chunk) rest_.reserve(used + std::max(chunk, used / 2));
#if defined(PROC_HAVE_SET_SIZE_UNINIT)
    room = rest_.capacity() - used;  // read() fills it; commit() sets the size
#else
    rest_.resize(rest_.capacity());  // zero-fills the room first
    room = rest_.size() - used;
#endif
    used_ = used;
    return rest_.data() + used;
  }

  void commit(std::size_t n) override {
    std::size_t end = used_ + n;
    std::size_t begin = 0;
    // However this ends (a callback may throw), the delivered lines are gone from `rest` and
    // the unfinished tail is kept at its front with the right size, so a resumed call neither
    // repeats a line nor glues old bytes to new ones. The line whose callback threw counts as
    // delivered.
    struct Keep {
      std::string& rest;
      std::size_t& begin;
      std::size_t end;
      ~Keep() {
        if (begin) std::memmove(rest.data(), rest.data() + begin, end - begin);
#if defined(PROC_HAVE_SET_SIZE_UNINIT)
        set_size_uninit(rest, end - begin);
#else
        rest.resize(end - begin);
#endif
      }
    } keep{rest_, begin, end};
    const char* data = rest_.data();
    std::size_t scan = used_;
    while (const void* hit = std::memchr(data + scan, '\n', end - scan)) {
      std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(hit) - data);
      while (nl - begin > max_line_length) {  // a long line found whole: still in pieces
        std::size_t piece = begin;
        begin += max_line_length;
        deliver(std::string_view(data + piece, max_line_length));
      }
      std::size_t line_begin = begin;
      begin = scan = nl + 1;
      deliver(std::string_view(data + line_begin, nl - line_begin));
    }
    // A line longer than the limit goes out in pieces rather than growing without bound. Only
    // once it is *longer*: a line of exactly the limit may still end with the next byte.
    while (end - begin > max_line_length) {
      std::size_t piece = begin;
      begin += max_line_length;
      deliver(std::string_view(data + piece, max_line_length));
    }
  }

  /// At end of stream: the last line, if it had no `\n`.
  void finish() {
    if (rest_.empty()) return;
    std::string last = std::move(rest_);
    rest_.clear();
    deliver(last);
  }

 private:
  void deliver(std::string_view line) {
    if (on_line_) on_line_(line);
  }
  std::string& rest_;
  std::function<void(std::string_view)> on_line_;
  std::size_t used_ = 0;
};

}  // namespace proc::detail
