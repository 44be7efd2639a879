#pragma once
/// \file
/// `proc::mp::Connection<T>`, `connection_pair<T>()` (Python's `Pipe()`) and `proc::mp::wait`.

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/frame.hpp"
#include "proc/mp/errors.hpp"
#include "proc/options.hpp"
#include "proc/popen.hpp"

namespace proc::mp {

template <class T>
class Connection;

namespace detail {

/// What a Connection holds (behind a pointer, so that a Connection moves cheaply).
struct ConnectionState {
  FrameChannel ch;
  bool readable = true;
  bool writable = true;
  proc::detail::Mutex send_m;  // the Writer below is reused by every send
  Writer w;
};

/// Types whose message is [tag][u64 count][count elements as bytes]: received in place.
template <class T>
inline constexpr bool receives_in_place = std::is_same_v<T, std::string>;
template <class E, class A>
inline constexpr bool receives_in_place<std::vector<E, A>> =
    std::is_arithmetic_v<E> && !std::is_same_v<E, bool>;

/// The indices of `states` from which a receive would not block: a message waiting whole, or
/// the handle readable (data or the end). Waits up to `deadline` for the first.
inline std::vector<std::size_t> ready_connections(std::span<ConnectionState* const> states,
                                                  std::optional<Clock::time_point> deadline) {
  std::vector<std::size_t> ready;
  std::vector<native_handle> handles;
  std::vector<std::size_t> index;
  for (std::size_t i = 0; i < states.size(); ++i) {
    ConnectionState* s = states[i];
    if (!s || !s->ch.is_open()) continue;
    if (s->ch.has_frame() || s->ch.has_read_ahead()) {
      ready.push_back(i);
      continue;
    }
    handles.push_back(s->ch.handle());
    index.push_back(i);
  }
  if (!ready.empty()) deadline = Clock::now();  // report what else is ready, without waiting
  if (!handles.empty())
    for (std::size_t k : wait_readable(handles, deadline)) ready.push_back(index[k]);
  std::sort(ready.begin(), ready.end());
  return ready;
}

}  // namespace detail

/// One end of a two-way (or one-way) channel between processes that carries messages of type T
/// (Python's `multiprocessing.connection.Connection`). Messages arrive whole and in order; a
/// `std::variant` carries several kinds on one connection.
///
/// - `recv()` after the other end closed (or its process ended) returns every message it sent,
///   then throws `ChannelClosed` (Python's `EOFError`); if it died in the middle of a message,
///   `PeerDiedMidMessage` — never a hang, a truncated or a wrong value.
/// - `send()` to an end that is gone throws `ChannelClosed` (never SIGPIPE).
/// - Messages of any size (0 bytes to more than 4 GiB): big strings and vectors of numbers are
///   written from where they are, without a copy.
///
/// Pass an end to a child as a `Process` argument (it travels as an inherited handle; move it
/// in, and the parent's copy is closed once the child has started, so that the other end learns
/// when the child is gone). One thread may send while another receives; concurrent senders (or
/// receivers) take turns.
template <class T>
class Connection {
 public:
  /// A closed connection.
  Connection() = default;
  /// Takes ownership of `h`, a connected stream handle (see `connection_pair`).
  Connection(native_handle_type h, bool readable, bool writable)
      : s_(std::make_unique<detail::ConnectionState>()) {
    s_->ch = detail::FrameChannel(h);
    s_->readable = readable;
    s_->writable = writable;
  }

  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Sends `value` (it is encoded first: a type that is not Transferable does not compile).
  /// Throws `ChannelClosed` when the other end has gone.
  void send(const T& value) {
    auto& s = writable_state("send");
    std::lock_guard lock(s.send_m);
    detail::FrameChannel::begin(s.w);
    encode_message(s.w, value);
    if (!s.w.handles().empty()) {
      s.w.clear();
      throw std::logic_error(
          "proc::mp::Connection::send: a message cannot carry a Connection, Lock or other "
          "resource; pass those to a Process as arguments");
    }
    bool ok = s.ch.send(s.w);
    s.w.clear();  // drop references to the caller's big spans
    if (!ok) throw ChannelClosed("proc::mp::Connection::send: the other end is closed");
  }

  /// The next message. Throws `ChannelClosed` when the other end has gone and every message it
  /// sent has been received, `PeerDiedMidMessage` when it went away inside one,
  /// `SerializationError` for bytes that are not a T (that message is skipped).
  T recv() { return *recv_until(std::nullopt); }

  /// As `recv()`, or `std::nullopt` when nothing (whole) arrived within `timeout`; a message
  /// that is partly there is kept for the next call.
  std::optional<T> recv_for(Duration timeout) {
    return recv_until(proc::detail::deadline_after(timeout.value));
  }

