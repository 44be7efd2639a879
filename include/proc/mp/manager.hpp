#pragma once
/// \file
/// `proc::mp::Manager` and `proc::mp::SharedDict<K, V>` (Python's `multiprocessing.Manager()`
/// and its `dict()` proxies): a dictionary that lives in one place and is used from any number
/// of processes, every operation applied whole and one at a time.
///
/// POSIX only for now: on Windows this header declares nothing.

#include "proc/config.hpp"

#if defined(PROC_POSIX)

// The manager's transport is a SOCK_SEQPACKET socketpair per proxy (the channel of a Connection
// is a byte stream; here the packet boundaries are what keeps a request whole). These calls are
// POSIX-specific and kept together in proc::mp::detail::mgr below, which is the part a Windows
// back end would replace.
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

#  include <poll.h>
#  include <sys/socket.h>
#  include <sys/uio.h>
#  include <unistd.h>

#  include <algorithm>
#  include <cerrno>
#  include <concepts>
#  include <cstddef>
#  include <cstdint>
#  include <cstring>
#  include <exception>
#  include <map>
#  include <memory>
#  include <mutex>
#  include <optional>
#  include <span>
#  include <stdexcept>
#  include <string>
#  include <thread>
#  include <type_traits>
#  include <typeinfo>
#  include <utility>
#  include <vector>

#  include "proc/detail/platform.hpp"
#  include "proc/mp/codec.hpp"
#  include "proc/mp/detail/platform.hpp"
#  include "proc/mp/detail/posix/seqpacket.hpp"
#  include "proc/mp/errors.hpp"

namespace proc::mp {

template <class K, class V>
class SharedDict;

namespace detail::mgr {

/// The largest packet, header byte included. Far below the default socket buffer (about 208 KiB
/// on Linux), which bounds a SOCK_SEQPACKET packet; bigger messages are split.
inline constexpr std::size_t packet_max = 32 * 1024;
inline constexpr std::size_t body_max = packet_max - 1;
inline constexpr std::uint8_t more_follows = 1;

/// What a request asks for (its first byte).
enum class Op : std::uint8_t {
  get = 1,
  set,
  erase,
  contains,
  size,
  items,
  clear,
  add,
  compare_exchange,
  setdefault,
  pop,
  new_client,  // carries one descriptor: a new connection to the same dict
};

/// A reply's first byte.
enum class Status : std::uint8_t { ok = 0, error = 1 };

using proc::detail::native_handle;

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

// ---- the manager's side ------------------------------------------------------------------------

/// A dict as the manager holds it: typed, behind a virtual call, so that one manager thread can
/// serve dicts of any K and V.
class DictBase {
 public:
  virtual ~DictBase() = default;
  /// Applies the request (its op already read) and writes the reply's payload; bad bytes are a
  /// SerializationError (the request is then not applied).
  virtual void handle(Op op, Reader& in, Writer& out) = 0;
};

template <class V>
inline constexpr bool addable = std::is_arithmetic_v<V> && !std::is_same_v<V, bool>;

/// `a + b`, wrapping around for integers (the manager must not overflow a signed type).
template <class V>
V wrapping_add(V a, V b) noexcept {
  if constexpr (std::is_integral_v<V>) {
    using U = std::make_unsigned_t<V>;
    return static_cast<V>(static_cast<U>(static_cast<U>(a) + static_cast<U>(b)));
  } else {
    return static_cast<V>(a + b);
  }
}

inline void expect_end(Reader& in) {
  if (in.remaining() != 0) in.fail("bytes left after the request");
}

template <class K, class V>
class TypedDict final : public DictBase {
 public:
  explicit TypedDict(std::map<K, V> initial) : map_(std::move(initial)) {}

