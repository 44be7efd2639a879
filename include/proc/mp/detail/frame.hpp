#pragma once
// Framed messages over one byte channel: the wire of a Connection and of a Process's control
// channel. Platform-free; the bytes move through detail/<os>/channel.hpp.
//
// A frame is a u64 length (native byte order: both ends are the same program) and that many
// bytes. Receiving is a resumable state machine, so a call that reaches its deadline in the
// middle of a frame keeps what arrived and the next call goes on from there. Nothing is
// allocated for a frame beyond the bytes that actually arrived (a hostile length of 2^60 costs
// nothing until 2^60 bytes come): small frames go into one reused buffer, big ones grow in a
// ByteStore (page regions on Linux: no copy as they grow).
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
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/platform.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp::detail {

/// Frames up to this size are received into the channel's reused buffer.
inline constexpr std::size_t small_frame = 64 * 1024;

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
  /// held (see lock_receive()).
  Got receive(std::optional<Clock::time_point> deadline) {
    if (complete_) return Got::frame;
    if (Got g = receive_header(deadline); g != Got::frame) return g;
    if (header_ <= small_frame && small_.capacity() < header_) small_.reserve(header_);
    while (got_ < header_) {
      if (deadline && !readable(*deadline)) return Got::timeout;
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(header_ - got_, std::uint64_t{1} << 30));
      char* p;
      std::size_t room = 0;
      if (header_ <= small_frame) {
        if (small_.size() < header_) size_for(small_, static_cast<std::size_t>(header_));
        p = small_.data() + got_;
        room = want;
      } else {
        p = big_.prepare(std::min<std::size_t>(want, std::size_t{1} << 20), room);
      }
      std::size_t n = read_some(h_, p, std::min(room, want));
      if (n == 0) {
        reset_receive();
        throw PeerDiedMidMessage("proc::mp: the other end went away in the middle of a message");
      }
      if (header_ > small_frame) big_.commit(n);
      got_ += n;
    }
    complete_ = true;
    return Got::frame;
  }

  /// Receives the rest of the current frame's header only. `frame`: the length is known
  /// (pending_length()).
  Got receive_header(std::optional<Clock::time_point> deadline) {
    ensure_open();
    while (header_got_ < sizeof header_) {
      if (deadline && !readable(*deadline)) return Got::timeout;
      std::size_t n = read_some(h_, reinterpret_cast<char*>(&header_) + header_got_,
                                sizeof header_ - header_got_);
      if (n == 0) {
        if (header_got_ == 0) return Got::closed;
        reset_receive();
        throw PeerDiedMidMessage("proc::mp: the other end went away in the middle of a message");
      }
      header_got_ += n;
    }
    return Got::frame;
  }

  /// The frame's length once its header has arrived (it may still be incomplete).
  [[nodiscard]] std::optional<std::uint64_t> pending_length() const noexcept {
    if (header_got_ < sizeof header_) return std::nullopt;
    return header_;
  }
  /// Whether part of a frame has arrived (so the handle's readiness says nothing).
  [[nodiscard]] bool in_frame() const noexcept { return header_got_ > 0 || complete_; }

  /// The complete frame, valid until the next receive or take.
  [[nodiscard]] std::string_view view() const noexcept {
    if (header_ <= small_frame) return std::string_view(small_.data(), header_);
    return big_.view();
  }
  /// Done with the frame (after view()).
  void consume() noexcept { reset_receive(); }
  /// The complete frame as a string of its own; done with it.
  std::string take() {
    std::string out = header_ <= small_frame ? std::string(view()) : big_.take();
    reset_receive();
    return out;
  }
  /// Reads the rest of a frame straight into `out` (the caller checked its size against
  /// pending_length(); nothing of the frame has been read into the buffers yet).
  Got receive_into(char* out, std::optional<Clock::time_point> deadline) {
    while (got_ < header_) {
      if (deadline && !readable(*deadline)) return Got::timeout;
      std::size_t n = read_some(h_, out + got_, static_cast<std::size_t>(header_ - got_));
      if (n == 0) {
        reset_receive();
        throw PeerDiedMidMessage("proc::mp: the other end went away in the middle of a message");
      }
      got_ += n;
    }
    reset_receive();
    return Got::frame;
  }
  [[nodiscard]] std::uint64_t received_of_frame() const noexcept { return got_; }

  std::mutex& receive_mutex() noexcept { return recv_m_; }

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
    native_handle one[1] = {h_};
    return !wait_readable(one, deadline).empty();
  }
  void reset_receive() noexcept {
    header_ = 0;
    header_got_ = 0;
    got_ = 0;
    complete_ = false;
    small_.clear();
    if (big_.size()) big_.take();
  }
  void take_from(FrameChannel& o) noexcept {
    h_ = std::exchange(o.h_, invalid_handle);
    o.reset_receive();
  }

  native_handle h_ = invalid_handle;
  std::mutex send_m_, recv_m_;
  std::uint64_t header_ = 0;
  std::size_t header_got_ = 0;
  std::uint64_t got_ = 0;
  bool complete_ = false;
  std::string small_;
  proc::detail::ByteStore big_;
};

}  // namespace proc::mp::detail
