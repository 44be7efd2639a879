#pragma once
/// \file
/// `proc::mp::Queue<T>`, `Sender<T>`, `Receiver<T>`: many producers and many consumers across
/// processes, without a feeder thread (SPEC-mp §6). POSIX only for now.
///
/// Linux: one `SOCK_SEQPACKET` socketpair. Every message is one packet, which the kernel
/// queues whole or not at all and hands whole to exactly one receiver; a message bigger than
/// `queue_packet_limit` travels as a sealed memfd in a small packet (`SCM_RIGHTS`). A `put`
/// that returned is in the kernel: the producer may exit at once, nothing is lost, and a
/// producer killed inside `put` leaves either its whole message or none. When every sending
/// end is closed — however its processes ended — receivers get what was queued and then
/// `ChannelClosed`; when every receiving end is closed, `put` throws `ChannelClosed`.

#include "proc/config.hpp"

#if !defined(PROC_WINDOWS)

#  include <fcntl.h>
#  include <poll.h>
#  include <sys/mman.h>
#  include <sys/socket.h>
#  include <sys/stat.h>
#  include <sys/uio.h>
#  include <unistd.h>

#  include <cerrno>
#  include <chrono>
#  include <climits>
#  include <cstddef>
#  include <cstdint>
#  include <cstring>
#  include <memory>
#  include <mutex>
#  include <optional>
#  include <string>
#  include <string_view>
#  include <utility>
#  include <vector>

#  include "proc/detail/platform.hpp"
#  include "proc/duration.hpp"
#  include "proc/mp/codec.hpp"
#  include "proc/mp/detail/posix/seqpacket.hpp"
#  include "proc/mp/errors.hpp"

namespace proc::mp {

/// The biggest message sent inline in one packet; bigger ones go as a sealed memfd.
inline constexpr std::size_t queue_packet_limit = 32 * 1024;

template <class T>
class Sender;
template <class T>
class Receiver;

namespace detail {

using QueueClock = std::chrono::steady_clock;
using QueueDeadline = std::optional<QueueClock::time_point>;

inline constexpr std::uint8_t packet_inline = 1;
inline constexpr std::uint8_t packet_memfd = 2;

/// One end of a queue's socketpair, shared by the copies of a Sender or Receiver.
struct QueueEnd {
  explicit QueueEnd(int f) noexcept : fd(f) {}
  QueueEnd(const QueueEnd&) = delete;
  QueueEnd& operator=(const QueueEnd&) = delete;
  ~QueueEnd() { proc::detail::close_handle(fd); }
  int fd;
  std::mutex m;        // a receiver's buffer
  std::string buffer;  // one packet
};

/// Waits until `fd` is ready for `events` or `deadline` passes (false); nullopt = forever;
/// `try_only` = do not wait.
inline bool wait_ready(int fd, short events, const QueueDeadline& deadline, bool try_only) {
  if (try_only) return false;
  for (;;) {
    int ms = -1;
    if (deadline) {
      auto left = *deadline - QueueClock::now();
      if (left <= QueueClock::duration::zero()) return false;
      ms = static_cast<int>(
          std::min<long long>(INT_MAX, std::chrono::ceil<std::chrono::milliseconds>(left).count()));
    }
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms);
    if (n > 0) return true;  // ready, or an error / hang-up the next call reports
    if (n < 0 && errno != EINTR) proc::detail::throw_errno(errno, "proc::mp::Queue: poll");
  }
}

/// A message over the packet limit, as a sealed memfd holding its bytes.
inline int message_memfd(const Writer& w) {
  int fd = ::memfd_create("proc::mp::Queue message", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) proc::detail::throw_errno(errno, "proc::mp::Queue: memfd_create");
  try {
    for (const auto& s : w.segments()) {
      const char* p = s.data;
      std::size_t left = s.size;
      while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) proc::detail::throw_errno(errno, "proc::mp::Queue: write to a memfd");
        p += n;
        left -= static_cast<std::size_t>(n);
      }
    }
    if (::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
      proc::detail::throw_errno(errno, "proc::mp::Queue: fcntl(F_ADD_SEALS)");
  } catch (...) {
    ::close(fd);
    throw;
  }
  return fd;
}

enum class SendResult { sent, not_now, closed };