  void handle(Op op, Reader& in, Writer& out) override {
    switch (op) {
      case Op::get: {
        K k = in.read<K>();
        expect_end(in);
        auto it = map_.find(k);
        if (it == map_.end()) {
          out.write_u8(0);
        } else {
          out.write_u8(1);
          out.write(it->second);
        }
        return;
      }
      case Op::set: {
        K k = in.read<K>();
        V v = in.read<V>();
        expect_end(in);
        map_.insert_or_assign(std::move(k), std::move(v));
        return;
      }
      case Op::erase: {
        K k = in.read<K>();
        expect_end(in);
        out.write_u8(map_.erase(k) ? 1 : 0);
        return;
      }
      case Op::contains: {
        K k = in.read<K>();
        expect_end(in);
        out.write_u8(map_.count(k) ? 1 : 0);
        return;
      }
      case Op::size:
        expect_end(in);
        out.write_u64(map_.size());
        return;
      case Op::items:
        expect_end(in);
        out.write_u64(map_.size());
        for (const auto& [k, v] : map_) {
          out.write(k);
          out.write(v);
        }
        return;
      case Op::clear:
        expect_end(in);
        map_.clear();
        return;
      case Op::add:
        if constexpr (addable<V>) {
          K k = in.read<K>();
          V delta = in.read<V>();
          expect_end(in);
          V& slot = map_[std::move(k)];  // a missing key counts as V{}
          slot = wrapping_add(slot, delta);
          out.write(slot);
          return;
        }
        break;
      case Op::compare_exchange:
        if constexpr (std::equality_comparable<V> && std::default_initializable<V>) {
          K k = in.read<K>();
          V expected = in.read<V>();
          V desired = in.read<V>();
          expect_end(in);
          auto it = map_.find(k);
          const bool equal = it == map_.end() ? expected == V{} : it->second == expected;
          if (equal) map_.insert_or_assign(std::move(k), std::move(desired));
          out.write_u8(equal ? 1 : 0);
          return;
        }
        break;
      case Op::setdefault: {
        K k = in.read<K>();
        V v = in.read<V>();
        expect_end(in);
        auto it = map_.try_emplace(std::move(k), std::move(v)).first;
        out.write(it->second);
        return;
      }
      case Op::pop: {
        K k = in.read<K>();
        expect_end(in);
        auto it = map_.find(k);
        if (it == map_.end()) {
          out.write_u8(0);
        } else {
          out.write_u8(1);
          out.write(it->second);
          map_.erase(it);
        }
        return;
      }
      case Op::new_client:
        break;
    }
    in.fail("request " + std::to_string(static_cast<unsigned>(op)) + " is not one for a " +
            std::string(type_name<SharedDict<K, V>>()));
  }

 private:
  std::map<K, V> map_;
};

/// The manager: a thread serving every client connection of every dict it made.
class ManagerCore {
 public:
  ManagerCore() : thread_([this] { run(); }) {}
  ManagerCore(const ManagerCore&) = delete;
  ManagerCore& operator=(const ManagerCore&) = delete;
  ~ManagerCore() { shutdown(); }

  /// A new connection to `dict`: the manager serves one end, the other is returned. Throws
  /// ManagerGone after shutdown.
  native_handle attach(std::shared_ptr<DictBase> dict) {
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
    return p.second;
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
      w.clear();
      w.write_u8(static_cast<std::uint8_t>(Status::error));
      std::string type = "unknown exception", what;
      try {
        throw;
      } catch (const SerializationError& e) {
        type = "SerializationError";
        what = e.what();
      } catch (const std::exception& e) {
        type = demangle(typeid(e).name());
        what = e.what();
      } catch (...) {
      }
      w.write(type);
      w.write(what);
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

// ---- the proxy's side --------------------------------------------------------------------------

struct adopt_t {};

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
    if (fd_ == proc::detail::invalid_handle) throw gone(what);
    w_.clear();
    w_.write_u8(static_cast<std::uint8_t>(op));
    {
      struct Encoding {  // a SharedDict inside a key or value would call back in here
        Encoding() { encoding() = true; }
        ~Encoding() { encoding() = false; }
      } scope;
      encode(w_);
    }
    if (!w_.handles().empty()) {
      w_.clear();
      throw std::logic_error(std::string("proc::mp::SharedDict::") + what +
                             ": a key or value cannot carry a Connection, Lock or other resource");
    }
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
      throw gone(what);
    }
    Reader r(reply_);
    if (static_cast<Status>(r.read_u8()) != Status::ok) {
      auto type = r.read<std::string>();
      auto message = r.read<std::string>();
      if (type == "SerializationError") throw SerializationError(message);
      throw RemoteError(std::move(type), std::move(message));
    }
    if constexpr (std::is_void_v<decltype(decode(r))>) {
      decode(r);
      expect_end(r);
    } else {
      auto result = decode(r);
      expect_end(r);
      return result;
    }
  }

