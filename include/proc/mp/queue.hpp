#pragma once
/// \file
/// `proc::mp::Queue<T>`, `Sender<T>`, `Receiver<T>`: many producers and many consumers across
/// processes, without a feeder thread (SPEC-mp §6).
///
/// Each message arrives whole at exactly one receiver. A `put` that returned is in the kernel:
/// the producer may exit at once, nothing is lost, and a producer killed inside `put` leaves
/// either its whole message or none. When every sending end is closed — however its processes
/// ended — receivers get what was queued and then `ChannelClosed`; when every receiving end is
/// closed, `put` throws `ChannelClosed`.
///
/// Linux: one `SOCK_SEQPACKET` socketpair; every message is one packet, and a message bigger than
/// `queue_packet_limit` travels as a sealed memfd in a small packet (`SCM_RIGHTS`). Windows: one
/// message-mode named pipe; a message over 64 KiB travels as several pipe messages, written
/// under the senders' kernel mutex and read under the receivers' (see
/// detail/windows/queue.hpp), and one torn by a dead sender is dropped, never returned.

#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <utility>

#include "proc/config.hpp"
#include "proc/duration.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/errors.hpp"

// The back end: QueueEnd, make_queue, send_message, receive_message, MessageWriter and the
// codec of an end (the same names on both sides).
#if defined(PROC_WINDOWS)
#  include "proc/mp/detail/windows/queue.hpp"
#else
#  include "proc/mp/detail/posix/queue.hpp"
#endif

namespace proc::mp {

template <class T>
class Sender;
template <class T>
class Receiver;

/// The sending side of a `Queue<T>`. Copies share one end; the queue's receivers see the end
/// of the messages when every Sender (in every process) and the Queue's own end are closed.
template <class T>
class Sender {
 public:
  /// Sends `v`, waiting while the queue is full. `ChannelClosed` when no receiver is left.
  void put(const T& v) { send(v, std::nullopt, false); }
  /// As `put`, waiting at most `timeout`: false if the queue stayed full.
  bool put_for(const T& v, Duration timeout) {
    return send(v, proc::detail::deadline_after(timeout.value), false);
  }
  /// As `put`, never waiting: false if the queue is full.
  bool try_put(const T& v) { return send(v, std::nullopt, true); }
  /// Closes this copy's end (the others stay open).
  void close() noexcept { end_.reset(); }
  [[nodiscard]] bool is_open() const noexcept { return end_ != nullptr; }

 private:
  template <class>
  friend class Queue;
  friend struct codec<Sender<T>>;
  explicit Sender(std::shared_ptr<detail::QueueEnd> e) : end_(std::move(e)) {}
  bool send(const T& v, const detail::QueueDeadline& deadline, bool try_only) {
    return send_on(end_.get(), v, deadline, try_only);
  }
  static bool send_on(detail::QueueEnd* end, const T& v, const detail::QueueDeadline& deadline,
                      bool try_only) {
    if (end == nullptr) throw std::logic_error("proc::mp::Sender: put on a closed sender");
    detail::MessageWriter mw;
    Writer& w = mw.get();
    encode_message(w, v);
    if (!w.handles().empty())
      throw std::invalid_argument(
          "proc::mp::Queue: a message cannot carry handles (a Connection, Lock, Queue end, ...); "
          "pass those to the Process instead");
    auto r = detail::send_message(*end, w, deadline, try_only);
    if (r == detail::SendResult::closed)
      throw ChannelClosed("proc::mp::Queue: put, but every receiver is gone");
    return r == detail::SendResult::sent;
  }
  std::shared_ptr<detail::QueueEnd> end_;
};

/// The receiving side of a `Queue<T>`. Copies share one end. Each message goes to exactly one
/// receiver (in whichever process asks first).
template <class T>
class Receiver {
 public:
  /// The next message, waiting for one. `ChannelClosed` once every sender is gone and every
  /// message sent has been received.
  T get() { return *receive(std::nullopt, false); }
  /// As `get`, waiting at most `timeout` (nullopt when none came).
  std::optional<T> get_for(Duration timeout) {
    return receive(proc::detail::deadline_after(timeout.value), false);
  }
  /// As `get`, never waiting.
  std::optional<T> try_get() { return receive(std::nullopt, true); }
  void close() noexcept { end_.reset(); }
  [[nodiscard]] bool is_open() const noexcept { return end_ != nullptr; }