  /// Whether a message (or the end) can be received without waiting, after waiting up to
  /// `timeout` (default: not at all).
  bool poll(Duration timeout = std::chrono::seconds(0)) {
    auto& s = readable_state("poll");
    detail::ConnectionState* one[1] = {&s};
    return !detail::ready_connections(one, proc::detail::deadline_after(timeout.value)).empty();
  }

  /// Sends `bytes` as one raw message (not encoded), written from where it is. Throws
  /// `ChannelClosed` when the other end has gone.
  void send_bytes(std::string_view bytes) {
    auto& s = writable_state("send_bytes");
    if (!s.ch.send_bytes(bytes))
      throw ChannelClosed("proc::mp::Connection::send_bytes: the other end is closed");
  }

  /// The next message's bytes, as they were sent (by `send_bytes`, or the encoding `send` made).
  std::string recv_bytes() {
    auto& s = readable_state("recv_bytes");
    std::lock_guard lock(s.ch.receive_mutex());
    expect_frame(s, s.ch.receive(std::nullopt));
    return s.ch.take();
  }

  /// Receives the next message's bytes into `buf` and returns their count. A message longer
  /// than `buf` throws `std::length_error` naming both sizes and stays queued (a later call with
  /// room, or `recv_bytes()`, gets it).
  std::size_t recv_bytes_into(std::span<char> buf) {
    auto& s = readable_state("recv_bytes_into");
    std::lock_guard lock(s.ch.receive_mutex());
    expect_frame(s, s.ch.receive_header(std::nullopt));
    const std::uint64_t len = *s.ch.pending_length();
    if (len > buf.size())
      throw std::length_error("proc::mp::Connection::recv_bytes_into: the message has " +
                              std::to_string(len) + " bytes, the buffer " +
                              std::to_string(buf.size()));
    if (s.ch.received_of_frame() == 0) {
      s.ch.receive_into(buf.data(), static_cast<std::size_t>(len));  // straight into `buf`
    } else {
      s.ch.receive(std::nullopt);  // a part came in earlier, into the channel's buffer
      std::memcpy(buf.data(), s.ch.view().data(), static_cast<std::size_t>(len));
      s.ch.consume();
    }
    return static_cast<std::size_t>(len);
  }

  /// Closes this end (the other end's receives end with `ChannelClosed` once it has the rest).
  void close() noexcept {
    if (s_) s_->ch.close();
  }
  [[nodiscard]] bool is_open() const noexcept { return s_ && s_->ch.is_open(); }
  /// The handle, for your own `poll`/`epoll` (Python's `fileno()`). A receive reads ahead (up to
  /// 64 KiB, so that a small message takes one system call), so messages may be waiting here
  /// while the handle is not readable: call `poll()` (it does not wait) before you sleep on the
  /// handle, or use `proc::mp::wait`.
  [[nodiscard]] native_handle_type native_handle() const noexcept {
    return s_ ? s_->ch.handle() : proc::invalid_handle;
  }
  [[nodiscard]] bool readable() const noexcept { return s_ && s_->readable; }
  [[nodiscard]] bool writable() const noexcept { return s_ && s_->writable; }

  /// For `proc::mp::wait` and the codec.
  [[nodiscard]] detail::ConnectionState* state() const noexcept { return s_.get(); }

 private:
  detail::ConnectionState& writable_state(const char* what) const {
    if (!s_ || !s_->ch.is_open())
      throw std::logic_error(std::string("proc::mp::Connection::") + what +
                             ": the connection is closed (or moved from)");
    if (!s_->writable)
      throw std::logic_error(std::string("proc::mp::Connection::") + what +
                             ": this end only receives");
    return *s_;
  }
  detail::ConnectionState& readable_state(const char* what) const {
    if (!s_ || !s_->ch.is_open())
      throw std::logic_error(std::string("proc::mp::Connection::") + what +
                             ": the connection is closed (or moved from)");
    if (!s_->readable)
      throw std::logic_error(std::string("proc::mp::Connection::") + what +
                             ": this end only sends");
    return *s_;
  }
  static void expect_frame(detail::ConnectionState&, detail::FrameChannel::Got got) {
    if (got == detail::FrameChannel::Got::closed)
      throw ChannelClosed("proc::mp::Connection: the other end is closed");
  }
  std::optional<T> recv_until(std::optional<detail::Clock::time_point> deadline) {
    auto& s = readable_state("recv");
    std::lock_guard lock(s.ch.receive_mutex());
    if constexpr (detail::receives_in_place<T>) {
      // A big string or vector of numbers goes from the socket straight into the result: the
      // message is [type tag][element count][elements], so after those 16 bytes the rest of
      // the frame is the elements themselves.
      if (!deadline) {
        expect_frame(s, s.ch.receive_header(std::nullopt));
        const std::uint64_t len = *s.ch.pending_length();
        if (len >= Writer::view_threshold && s.ch.received_of_frame() == 0)
          return receive_in_place(s.ch, len);
      }
    }
    auto got = s.ch.receive(deadline);
    if (got == detail::FrameChannel::Got::timeout) return std::nullopt;
    expect_frame(s, got);
    struct Consume {
      detail::FrameChannel& ch;
      ~Consume() { ch.consume(); }
    } consume{s.ch};
    Reader r(s.ch.view());
    return decode_message<T>(r);
  }

