#pragma once
// Framed messages over one byte channel: the wire of a Connection and of a Process's control
// channel. Platform-free; the bytes move through detail/<os>/channel.hpp.
//
// A frame is a u64 length (native byte order: both ends are the same program) and that many
// bytes. Receiving is a resumable state machine, so a call that reaches its deadline in the
// middle of a frame keeps what arrived and the next call goes on from there. Frames are read
// into one buffer that is reused from frame to frame (no allocation, no page faults for a
// stream of messages); room for a frame is reserved up to reserve_limit when its length is
// known, and grows beyond that only as bytes arrive, so a hostile length of 2^60 costs at most
// reserve_limit of untouched memory.
//
// Thread safety: one thread may send while another receives; two senders (or two receivers)
// take turns on a mutex each, so frames never interleave.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proc/detail/buffer.hpp"
#include "proc/detail/mutex.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/platform.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp::detail {

/// Room reserved for a frame as soon as its length is known; past it, the buffer grows only as
/// the bytes arrive (so a hostile length of 2^60 costs at most this much, untouched).
inline constexpr std::size_t reserve_limit = std::size_t{64} << 20;
/// A receive buffer bigger than this is given back after its frame, not kept for the next.
inline constexpr std::size_t keep_limit = std::size_t{16} << 20;
/// How much one read asks for when a small piece of a frame is wanted: a small frame's header
/// and body arrive in one system call; what it reads of later frames is kept for them.
inline constexpr std::size_t read_ahead = 64 * 1024;
/// For the tests of every size: the size around which reads change from read-ahead to direct.
inline constexpr std::size_t small_frame = read_ahead;

class FrameChannel {
 public:
  enum class Got { frame, closed, timeout };

  FrameChannel() = default;
  explicit FrameChannel(native_handle h) noexcept : h_(h) {}
  FrameChannel(FrameChannel&& other) noexcept { take_from(other); }
  FrameChannel& operator=(FrameChannel&& other) noexcept {
    if (this != &other) {
      close();
      take_from(other);
    }
    return *this;
  }
  FrameChannel(const FrameChannel&) = delete;
  FrameChannel& operator=(const FrameChannel&) = delete;
  ~FrameChannel() { close(); }

  [[nodiscard]] bool is_open() const noexcept { return h_ != invalid_handle; }
  [[nodiscard]] native_handle handle() const noexcept { return h_; }
  native_handle release() noexcept { return std::exchange(h_, invalid_handle); }
  void close() noexcept {
    close_channel(std::exchange(h_, invalid_handle));
    reset_receive();
    ahead_pos_ = ahead_end_ = 0;
  }

  // ---- sending ------------------------------------------------------------------------------

  /// Makes `w` ready for a message: empty, with room for the frame header at the front.
  static void begin(Writer& w) {
    w.clear();
    w.buffer().append(sizeof(std::uint64_t), '\0');
  }

  /// Sends the message in `w` (started with begin()). False when the reader has gone.
  bool send(Writer& w) {
    std::uint64_t len = w.size() - sizeof len;
    std::memcpy(w.buffer().data(), &len, sizeof len);
    std::lock_guard lock(send_m_);
    ensure_open();
    if (w.size() == w.buffer().size()) {
      Chunk one{w.buffer().data(), w.buffer().size()};
      return write_chunks(h_, std::span(&one, 1));
    }
    std::vector<Chunk> chunks;
    for (const auto& s : w.segments()) chunks.push_back({s.data, s.size});
    return write_chunks(h_, chunks);
  }

  /// Sends `bytes` as one frame, without copying them. False when the reader has gone.
  bool send_bytes(std::string_view bytes) {
    std::uint64_t len = bytes.size();
    Chunk chunks[2] = {{reinterpret_cast<const char*>(&len), sizeof len},
                       {bytes.data(), bytes.size()}};
    std::lock_guard lock(send_m_);
    ensure_open();
    return write_chunks(h_, chunks);
  }

  // ---- receiving ----------------------------------------------------------------------------

  /// Receives the rest of the current frame. `frame`: complete (see view()/take()); `closed`:
  /// the stream ended between frames; `timeout`: the deadline passed (what arrived is kept).
  /// Throws PeerDiedMidMessage when the stream ends inside a frame. Call with the receive lock
  /// held (receive_mutex()).
  Got receive(std::optional<Clock::time_point> deadline) {
    if (complete_) return Got::frame;
    if (Got g = receive_header(deadline); g != Got::frame) return g;
    while (got_ < header_) {
      if (deadline && !readable(*deadline)) return Got::timeout;
      if (got_ == buf_.size()) grow();
      std::size_t n = take_some(buf_.data() + got_, static_cast<std::size_t>(buf_.size() - got_));
      if (n == 0) died();
      got_ += n;
    }
    complete_ = true;
    return Got::frame;
  }

  /// Receives the rest of the current frame's header only. `frame`: the length is known
  /// (pending_length()), and room for the frame is reserved.
  Got receive_header(std::optional<Clock::time_point> deadline) {
    ensure_open();
    if (header_got_ == sizeof header_) return Got::frame;
    while (header_got_ < sizeof header_) {
      if (deadline && !readable(*deadline)) return Got::timeout;
      std::size_t n =
          take_some(reinterpret_cast<char*>(&header_) + header_got_, sizeof header_ - header_got_);
      if (n == 0) {
        if (header_got_ == 0) return Got::closed;
        died();
      }
      header_got_ += n;
    }
    // Room for what a hostile length could claim is bounded: up to reserve_limit at once, and
    // beyond that only as the bytes arrive.
    size_for(buf_, static_cast<std::size_t>(std::min<std::uint64_t>(header_, reserve_limit)));
    return Got::frame;
  }