  /// `for (T v : receiver)`: every message until every sender is gone.
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Receiver* r) : r_(r) { ++*this; }
    T& operator*() { return *v_; }
    iterator& operator++() {
      try {
        v_ = r_->get();
      } catch (const ChannelClosed&) {
        v_.reset();
      }
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !v_.has_value(); }

   private:
    Receiver* r_ = nullptr;
    std::optional<T> v_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  template <class>
  friend class Queue;
  friend struct codec<Receiver<T>>;
  explicit Receiver(std::shared_ptr<detail::QueueEnd> e) : end_(std::move(e)) {}
  std::optional<T> receive(const detail::QueueDeadline& deadline, bool try_only) {
    return receive_on(end_.get(), deadline, try_only);
  }
  static std::optional<T> receive_on(detail::QueueEnd* end, const detail::QueueDeadline& deadline,
                                     bool try_only) {
    if (end == nullptr) throw std::logic_error("proc::mp::Receiver: get on a closed receiver");
    std::optional<T> out;
    auto r = detail::receive_message(*end, deadline, try_only, [&](std::string_view bytes) {
      out.emplace(from_bytes<T>(bytes));
    });
    if (r == detail::ReceiveResult::closed)
      throw ChannelClosed("proc::mp::Queue: every sender is gone and every message was received");
    return out;
  }
  std::shared_ptr<detail::QueueEnd> end_;
};

/// A queue between processes: Python's `multiprocessing.Queue`, without its feeder thread.
/// Pass `sender()` to producers and `receiver()` to consumers; `put`/`get` use the queue's own
/// ends. Close the queue's sending end (`close_sender()`) once the producers have theirs, or
/// receivers never see the end.
template <class T>
class Queue {
 public:
  Queue() { std::tie(rx_, tx_) = detail::make_queue(); }

  [[nodiscard]] Sender<T> sender() const {
    if (!tx_) throw std::logic_error("proc::mp::Queue::sender: the sending end was closed");
    return Sender<T>(tx_);
  }
  [[nodiscard]] Receiver<T> receiver() const {
    if (!rx_) throw std::logic_error("proc::mp::Queue::receiver: the receiving end was closed");
    return Receiver<T>(rx_);
  }
  void put(const T& v) { Sender<T>::send_on(tx_.get(), v, std::nullopt, false); }
  T get() { return *Receiver<T>::receive_on(rx_.get(), std::nullopt, false); }
  std::optional<T> get_for(Duration timeout) {
    return Receiver<T>::receive_on(rx_.get(), proc::detail::deadline_after(timeout.value), false);
  }
  /// Drops the queue's own sending end (Senders handed out keep theirs).
  void close_sender() noexcept { tx_.reset(); }
  /// Drops the queue's own receiving end (Receivers handed out keep theirs).
  void close_receiver() noexcept { rx_.reset(); }

 private:
  std::shared_ptr<detail::QueueEnd> rx_, tx_;
};

template <class T>
struct codec<Sender<T>> {
  static void encode(Writer& w, const Sender<T>& s) {
    if (!s.end_) throw std::logic_error("proc::mp: a closed Sender cannot be passed to a process");
    detail::write_queue_end(w, *s.end_);
  }
  static Sender<T> decode(Reader& r) { return Sender<T>(detail::read_queue_end(r, true)); }
};

template <class T>
struct codec<Receiver<T>> {
  static void encode(Writer& w, const Receiver<T>& s) {
    if (!s.end_)
      throw std::logic_error("proc::mp: a closed Receiver cannot be passed to a process");
    detail::write_queue_end(w, *s.end_);
  }
  static Receiver<T> decode(Reader& r) { return Receiver<T>(detail::read_queue_end(r, false)); }
};

}  // namespace proc::mp