  /// True while this thread encodes a request's key or value.
  static bool& encoding() noexcept {
    thread_local bool on = false;
    return on;
  }

 private:
  static ManagerGone gone(const char* what) {
    return ManagerGone(std::string("proc::mp::SharedDict::") + what +
                       ": the manager is gone (shut down, or its process ended)");
  }

  std::mutex m_;
  native_handle fd_;
  Writer w_;
  std::string reply_;
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(packet_max);
};

}  // namespace detail::mgr

/// A proxy for a dictionary that a `Manager` holds (Python's `Manager().dict()`): what you use
/// and pass to processes. Get one from `Manager::dict<K, V>()`.
///
/// - Every operation is one request to the manager, applied whole and one at a time, so
///   operations from any number of processes never interleave; `add` and `compare_exchange` are
///   atomic read-modify-writes (Python's proxies have no such thing: `d[k] += 1` races there).
/// - Keys are ordered by `<` (the manager keeps a `std::map<K, V>`): `items()` comes in key
///   order. K and V must be Transferable, and cannot carry resources (a Connection, a Lock).
/// - When the manager is gone (shut down, or the process that started it ended) every call
///   throws `ManagerGone` at once; nothing waits.
/// - Pass it to a `Process` as an argument: the child gets its own connection to the same dict
///   (this works from any process that has a proxy, so grandchildren too). Copies in one process
///   share one connection, on which calls from several threads take turns.
/// - A default-constructed or moved-from proxy throws `std::logic_error` when used.
///
/// POSIX only for now.
template <class K, class V>
class SharedDict {
 public:
  using key_type = K;
  using mapped_type = V;

  /// A proxy for nothing (assign one from `Manager::dict` to use it).
  SharedDict() = default;
  /// Another proxy for the same dict, sharing this one's connection.
  SharedDict(const SharedDict& other) : s_(other.s_) {}
  SharedDict& operator=(const SharedDict& other) {
    if (this != &other) s_ = other.s_;
    return *this;
  }
  SharedDict(SharedDict&& other) noexcept
      : s_(std::move(other.s_)), passed_(std::move(other.passed_)) {
    other.passed_.clear();
  }
  SharedDict& operator=(SharedDict&& other) noexcept {
    if (this != &other) {
      detail::mgr::close_all(passed_);
      s_ = std::move(other.s_);
      passed_ = std::move(other.passed_);
      other.passed_.clear();
    }
    return *this;
  }
  ~SharedDict() { detail::mgr::close_all(passed_); }

  /// The value at `key`, or `std::nullopt` when there is none.
  std::optional<V> get(const K& key) const {
    return request(
        "get", detail::mgr::Op::get, [&](Writer& w) { w.write(key); }, &read_optional);
  }

  /// Sets `key` to `value` (inserting it, or replacing what was there).
  void set(const K& key, const V& value) {
    request(
        "set", detail::mgr::Op::set,
        [&](Writer& w) {
          w.write(key);
          w.write(value);
        },
        [](Reader&) {});
  }

  /// Removes `key`; whether it was there.
  bool erase(const K& key) {
    return request(
        "erase", detail::mgr::Op::erase, [&](Writer& w) { w.write(key); }, &read_flag);
  }

  /// Removes `key` and returns its value, or `std::nullopt` when it was not there (Python's
  /// `pop(key, None)`).
  std::optional<V> pop(const K& key) {
    return request(
        "pop", detail::mgr::Op::pop, [&](Writer& w) { w.write(key); }, &read_optional);
  }

  /// Whether `key` is there (Python's `key in d`).
  [[nodiscard]] bool contains(const K& key) const {
    return request(
        "contains", detail::mgr::Op::contains, [&](Writer& w) { w.write(key); }, &read_flag);
  }

