#pragma once
// The POSIX back end of proc::mp::Manager (manager.hpp): the transport, the manager's thread and
// the proxy's side of a call. The transport is a SOCK_SEQPACKET socketpair per proxy (the
// channel of a Connection is a byte stream; here the packet boundaries are what keeps a request
// whole).
//
// Calls: socketpair (SOCK_SEQPACKET | SOCK_CLOEXEC), sendmsg (MSG_NOSIGNAL, MSG_DONTWAIT on the
// manager's side, SCM_RIGHTS to hand over a new client's end), recvmsg (MSG_CMSG_CLOEXEC),
// getsockopt/setsockopt (SO_TYPE, SO_SNDBUF), poll, close.
//
// Invariants:
// - Every descriptor is close-on-exec from birth (received ones too): a child gets a proxy's end
//   only when the proxy is passed to it on purpose.
// - A message (request or reply) is one or more packets of at most `packet_max` bytes, each
//   [u8 flags][body]; every packet but the last has `more_follows` set. The manager applies a
//   request only once its last packet is in, so a client that dies in the middle of sending one
//   leaves nothing done; and a packet is never half-delivered.
// - The manager thread never blocks on a client: it reads only what poll() says is there, and
//   sends with MSG_DONTWAIT, keeping what did not fit until the socket is writable again. A
//   stopped or slow client delays nobody else.
// - Each client connection has at most one request outstanding (a proxy's calls take turns on a
//   mutex), so replies cannot be confused.
// - Writing never raises SIGPIPE (MSG_NOSIGNAL); a peer that is gone is EPIPE/ECONNRESET/EOF,
//   which the proxy reports as ManagerGone and the manager as "drop that client".
//
// Included by manager.hpp after the parts both back ends share (Op, Status, DictBase).

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/platform.hpp"
#include "proc/mp/detail/posix/seqpacket.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp::detail::mgr {

inline HandlePair seqpacket_pair() {
  int sv[2];
  if (PROC_SYS(pipe, ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) != 0)
    proc::detail::throw_errno(errno, "proc::mp::Manager: socketpair");
  // Room for several packets in flight (best effort: the system caps it at wmem_max).
  int want = 4 * static_cast<int>(packet_max);
  for (int fd : sv) {
    int have = 0;
    socklen_t len = sizeof have;
    if (::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have < want)
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
  }
  return {sv[0], sv[1]};
}

/// Sends the bytes [pos, end) of the message made of `segs` as packets. Blocking, or with
/// `nonblocking` stopping where the socket is full. `pass` (if valid) goes with the first packet
/// sent, as SCM_RIGHTS. Returns the new position (the message's size when it is all sent), or
/// `std::nullopt` when the peer is gone.
inline std::optional<std::size_t> send_packets(native_handle fd,
                                               std::span<const Writer::Segment> segs,
                                               std::size_t pos, bool nonblocking,
                                               native_handle pass = proc::detail::invalid_handle) {
  std::size_t total = 0;
  for (const auto& s : segs) total += s.size;
  std::vector<iovec> iov;
  do {
    const std::size_t n = std::min(body_max, total - pos);
    std::uint8_t flags = pos + n < total ? more_follows : 0;
    iov.clear();
    iov.push_back({&flags, 1});
    // The segments that overlap [pos, pos + n).
    std::size_t at = 0;
    for (const auto& s : segs) {
      const std::size_t from = std::max(pos, at), to = std::min(pos + n, at + s.size);
      if (from < to) iov.push_back({const_cast<char*>(s.data + (from - at)), to - from});
      at += s.size;
      if (at >= pos + n) break;
    }
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    alignas(cmsghdr) OneFdControl control;
    if (pass != proc::detail::invalid_handle) attach_descriptor(msg, control, pass);
    ssize_t w =
        PROC_SYS(write, ::sendmsg(fd, &msg, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0)));
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return pos;
      if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) return std::nullopt;
      if (errno == EMSGSIZE)
        throw std::length_error("proc::mp::Manager: a packet of " + std::to_string(n + 1) +
                                " bytes does not fit the socket buffer (SO_SNDBUF); raise "
                                "net.core.wmem_default");
      proc::detail::throw_errno(errno, "proc::mp::Manager: sendmsg");
    }
    pass = proc::detail::invalid_handle;
    pos += n;
  } while (pos < total);
  return pos;
}