  /// The frame's length once its header has arrived (it may still be incomplete).
  [[nodiscard]] std::optional<std::uint64_t> pending_length() const noexcept {
    if (header_got_ < sizeof header_) return std::nullopt;
    return header_;
  }
  /// Whether part of a frame has arrived or bytes were read ahead: then the handle's readiness
  /// says nothing, and a receive may not need to wait.
  [[nodiscard]] bool in_frame() const noexcept {
    return header_got_ > 0 || complete_ || ahead_pos_ < ahead_end_;
  }
  /// Whether bytes of later frames were read ahead (the handle may not be readable for them).
  [[nodiscard]] bool has_read_ahead() const noexcept { return ahead_pos_ < ahead_end_; }
  /// Whether a whole frame is waiting (receive() would return it at once).
  [[nodiscard]] bool has_frame() const noexcept {
    return header_got_ == sizeof header_ && got_ == header_;
  }

  /// The complete frame, valid until the next receive, consume or take.
  [[nodiscard]] std::string_view view() const noexcept {
    return std::string_view(buf_.data(), static_cast<std::size_t>(header_));
  }
  /// Done with the frame (after view()). The buffer is kept for the next one unless it grew big.
  void consume() noexcept {
    if (buf_.capacity() > keep_limit) std::string().swap(buf_);
    reset_receive();
  }
  /// The complete frame as a string of its own (the buffer itself: no copy); done with it.
  std::string take() {
    std::string out = std::move(buf_);
    buf_ = std::string();
    size_for(out, static_cast<std::size_t>(header_));
    reset_receive();
    return out;
  }
  /// Reads the next `n` bytes of the current frame straight into `out`, waiting as needed (the
  /// header has been received; none of these bytes is in the buffer). When the frame is then
  /// complete, the channel is ready for the next one.
  void receive_into(char* out, std::size_t n) {
    while (n > 0) {
      std::size_t r = take_some(out, n);
      if (r == 0) died();
      out += r;
      n -= r;
      got_ += r;
    }
    if (got_ == header_) reset_receive();
  }
  [[nodiscard]] std::uint64_t received_of_frame() const noexcept { return got_; }

  proc::detail::Mutex& receive_mutex() noexcept { return recv_m_; }

 private:
  // The string's size becomes n without writing the bytes first where the library allows.
  static void size_for(std::string& s, std::size_t n) {
#if defined(PROC_HAVE_SET_SIZE_UNINIT)
    s.reserve(n);
    proc::detail::set_size_uninit(s, n);
#else
    s.resize(n);
#endif
  }
  void ensure_open() const {
    if (h_ == invalid_handle) throw ChannelClosed("proc::mp: the connection is closed");
  }
  bool readable(Clock::time_point deadline) {
    if (ahead_pos_ < ahead_end_) return true;
    native_handle one[1] = {h_};
    return !wait_readable(one, deadline).empty();
  }
  // Up to n bytes of the stream (at least one, 0 at its end): first what was read ahead; a small
  // want is filled by one read of up to read_ahead bytes (a whole small frame, header and body,
  // in one system call), a big one is read straight into `p`.
  std::size_t take_some(char* p, std::size_t n) {
    if (ahead_pos_ == ahead_end_) {
      if (n >= read_ahead) return read_some(h_, p, n);
      if (ahead_.size() < read_ahead) size_for(ahead_, read_ahead);
      ahead_pos_ = 0;
      ahead_end_ = read_some(h_, ahead_.data(), read_ahead);
      if (ahead_end_ == 0) return 0;
    }
    std::size_t k = std::min(n, ahead_end_ - ahead_pos_);
    std::memcpy(p, ahead_.data() + ahead_pos_, k);
    ahead_pos_ += k;
    return k;
  }
  // More room once the reserved part is full (a frame longer than reserve_limit): doubling, but
  // never past the frame's length.
  void grow() {
    std::size_t now = buf_.size();
    std::size_t next = static_cast<std::size_t>(
        std::min<std::uint64_t>(header_, std::max<std::uint64_t>(2 * now, 64 * 1024)));
    std::string bigger;
    size_for(bigger, next);
    std::memcpy(bigger.data(), buf_.data(), now);
    buf_.swap(bigger);
  }
  [[noreturn]] void died() {
    reset_receive();
    throw PeerDiedMidMessage("proc::mp: the other end went away in the middle of a message");
  }
  void reset_receive() noexcept {
    header_ = 0;
    header_got_ = 0;
    got_ = 0;
    complete_ = false;
    buf_.clear();
  }
  void take_from(FrameChannel& o) noexcept {
    h_ = std::exchange(o.h_, invalid_handle);
    header_ = o.header_;
    header_got_ = o.header_got_;
    got_ = o.got_;
    complete_ = o.complete_;
    buf_.swap(o.buf_);
    ahead_.swap(o.ahead_);
    ahead_pos_ = std::exchange(o.ahead_pos_, 0);
    ahead_end_ = std::exchange(o.ahead_end_, 0);
    o.reset_receive();
  }

  native_handle h_ = invalid_handle;
  proc::detail::Mutex send_m_, recv_m_;
  std::uint64_t header_ = 0;
  std::size_t header_got_ = 0;
  std::uint64_t got_ = 0;
  bool complete_ = false;
  std::string buf_;    // the frame being received; its capacity is reused
  std::string ahead_;  // bytes read past the current point (the start of later frames)
  std::size_t ahead_pos_ = 0, ahead_end_ = 0;
};

}  // namespace proc::mp::detail