  /// How many keys there are (Python's `len(d)`).
  [[nodiscard]] std::size_t size() const {
    return request(
        "size", detail::mgr::Op::size, [](Writer&) {},
        [](Reader& r) { return static_cast<std::size_t>(r.read_u64()); });
  }

  /// A copy of every key and value, in key order, taken at one moment.
  [[nodiscard]] std::vector<std::pair<K, V>> items() const {
    return request(
        "items", detail::mgr::Op::items, [](Writer&) {},
        [](Reader& r) {
          const std::uint64_t n = r.read_u64();
          if (n > r.remaining() / 2) r.fail("more items than bytes");  // each is 2+ bytes
          std::vector<std::pair<K, V>> out;
          out.reserve(static_cast<std::size_t>(n));
          for (std::uint64_t i = 0; i < n; ++i) {
            K k = r.read<K>();
            out.emplace_back(std::move(k), r.read<V>());
          }
          return out;
        });
  }

  /// Removes every key.
  void clear() {
    request(
        "clear", detail::mgr::Op::clear, [](Writer&) {}, [](Reader&) {});
  }

  /// Atomically adds `delta` to the value at `key` and returns the new value; a missing key
  /// counts as `V{}` (0). Integers wrap around on overflow. For arithmetic V other than bool.
  V add(const K& key, V delta) requires detail::mgr::addable<V> {
    return request(
        "add", detail::mgr::Op::add,
        [&](Writer& w) {
          w.write(key);
          w.write(delta);
        },
        [](Reader& r) { return r.read<V>(); });
  }

  /// Atomically: if the value at `key` equals `expected`, sets it to `desired` and returns true;
  /// otherwise changes nothing and returns false. A missing key counts as `V{}`, so
  /// `compare_exchange(k, 0, 1)` succeeds on an empty dict.
  bool compare_exchange(const K& key, const V& expected, const V& desired) requires
      std::equality_comparable<V> && std::default_initializable<V> {
    return request(
        "compare_exchange", detail::mgr::Op::compare_exchange,
        [&](Writer& w) {
          w.write(key);
          w.write(expected);
          w.write(desired);
        },
        &read_flag);
  }

  /// The value at `key`, after setting it to `value` if it was missing (Python's
  /// `setdefault`): atomic, so of several processes racing to insert, one wins and all see its
  /// value.
  V setdefault(const K& key, const V& value) {
    return request(
        "setdefault", detail::mgr::Op::setdefault,
        [&](Writer& w) {
          w.write(key);
          w.write(value);
        },
        [](Reader& r) { return r.read<V>(); });
  }

  /// Whether this proxy is connected (not default-constructed or moved from). It may still find
  /// the manager gone.
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  friend class Manager;
  friend struct codec<SharedDict>;

  SharedDict(detail::mgr::adopt_t, proc::detail::native_handle h)
      : s_(std::make_shared<detail::mgr::ProxyState>(h)) {}

  template <class Encode, class Decode>
  auto request(const char* what, detail::mgr::Op op, Encode&& encode, Decode&& decode,
               proc::detail::native_handle pass = proc::detail::invalid_handle) const {
    return state(what).call(what, op, std::forward<Encode>(encode), std::forward<Decode>(decode),
                            pass);
  }

  static std::optional<V> read_optional(Reader& r) {
    if (read_flag(r)) return r.read<V>();
    return std::nullopt;
  }

  static bool read_flag(Reader& r) {
    std::uint8_t b = r.read_u8();
    if (b > 1) r.fail("a flag other than 0 or 1");
    return b == 1;
  }

  detail::mgr::ProxyState& state(const char* what) const {
    if (!s_)
      throw std::logic_error(std::string("proc::mp::SharedDict::") + what +
                             ": no dict (default-constructed or moved from)");
    return *s_;
  }

  // For passing to a child: a new connection to the same dict, whose other end the manager now
  // serves. This proxy object keeps the returned end open until it is destroyed (a Process
  // destroys its copies of the arguments once the child has inherited them).
  proc::detail::native_handle pass_handle() const {
    if (detail::mgr::ProxyState::encoding())
      throw std::logic_error(
          "proc::mp::SharedDict: a SharedDict cannot be a key or value of a SharedDict");
    detail::HandlePair p = detail::mgr::seqpacket_pair();
    try {
      request(
          "pass", detail::mgr::Op::new_client, [](Writer&) {}, [](Reader&) {}, p.second);
    } catch (...) {
      proc::detail::close_handle(p.first);
      proc::detail::close_handle(p.second);
      throw;
    }
    proc::detail::close_handle(p.second);  // the manager has its own copy now
    passed_.push_back(p.first);
    return p.first;
  }