/// What one recvmsg gave.
enum class Got { packet, would_block, end, bad };

/// Receives one packet into `scratch` (`packet_max` bytes), appending its body to `out` and any
/// descriptors that came with it to `fds` (close-on-exec; `invalid_handle` for those the system
/// could not give, out of descriptors). `more` tells whether more packets of this message follow.
/// A packet longer than `packet_max` (not one of ours) is `bad`; a reset is the `end`.
inline Got recv_packet(native_handle fd, char* scratch, std::string& out, bool& more,
                       std::vector<int>& fds, bool nonblocking) {
  iovec iov{scratch, packet_max};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t r =
      PROC_SYS(read, ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | (nonblocking ? MSG_DONTWAIT : 0)));
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Got::would_block;
    if (errno == ECONNRESET || errno == ENOTCONN) return Got::end;
    proc::detail::throw_errno(errno, "proc::mp::Manager: recvmsg");
  }
  if (msg.msg_controllen > 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < n; ++i) {
        int h;
        std::memcpy(&h, CMSG_DATA(c) + i * sizeof(int), sizeof h);
        fds.push_back(h);
      }
    }
  }
  if (r == 0) return Got::end;  // every packet has its flags byte: 0 is the end
  if (msg.msg_flags & MSG_TRUNC) return Got::bad;
  if (msg.msg_flags & MSG_CTRUNC) fds.push_back(proc::detail::invalid_handle);
  more = (static_cast<std::uint8_t>(scratch[0]) & more_follows) != 0;
  out.append(scratch + 1, static_cast<std::size_t>(r) - 1);
  return Got::packet;
}

inline void close_all(std::vector<int>& fds) noexcept {
  for (int h : fds) proc::detail::close_handle(h);
  fds.clear();
}
// ---- the proxy's side --------------------------------------------------------------------------

/// One connection to the manager, shared by copies of a proxy in one process.
class ProxyState {
 public:
  explicit ProxyState(native_handle h) : fd_(h) {}
  ProxyState(const ProxyState&) = delete;
  ProxyState& operator=(const ProxyState&) = delete;
  ~ProxyState() { proc::detail::close_handle(fd_); }

  /// Sends the request that `encode(Writer&)` writes after `op` (with `pass` as SCM_RIGHTS, if
  /// valid), waits for the reply, and returns `decode(Reader&)` of its payload. One request at a
  /// time per connection.
  template <class Encode, class Decode>
  auto call(const char* what, Op op, Encode&& encode, Decode&& decode,
            native_handle pass = proc::detail::invalid_handle) {
    std::lock_guard lock(m_);
    if (fd_ == proc::detail::invalid_handle) throw manager_gone(what);
    write_request(w_, op, what, encode);
    bool ok = send_packets(fd_, w_.segments(), 0, false, pass).has_value();
    w_.clear();  // drop references to the caller's big values
    reply_.clear();
    std::vector<int> fds;
    for (bool more = true; ok && more;) {
      Got got = recv_packet(fd_, scratch_.get(), reply_, more, fds, false);
      close_all(fds);  // the manager sends none
      if (got == Got::bad) {
        proc::detail::close_handle(fd_);  // out of step with the manager: unusable
        fd_ = proc::detail::invalid_handle;
        throw SerializationError(std::string("proc::mp::SharedDict::") + what +
                                 ": a reply packet was cut short");
      }
      ok = got == Got::packet;
    }
    if (!ok) {
      proc::detail::close_handle(fd_);
      fd_ = proc::detail::invalid_handle;
      throw manager_gone(what);
    }
    return read_reply(reply_, decode);
  }