/// Sends `w` as one message: inline, or as a memfd over the packet limit.
inline SendResult send_message(int fd, const Writer& w, const QueueDeadline& deadline,
                               bool try_only) {
  if (!w.handles().empty())
    throw std::invalid_argument(
        "proc::mp::Queue: a message cannot carry handles (a Connection, Lock, Queue end, ...); "
        "pass those to the Process instead");
  std::uint8_t kind = packet_inline;
  std::uint64_t size = w.size();
  int memfd = -1;
  // A small message is usually one segment: no allocation for its iovecs.
  iovec small_iov[4];
  std::vector<iovec> big_iov;
  std::size_t iov_count = 0;
  auto add_iov = [&](void* p, std::size_t n) {
    if (big_iov.empty() && iov_count < 4) {
      small_iov[iov_count++] = {p, n};
      return;
    }
    if (big_iov.empty()) big_iov.assign(small_iov, small_iov + iov_count);
    big_iov.push_back({p, n});
    ++iov_count;
  };
  add_iov(&kind, 1);
  alignas(cmsghdr) OneFdControl control;
  msghdr msg{};
  if (w.size() <= queue_packet_limit && w.size() == w.buffer().size()) {
    add_iov(const_cast<char*>(w.buffer().data()), w.buffer().size());
  } else if (w.size() <= queue_packet_limit && w.segments().size() < IOV_MAX) {
    for (const auto& s : w.segments()) add_iov(const_cast<char*>(s.data), s.size);
  } else {
    kind = packet_memfd;
    memfd = message_memfd(w);
    add_iov(&size, sizeof size);
    attach_descriptor(msg, control, memfd);
  }
  msg.msg_iov = big_iov.empty() ? small_iov : big_iov.data();
  msg.msg_iovlen = iov_count;
  struct CloseMemfd {
    int fd;
    ~CloseMemfd() {
      if (fd >= 0) ::close(fd);  // the packet in flight keeps the memory alive
    }
  } close_memfd{memfd};
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return SendResult::sent;
    if (errno == EINTR) continue;
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) return SendResult::closed;
    if (errno == EAGAIN || errno == ENOBUFS) {
      if (!wait_ready(fd, POLLOUT, deadline, try_only)) return SendResult::not_now;
      continue;
    }
    proc::detail::throw_errno(errno, "proc::mp::Queue: sendmsg");
  }
}

/// Closes every descriptor that came in `msg`'s control data.
inline void close_received(msghdr& msg) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < n; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      ::close(f);
    }
  }
}

enum class ReceiveResult { value, not_now, closed };