  static T receive_in_place(detail::FrameChannel& ch, std::uint64_t len) {
    using E = typename T::value_type;
    std::uint64_t prefix[2];
    ch.receive_into(reinterpret_cast<char*>(prefix), sizeof prefix);
    const std::uint64_t count = prefix[1];
    if (prefix[0] != type_tag<T>() || count > (len - sizeof prefix) / sizeof(E) ||
        len - sizeof prefix != count * sizeof(E)) {
      skip_rest(ch, len - sizeof prefix);
      throw SerializationError(std::string("proc::mp: the message is not a ") +
                               std::string(type_name<T>()) + " (tag or length)");
    }
    T out;
    std::size_t n = static_cast<std::size_t>(count);
    if constexpr (std::is_same_v<T, std::string>) {
#if defined(PROC_HAVE_SET_SIZE_UNINIT)
      out.reserve(n);
      proc::detail::set_size_uninit(out, n);
#else
      out.resize(n);
#endif
    } else {
      out.resize(n);
    }
    ch.receive_into(reinterpret_cast<char*>(out.data()), n * sizeof(E));
    return out;
  }
  static void skip_rest(detail::FrameChannel& ch, std::uint64_t left) {
    char sink[64 * 1024];
    while (left > 0) {
      std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(left, sizeof sink));
      ch.receive_into(sink, k);
      left -= k;
    }
  }

  std::unique_ptr<detail::ConnectionState> s_;
};

/// A connected pair of ends (Python's `multiprocessing.Pipe(duplex)`): duplex by default, both
/// ends sending and receiving; one-way, the first receives and the second sends.
template <class T>
std::pair<Connection<T>, Connection<T>> connection_pair(bool duplex = true) {
  detail::HandlePair p = detail::channel_pair(duplex);
  return {Connection<T>(p.first, true, duplex), Connection<T>(p.second, duplex, true)};
}

/// Waits until at least one of `connections` has a message (or its end) to receive, or
/// `timeout` passes; returns the indices of those that do, in order (empty on timeout). Closed
/// connections are never ready. Python's `multiprocessing.connection.wait`.
template <class T>
std::vector<std::size_t> wait(std::span<Connection<T>* const> connections,
                              std::optional<Duration> timeout = std::nullopt) {
  std::vector<detail::ConnectionState*> states;
  for (auto* c : connections) states.push_back(c ? c->state() : nullptr);
  return detail::ready_connections(states, proc::detail::deadline_after(timeout));
}
template <class T>
std::vector<std::size_t> wait(std::span<Connection<T>> connections,
                              std::optional<Duration> timeout = std::nullopt) {
  std::vector<detail::ConnectionState*> states;
  for (auto& c : connections) states.push_back(c.state());
  return detail::ready_connections(states, proc::detail::deadline_after(timeout));
}
template <class T>
std::vector<std::size_t> wait(std::vector<Connection<T>>& connections,
                              std::optional<Duration> timeout = std::nullopt) {
  return wait(std::span<Connection<T>>(connections), timeout);
}

/// A Connection travels to a child process as an inherited handle (see `Process`).
template <class T>
struct codec<Connection<T>> {
  static void encode(Writer& w, const Connection<T>& c) {
    if (!c.is_open())
      throw std::logic_error("proc::mp: a closed Connection cannot be passed to a process");
    w.write_u64(w.add_handle(c.native_handle()));
    w.write_u8(static_cast<std::uint8_t>((c.readable() ? 1 : 0) | (c.writable() ? 2 : 0)));
  }
  static Connection<T> decode(Reader& r) {
    std::uint64_t slot = r.read_u64();
    std::uint8_t flags = r.read_u8();
    if (flags == 0 || flags > 3) r.fail("bad Connection direction");
    return Connection<T>(r.take_handle(static_cast<std::size_t>(slot)), flags & 1, flags & 2);
  }
};

}  // namespace proc::mp