 private:
  std::mutex m_;
  native_handle fd_;
  Writer w_;
  std::string reply_;
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(packet_max);
};

/// For passing a proxy to a child: a new connection to the same dict, whose other end the
/// manager now serves (sent to it as SCM_RIGHTS over `s`'s own connection). The caller keeps the
/// returned end open until the child has inherited it.
inline native_handle pass_connection(ProxyState& s) {
  HandlePair p = seqpacket_pair();
  try {
    s.call(
        "pass", Op::new_client, [](Writer&) {}, [](Reader&) {}, p.second);
  } catch (...) {
    proc::detail::close_handle(p.first);
    proc::detail::close_handle(p.second);
    throw;
  }
  proc::detail::close_handle(p.second);  // the manager has its own copy now
  return p.first;
}

/// A proxy travels as its new connection's handle slot.
inline void write_proxy(Writer& w, native_handle passed, const ProxyState& /*from*/) {
  w.write_u64(w.add_handle(passed));
}
inline std::shared_ptr<ProxyState> read_proxy(Reader& r) {
  const std::uint64_t slot = r.read_u64();
  native_handle h = r.take_handle(static_cast<std::size_t>(slot));
  if (!is_seqpacket(h)) {
    proc::detail::close_handle(h);
    r.fail("the handle is not a manager connection");
  }
  return std::make_shared<ProxyState>(h);
}

// ---- the manager's side ------------------------------------------------------------------------

/// The manager: a thread serving every client connection of every dict it made.
class ManagerCore {
 public:
  ManagerCore() : thread_([this] { run(); }) {}
  ManagerCore(const ManagerCore&) = delete;
  ManagerCore& operator=(const ManagerCore&) = delete;
  ~ManagerCore() { shutdown(); }

  /// A new connection to `dict`: the manager serves one end, the other is returned as a proxy's.
  /// Throws ManagerGone after shutdown.
  std::shared_ptr<ProxyState> attach(std::shared_ptr<DictBase> dict) {
    HandlePair p = seqpacket_pair();
    auto c = std::make_unique<Client>(p.first, std::move(dict));
    {
      std::lock_guard lock(m_);
      if (stopped_) {
        proc::detail::close_handle(p.second);
        throw ManagerGone("proc::mp::Manager::dict: the manager has been shut down");
      }
      pending_.push_back(std::move(c));
    }
    waker_.wake();
    return std::make_shared<ProxyState>(p.second);
  }

  [[nodiscard]] bool running() {
    std::lock_guard lock(m_);
    return !stopped_;
  }