/// Receives one message and decodes it with `decode(std::string_view)`.
template <class Decode>
ReceiveResult receive_message(QueueEnd& end, const QueueDeadline& deadline, bool try_only,
                              Decode&& decode) {
  for (;;) {
    {
      std::lock_guard lock(end.m);
      end.buffer.resize(queue_packet_limit + 1 + sizeof(std::uint64_t));
      iovec iov{end.buffer.data(), end.buffer.size()};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(end.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n == 0) return ReceiveResult::closed;  // every sender is gone and nothing is left
      if (n > 0) {
        std::string_view packet(end.buffer.data(), static_cast<std::size_t>(n));
        if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
          close_received(msg);
          throw SerializationError("proc::mp::Queue: a packet did not fit (" + std::to_string(n) +
                                   " bytes read); not one of our messages");
        }
        if (packet[0] == static_cast<char>(packet_inline)) {
          close_received(msg);  // none expected
          decode(packet.substr(1));
          return ReceiveResult::value;
        }
        int memfd = -1;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        if (c != nullptr && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
          std::memcpy(&memfd, CMSG_DATA(c), sizeof(int));
        if (packet[0] != static_cast<char>(packet_memfd) || memfd < 0 ||
            packet.size() != 1 + sizeof(std::uint64_t)) {
          close_received(msg);
          throw SerializationError("proc::mp::Queue: a malformed packet (" +
                                   std::to_string(packet.size()) + " bytes)");
        }
        std::uint64_t size;
        std::memcpy(&size, packet.data() + 1, sizeof size);
        struct Closer {
          int fd;
          void* map = MAP_FAILED;
          std::size_t len = 0;
          ~Closer() {
            if (map != MAP_FAILED) ::munmap(map, len);
            ::close(fd);
          }
        } closer{memfd};
        struct stat st {};
        int seals = ::fcntl(memfd, F_GET_SEALS);
        if (::fstat(memfd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != size ||
            seals < 0 || (seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) != (F_SEAL_WRITE | F_SEAL_SHRINK))
          throw SerializationError("proc::mp::Queue: a big message's memory is not as announced (" +
                                   std::to_string(size) + " bytes, sealed)");
        if (size == 0) {
          decode(std::string_view{});
          return ReceiveResult::value;
        }
        closer.len = static_cast<std::size_t>(size);
        closer.map = ::mmap(nullptr, closer.len, PROT_READ, MAP_SHARED, memfd, 0);
        if (closer.map == MAP_FAILED) proc::detail::throw_errno(errno, "proc::mp::Queue: mmap");
        decode(std::string_view(static_cast<const char*>(closer.map), closer.len));
        return ReceiveResult::value;
      }
      if (errno == ECONNRESET) return ReceiveResult::closed;
      if (errno != EAGAIN && errno != EINTR)
        proc::detail::throw_errno(errno, "proc::mp::Queue: recvmsg");
    }
    // Empty: wait outside the buffer's lock (another receiver may be quicker; then wait again).
    if (!wait_ready(end.fd, POLLIN, deadline, try_only)) return ReceiveResult::not_now;
  }
}

inline QueueDeadline deadline_after(Duration d) {
  return QueueClock::now() + std::chrono::duration_cast<QueueClock::duration>(d.value);
}

inline std::shared_ptr<QueueEnd> queue_end_from(Reader& r) {
  std::uint64_t slot = r.read_u64();
  int fd = r.take_handle(static_cast<std::size_t>(slot));
  if (!is_seqpacket(fd)) {
    ::close(fd);
    r.fail("the handle passed is not a queue's socket");
  }
  return std::make_shared<QueueEnd>(fd);
}

}  // namespace detail

/// The sending side of a `Queue<T>`. Copies share one end; the queue's receivers see the end
/// of the messages when every Sender (in every process) and the Queue's own end are closed.
template <class T>
class Sender {
 public:
  /// Sends `v`, waiting while the queue is full. `ChannelClosed` when no receiver is left.
  void put(const T& v) { send(v, std::nullopt, false); }
  /// As `put`, waiting at most `timeout`: false if the queue stayed full.
  bool put_for(const T& v, Duration timeout) {
    return send(v, detail::deadline_after(timeout), false);
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
    thread_local Writer w;  // its buffer is reused from message to message
    w.clear();
    encode_message(w, v);
    auto r = detail::send_message(end->fd, w, deadline, try_only);
    if (w.buffer().capacity() > (std::size_t{1} << 20)) w = Writer{};  // keep no big buffer
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
    return receive(detail::deadline_after(timeout), false);
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
  Queue() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      proc::detail::throw_errno(errno, "proc::mp::Queue: socketpair(SOCK_SEQPACKET)");
    ::shutdown(sv[0], SHUT_WR);  // sv[0] receives, sv[1] sends
    ::shutdown(sv[1], SHUT_RD);
    rx_ = std::make_shared<detail::QueueEnd>(sv[0]);
    tx_ = std::make_shared<detail::QueueEnd>(sv[1]);
    // Deeper than the default for small messages; a failure only leaves the default.
    int big = 4 << 20;
    ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  }

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
    return Receiver<T>::receive_on(rx_.get(), detail::deadline_after(timeout), false);
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
    w.write_u64(w.add_handle(s.end_->fd));
  }
  static Sender<T> decode(Reader& r) { return Sender<T>(detail::queue_end_from(r)); }
};

template <class T>
struct codec<Receiver<T>> {
  static void encode(Writer& w, const Receiver<T>& s) {
    if (!s.end_)
      throw std::logic_error("proc::mp: a closed Receiver cannot be passed to a process");
    w.write_u64(w.add_handle(s.end_->fd));
  }
  static Receiver<T> decode(Reader& r) { return Receiver<T>(detail::queue_end_from(r)); }
};

}  // namespace proc::mp

#endif  // !PROC_WINDOWS