  std::shared_ptr<detail::mgr::ProxyState> s_;
  mutable std::vector<int> passed_;  // ends made for children, closed with this object
};

/// Serves shared objects to any number of processes (Python's `multiprocessing.Manager()`).
/// Start one with `Manager::start()`, make dicts with `dict<K, V>()`, pass the proxies to
/// processes.
///
/// **The default: a thread in the process that calls `start()`** serves every operation of
/// every dict it made, one at a time (Python's manager is a separate server process). It runs
/// until `shutdown()` or the destructor, and ends with the process. Then every proxy, in every
/// process, throws `ManagerGone` at its next call (or the call it is in), at once.
///
/// A client that dies, even in the middle of an operation, leaves no trace: a request counts
/// only once it has arrived whole. A dict lives while some proxy for it does (in any process).
///
/// Movable, not copyable. POSIX only for now.
class Manager {
 public:
  /// Starts the manager's thread. Throws `std::system_error` when it cannot.
  [[nodiscard]] static Manager start() {
    return Manager(std::make_unique<detail::mgr::ManagerCore>());
  }

  Manager(Manager&&) noexcept = default;
  Manager& operator=(Manager&& other) noexcept {
    if (this != &other) {
      shutdown();
      core_ = std::move(other.core_);
    }
    return *this;
  }
  ~Manager() { shutdown(); }

  /// A new dict holding `initial` (default: empty), and the first proxy for it. Throws
  /// `ManagerGone` after `shutdown()`, `std::logic_error` for a moved-from Manager.
  template <class K, class V>
  SharedDict<K, V> dict(std::map<K, V> initial = {}) {
    static_assert(Transferable<K> && Transferable<V>,
                  "proc::mp::Manager::dict: keys and values must be Transferable (see "
                  "proc::mp::codec)");
    static_assert(
        requires(const K& a, const K& b) {
          { a < b } -> std::convertible_to<bool>;
        },
        "proc::mp::Manager::dict: keys must be ordered by < (the dict is a std::map)");
    if (!core_) throw std::logic_error("proc::mp::Manager::dict: used after being moved from");
    auto d = std::make_shared<detail::mgr::TypedDict<K, V>>(std::move(initial));
    return SharedDict<K, V>(detail::mgr::adopt_t{}, core_->attach(std::move(d)));
  }

  /// Whether the manager still serves (false after `shutdown()`, or if its thread failed).
  [[nodiscard]] bool running() const { return core_ && core_->running(); }

  /// Stops serving and closes every connection: each proxy's next call (or the call it is in)
  /// throws `ManagerGone`. Idempotent; the destructor calls it.
  void shutdown() noexcept {
    if (core_) core_->shutdown();
  }

 private:
  explicit Manager(std::unique_ptr<detail::mgr::ManagerCore> c) : core_(std::move(c)) {}
  std::unique_ptr<detail::mgr::ManagerCore> core_;
};

/// A SharedDict travels to a child process as a new connection to the same dict (an inherited
/// handle); the manager serves it from then on.
template <class K, class V>
struct codec<SharedDict<K, V>> {
  static void encode(Writer& w, const SharedDict<K, V>& d) {
    w.write_u64(w.add_handle(d.pass_handle()));
  }
  static SharedDict<K, V> decode(Reader& r) {
    const std::uint64_t slot = r.read_u64();
    proc::detail::native_handle h = r.take_handle(static_cast<std::size_t>(slot));
    if (!detail::is_seqpacket(h)) {
      proc::detail::close_handle(h);
      r.fail("the handle is not a manager connection");
    }
    return SharedDict<K, V>(detail::mgr::adopt_t{}, h);
  }
};

}  // namespace proc::mp

#endif  // PROC_POSIX