  /// Stops the thread and closes every connection (each client then gets ManagerGone).
  void shutdown() noexcept {
    {
      std::lock_guard lock(m_);
      stopping_ = stopped_ = true;
    }
    waker_.wake();
    std::lock_guard lock(join_m_);  // two threads may shut down at once
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Client {
    Client(native_handle h, std::shared_ptr<DictBase> d) : fd(h), dict(std::move(d)) {}
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() {
      proc::detail::close_handle(fd);
      close_all(fds);
    }
    native_handle fd;
    std::shared_ptr<DictBase> dict;  // the last client of a dict frees it
    std::string in;                  // the request being received
    std::vector<int> fds;            // descriptors that came with it
    std::string out;                 // the reply not yet sent
    std::size_t out_pos = 0;
    bool dropped = false;
  };

  void run() noexcept {
    try {
      serve();
    } catch (...) {
      // Out of memory or descriptors, or poll failed: end as if shut down, so that clients
      // learn it (ManagerGone) rather than wait.
    }
    std::vector<std::unique_ptr<Client>> late;
    {
      std::lock_guard lock(m_);
      stopped_ = true;
      late.swap(pending_);
    }
    clients_.clear();  // closes every connection; the dicts go with their last client
  }

  void serve() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({waker_.handle(), POLLIN, 0});
      for (const auto& c : clients_)
        fds.push_back({c->fd, static_cast<short>(c->out.empty() ? POLLIN : POLLOUT), 0});
      int r = proc::detail::poll_until(fds.data(), fds.size(), std::nullopt);
      if (r < 0) {
        if (errno == EINTR) continue;
        proc::detail::throw_errno(errno, "proc::mp::Manager: poll");
      }
      const std::size_t polled = clients_.size();  // new clients come at the end, unpolled
      for (std::size_t i = 0; i < polled; ++i) {
        if (!fds[i + 1].revents) continue;
        try {
          service(*clients_[i], fds[i + 1].revents);
        } catch (...) {
          clients_[i]->dropped = true;  // a system call failed on it: that client only
        }
      }
      if (fds[0].revents) {
        waker_.drain();
        std::lock_guard lock(m_);
        if (stopping_) return;
        for (auto& c : pending_) clients_.push_back(std::move(c));
        pending_.clear();
      }
      std::erase_if(clients_, [](const auto& c) { return c->dropped; });
    }
  }

  void service(Client& c, short revents) {
    if (!c.out.empty()) {
      flush(c);
      return;
    }
    if (revents & POLLNVAL) {
      c.dropped = true;
      return;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
    // A few packets at a time, so that one big request does not keep the others waiting.
    for (int budget = 16; budget > 0 && !c.dropped && c.out.empty(); --budget) {
      bool more = false;
      switch (recv_packet(c.fd, scratch_.get(), c.in, more, c.fds, true)) {
        case Got::would_block:
          return;
        case Got::end:
        case Got::bad:
          c.dropped = true;
          return;
        case Got::packet:
          break;
      }
      if (more) continue;
      respond(c);
      flush(c);
    }
  }

  // Applies the request in c.in and puts the reply in c.out.
  void respond(Client& c) {
    Writer& w = reply_;
    w.clear();
    w.write_u8(static_cast<std::uint8_t>(Status::ok));
    try {
      Reader in(c.in);
      auto op = static_cast<Op>(in.read_u8());
      if (op == Op::new_client) {
        expect_end(in);
        if (c.fds.size() == 1 && c.fds[0] == proc::detail::invalid_handle)
          throw std::runtime_error(
              "proc::mp::Manager: could not receive the new connection (out of descriptors?)");
        if (c.fds.size() != 1 || !is_seqpacket(c.fds[0]))
          in.fail("a new client must come with one SOCK_SEQPACKET descriptor");
        clients_.push_back(std::make_unique<Client>(c.fds[0], c.dict));
        c.fds.clear();
      } else {
        c.dict->handle(op, in, w);
      }
    } catch (...) {
      write_error_reply(w);
    }
    close_all(c.fds);
    c.in.clear();
    // The reply must not refer to the dict's values (write_view): it may change before a slow
    // client has taken it all.
    if (w.size() == w.buffer().size())
      c.out.swap(w.buffer());
    else
      c.out = w.flatten();
    w.clear();
    c.out_pos = 0;
  }

  void flush(Client& c) {
    Writer::Segment seg{c.out.data(), c.out.size()};
    auto pos = send_packets(c.fd, std::span(&seg, 1), c.out_pos, true);
    if (!pos) {
      c.dropped = true;  // the client is gone: its request was applied, the reply is lost
      return;
    }
    c.out_pos = *pos;
    if (c.out_pos == c.out.size()) {
      c.out.clear();
      c.out_pos = 0;
    }
  }

  std::mutex m_, join_m_;
  bool stopping_ = false;  // shutdown() asked the thread to stop
  bool stopped_ = false;   // stopping, or the thread has ended: attach() refuses
  std::vector<std::unique_ptr<Client>> pending_;
  Waker waker_;
  std::vector<std::unique_ptr<Client>> clients_;  // the thread's own
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(packet_max);
  Writer reply_;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace proc::mp::detail::mgr
