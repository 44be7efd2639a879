#pragma once
// The POSIX back end of proc::mp::Queue (queue.hpp): one SOCK_SEQPACKET socketpair.
//
// Calls: socketpair (AF_UNIX, SOCK_SEQPACKET, SOCK_CLOEXEC), shutdown, setsockopt (SO_SNDBUF),
// sendmsg (MSG_NOSIGNAL | MSG_DONTWAIT, SCM_RIGHTS), recvmsg (MSG_DONTWAIT | MSG_CMSG_CLOEXEC),
// poll, memfd_create (MFD_CLOEXEC | MFD_ALLOW_SEALING), write, fcntl (F_ADD_SEALS, F_GET_SEALS),
// fstat, mmap, munmap, close, getsockopt (SO_TYPE).
//
// Design and invariants:
// - Every message is one packet, which the kernel queues whole or not at all and hands whole to
//   exactly one receiver; a message bigger than queue_packet_limit travels as a sealed memfd in a
//   small packet (SCM_RIGHTS). A put that returned is in the kernel: the producer may exit at
//   once, nothing is lost, and a producer killed inside put leaves either its whole message or
//   none.
// - sv[0] only receives and sv[1] only sends (shutdown): when every copy of the sending end is
//   closed, however its processes ended, recvmsg returns 0 once the queue is empty; when every
//   receiving end is closed, sendmsg fails with EPIPE (never SIGPIPE: MSG_NOSIGNAL).
// - Every descriptor is close-on-exec; a child gets one only when it is passed on purpose.

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/posix/seqpacket.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp {

/// The biggest message sent inline in one packet; bigger ones go as a sealed memfd.
inline constexpr std::size_t queue_packet_limit = 32 * 1024;

}  // namespace proc::mp

namespace proc::mp::detail {

// The same names as in detail/windows/queue.hpp.
using QueueClock = std::chrono::steady_clock;
using QueueDeadline = std::optional<QueueClock::time_point>;
enum class SendResult { sent, not_now, closed };
enum class ReceiveResult { value, not_now, closed };

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

/// Sends `w` as one message: inline, or as a memfd over the packet limit.
inline SendResult send_message(QueueEnd& end, const Writer& w, const QueueDeadline& deadline,
                               bool try_only) {
  const int fd = end.fd;
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

/// A new queue: its receiving end and its sending end.
inline std::pair<std::shared_ptr<QueueEnd>, std::shared_ptr<QueueEnd>> make_queue() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    proc::detail::throw_errno(errno, "proc::mp::Queue: socketpair(SOCK_SEQPACKET)");
  ::shutdown(sv[0], SHUT_WR);  // sv[0] receives, sv[1] sends
  ::shutdown(sv[1], SHUT_RD);
  auto rx = std::make_shared<QueueEnd>(sv[0]);
  auto tx = std::make_shared<QueueEnd>(sv[1]);
  // Deeper than the default for small messages; a failure only leaves the default.
  int big = 4 << 20;
  ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  return {std::move(rx), std::move(tx)};
}

/// The Writer for one message: this thread's own, whose buffer is reused from message to message
/// (and dropped when it grew past 1 MiB).
class MessageWriter {
 public:
  MessageWriter() { writer().clear(); }
  MessageWriter(const MessageWriter&) = delete;
  MessageWriter& operator=(const MessageWriter&) = delete;
  ~MessageWriter() {
    if (writer().buffer().capacity() > (std::size_t{1} << 20)) writer() = Writer{};
  }
  Writer& get() noexcept { return writer(); }

 private:
  static Writer& writer() noexcept {
    thread_local Writer w;
    return w;
  }
};

/// Encodes an end as its descriptor's handle slot.
inline void write_queue_end(Writer& w, const QueueEnd& end) { w.write_u64(w.add_handle(end.fd)); }

/// Decodes an end passed by a parent (either direction: the socket's halves are shut down).
inline std::shared_ptr<QueueEnd> read_queue_end(Reader& r, bool /*sending*/) {
  std::uint64_t slot = r.read_u64();
  int fd = r.take_handle(static_cast<std::size_t>(slot));
  if (!is_seqpacket(fd)) {
    ::close(fd);
    r.fail("the handle passed is not a queue's socket");
  }
  return std::make_shared<QueueEnd>(fd);
}

}  // namespace proc::mp::detail
