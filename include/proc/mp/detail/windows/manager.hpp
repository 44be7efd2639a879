#pragma once
// The Windows back end of proc::mp::Manager (manager.hpp): the transport, the manager's thread
// and the proxy's side of a call. Included by manager.hpp after the parts both back ends share
// (Op, Status, DictBase, write_error_reply).
//
// Calls: CreateNamedPipeW (through channel.hpp's named_pipe_pair; PIPE_ACCESS_DUPLEX,
// PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE, FILE_FLAG_OVERLAPPED, FILE_FLAG_FIRST_PIPE_INSTANCE,
// one instance, PIPE_REJECT_REMOTE_CLIENTS), CreateFileW, SetNamedPipeHandleState
// (PIPE_READMODE_MESSAGE), ConnectNamedPipe, ReadFile, WriteFile, GetOverlappedResult, CancelIoEx,
// GetFileType, GetNamedPipeInfo, OpenProcess (PROCESS_DUP_HANDLE), DuplicateHandle
// (DUPLICATE_CLOSE_SOURCE), WaitForMultipleObjects (through proc::detail::wait_for_any),
// CloseHandle.
//
// Design:
// - One duplex message-mode named pipe per proxy connection (made as channel.hpp makes a
//   Connection's pipe): the manager holds the server end, the proxy the client end. A message
//   (request or reply) is one or more packets of at most `packet_max` bytes, each [u8 flags]
//   [body], one pipe message each (a ReadFile of packet_max bytes takes one whole), as the
//   SOCK_SEQPACKET packets of the POSIX back end. The manager applies a request only once its
//   last packet is in, so a client that dies in the middle of one leaves nothing done.
// - The manager's thread keeps one overlapped ReadFile pending on every client that is not
//   being answered, and an overlapped WriteFile on every client being answered (one packet of
//   the reply at a time), and waits for all their events and its Waker's together
//   (proc::detail::wait_for_any: any number of handles). It never waits for one client: a
//   client that does not read its reply only keeps its own write pending.
// - Passing a proxy to a child makes a new pipe; its server end must reach the manager. In the
//   manager's own process it is sent as its handle value; from another process (a child passing
//   its proxy on) it is first duplicated into the manager's process (OpenProcess with the
//   manager's pid, which travels with every proxy, and DuplicateHandle, closing our copy). The
//   manager then serves it (Op::new_client carries the value). The child inherits the client end.
// - A gone manager (shut down, or its process ended) closes its server ends: the proxy's write
//   fails with ERROR_NO_DATA or its read with ERROR_BROKEN_PIPE, at once: ManagerGone.
//
// Invariants:
// - Handles are not inheritable from birth (spawn.hpp makes them so for one CreateProcessW).
// - Each client has at most one request outstanding (a proxy's calls take turns on a mutex), so
//   a client is either being read from or being answered, never both.
// - No overlapped operation outlives its Client: a Client with one pending cancels it and waits
//   for it before its buffers go.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/detail/platform.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/platform.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp::detail::mgr {

/// A new connection: `first` the manager's (server) end, `second` the proxy's (client) end.
inline HandlePair manager_pipe_pair() {
  return named_pipe_pair({true, true, 4 * packet_max, "proc::mp::Manager"});
}

/// Whether `h` is the client end of a message-mode pipe (a proxy's connection).
inline bool is_proxy_end(native_handle h) noexcept {
  DWORD flags = 0;
  return ::GetFileType(h) == FILE_TYPE_PIPE &&
         ::GetNamedPipeInfo(h, &flags, nullptr, nullptr, nullptr) &&
         (flags & PIPE_TYPE_MESSAGE) != 0 && (flags & PIPE_SERVER_END) == 0;
}

/// Builds packet `[flags][body]` number `pos / body_max` of the message made of `segs`.
inline std::size_t make_packet(std::span<const Writer::Segment> segs, std::size_t total,
                               std::size_t pos, std::string& packet) {
  const std::size_t n = std::min(body_max, total - pos);
  packet.resize(n + 1);
  packet[0] = static_cast<char>(pos + n < total ? more_follows : 0);
  std::size_t at = 0, put = 1;
  for (const auto& s : segs) {
    const std::size_t from = std::max(pos, at), to = std::min(pos + n, at + s.size);
    if (from < to) {
      std::memcpy(packet.data() + put, s.data + (from - at), to - from);
      put += to - from;
    }
    at += s.size;
    if (at >= pos + n) break;
  }
  return n;
}

/// Writes one pipe message, waiting for it. False when the peer is gone.
inline bool write_packet(native_handle h, const std::string& packet) {
  PooledEvent event;
  OVERLAPPED ov{};
  ov.hEvent = event.get();
  DWORD put = 0;
  if ((::WriteFile(h, packet.data(), static_cast<DWORD>(packet.size()), nullptr, &ov) ||
       ::GetLastError() == ERROR_IO_PENDING) &&
      ::GetOverlappedResult(h, &ov, &put, TRUE))
    return true;
  DWORD e = ::GetLastError();
  if (proc::detail::is_reader_gone(e)) return false;
  proc::detail::throw_win32(e, "proc::mp::Manager: WriteFile");
}

enum class Got { packet, end, bad };

/// Reads one packet, waiting for it, and appends its body to `out`.
inline Got read_packet(native_handle h, char* scratch, std::string& out, bool& more) {
  PooledEvent event;
  OVERLAPPED ov{};
  ov.hEvent = event.get();
  DWORD got = 0;
  if (!((::ReadFile(h, scratch, static_cast<DWORD>(packet_max), nullptr, &ov) ||
         ::GetLastError() == ERROR_IO_PENDING) &&
        ::GetOverlappedResult(h, &ov, &got, TRUE))) {
    DWORD e = ::GetLastError();
    if (e == ERROR_MORE_DATA) return Got::bad;
    if (proc::detail::is_end_of_stream(e)) return Got::end;
    proc::detail::throw_win32(e, "proc::mp::Manager: ReadFile");
  }
  if (got == 0) return Got::bad;  // every packet has its flags byte
  more = (static_cast<std::uint8_t>(scratch[0]) & more_follows) != 0;
  out.append(scratch + 1, got - 1);
  return Got::packet;
}

// ---- the proxy's side --------------------------------------------------------------------------

/// One connection to the manager, shared by copies of a proxy in one process.
class ProxyState {
 public:
  ProxyState(native_handle h, DWORD manager_pid) : h_(h), manager_pid_(manager_pid) {}
  ProxyState(const ProxyState&) = delete;
  ProxyState& operator=(const ProxyState&) = delete;
  ~ProxyState() { proc::detail::close_handle(h_); }

  /// Sends the request that `encode(Writer&)` writes after `op`, waits for the reply, and
  /// returns `decode(Reader&)` of its payload. One request at a time per connection. (`pass`
  /// is POSIX's: a handle reaches the manager in the request itself here.)
  template <class Encode, class Decode>
  auto call(const char* what, Op op, Encode&& encode, Decode&& decode,
            native_handle /*pass*/ = invalid_handle) {
    std::lock_guard lock(m_);
    if (h_ == invalid_handle) throw manager_gone(what);
    write_request(w_, op, what, encode);
    bool ok = true;
    {
      const auto segs = w_.segments();
      const std::size_t total = w_.size();  // at least the op byte
      std::string packet;
      std::size_t pos = 0;
      do {
        pos += make_packet(segs, total, pos, packet);
        ok = write_packet(h_, packet);
      } while (ok && pos < total);
    }
    w_.clear();  // drop references to the caller's big values
    reply_.clear();
    for (bool more = true; ok && more;) {
      Got got = read_packet(h_, scratch_.get(), reply_, more);
      if (got == Got::bad) {
        proc::detail::close_handle(h_);  // out of step with the manager: unusable
        h_ = invalid_handle;
        throw SerializationError(std::string("proc::mp::SharedDict::") + what +
                                 ": a reply packet was not one of ours");
      }
      ok = got == Got::packet;
    }
    if (!ok) {
      proc::detail::close_handle(h_);
      h_ = invalid_handle;
      throw manager_gone(what);
    }
    return read_reply(reply_, decode);
  }

  [[nodiscard]] DWORD manager_pid() const noexcept { return manager_pid_; }

 private:
  proc::detail::Mutex m_;
  native_handle h_;
  DWORD manager_pid_;
  Writer w_;
  std::string reply_;
  std::unique_ptr<char[]> scratch_ = std::make_unique<char[]>(packet_max);
};

/// For passing a proxy to a child: a new connection to the same dict, whose server end the
/// manager now serves (see above). The caller keeps the returned client end open until the
/// child has inherited it.
inline native_handle pass_connection(ProxyState& s) {
  HandlePair p = manager_pipe_pair();
  proc::detail::UniqueHandle ours(p.second);
  native_handle theirs = p.first;  // the server end's value in the manager's process
  if (s.manager_pid() != ::GetCurrentProcessId()) {
    proc::detail::UniqueHandle manager(::OpenProcess(PROCESS_DUP_HANDLE, FALSE, s.manager_pid()));
    if (!manager || !::DuplicateHandle(::GetCurrentProcess(), p.first, manager.get(), &theirs, 0,
                                       FALSE, DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE)) {
      if (!manager) proc::detail::close_handle(p.first);
      throw ManagerGone("proc::mp::SharedDict: the manager's process cannot be reached (error " +
                        std::to_string(::GetLastError()) + ")");
    }
    s.call(
        "pass", Op::new_client, [&](Writer& w) { w.write_u64(handle_to_u64(theirs)); },
        [](Reader&) {});
  } else {
    // Not closed if the call fails: the request may have reached the manager, which then owns
    // the handle (a closed manager's leftover is one handle; a double close could hit another).
    s.call(
        "pass", Op::new_client, [&](Writer& w) { w.write_u64(handle_to_u64(theirs)); },
        [](Reader&) {});
  }
  return ours.release();
}

/// A proxy travels as its new connection's handle slot and the manager's pid.
inline void write_proxy(Writer& w, native_handle passed, const ProxyState& from) {
  w.write_u64(w.add_handle(passed));
  w.write_u64(from.manager_pid());
}
inline std::shared_ptr<ProxyState> read_proxy(Reader& r) {
  const std::uint64_t slot = r.read_u64();
  const std::uint64_t pid = r.read_u64();
  native_handle h = r.take_handle(static_cast<std::size_t>(slot));
  auto s = std::make_shared<ProxyState>(h, static_cast<DWORD>(pid));  // owns h from here
  if (!is_proxy_end(h) || pid == 0 || pid > 0xffffffffu)
    r.fail("the handle is not a manager connection");
  return s;
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
    HandlePair p = manager_pipe_pair();
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
    return std::make_shared<ProxyState>(p.second, ::GetCurrentProcessId());
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
    Client(native_handle handle, std::shared_ptr<DictBase> d) : h(handle), dict(std::move(d)) {}
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client() {
      if (busy) {  // the system writes `ov` and `packet` until the operation has ended
        DWORD ignored = 0;
        ::CancelIoEx(h, &ov);
        ::GetOverlappedResult(h, &ov, &ignored, TRUE);
      }
      proc::detail::close_handle(h);
    }
    native_handle h;
    std::shared_ptr<DictBase> dict;  // the last client of a dict frees it
    std::string in;                  // the request being received
    std::string out;                 // the reply being sent
    std::size_t out_pos = 0;         // how much of it is sent, or being sent
    bool writing = false;            // answering (else reading)
    bool busy = false;               // an overlapped read or write is pending
    bool dropped = false;
    std::string packet;  // the buffer of the pending operation
    PooledEvent event;
    OVERLAPPED ov{};
  };

  void run() noexcept {
    try {
      serve();
    } catch (...) {
      // Out of memory or handles, or a wait failed: end as if shut down, so that clients learn
      // it (ManagerGone) rather than wait.
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
    std::vector<HANDLE> waits;
    std::vector<Client*> who;
    for (;;) {
      // Every client gets an operation pending (one that completes at once is handled now;
      // clients added meanwhile come at the end and are started in the same pass).
      for (std::size_t i = 0; i < clients_.size(); ++i) {
        Client& c = *clients_[i];
        try {
          while (!c.dropped && !c.busy) start(c);
        } catch (...) {
          c.dropped = true;  // a system call failed on it: that client only
        }
      }
      std::erase_if(clients_, [](const auto& c) { return c->dropped; });
      waits.assign(1, waker_.handle());
      who.assign(1, nullptr);
      for (const auto& c : clients_) {
        waits.push_back(c->ov.hEvent);
        who.push_back(c.get());
      }
      std::optional<std::size_t> i = proc::detail::wait_for_any(waits, std::nullopt);
      if (!i) continue;
      if (*i == 0) {
        waker_.drain();
        std::lock_guard lock(m_);
        if (stopping_) return;
        for (auto& c : pending_) clients_.push_back(std::move(c));
        pending_.clear();
        continue;
      }
      Client& c = *who[*i];
      DWORD n = 0;
      BOOL ok = ::GetOverlappedResult(c.h, &c.ov, &n, TRUE);
      c.busy = false;
      try {
        finished(c, ok != 0, n);
      } catch (...) {
        c.dropped = true;
      }
    }
  }

  // Starts the client's next read (or, answering, its next packet's write).
  void start(Client& c) {
    c.ov = OVERLAPPED{};
    c.ov.hEvent = c.event.get();
    BOOL ok;
    if (c.writing) {
      Writer::Segment seg{c.out.data(), c.out.size()};
      make_packet(std::span(&seg, 1), c.out.size(), c.out_pos, c.packet);
      ok = ::WriteFile(c.h, c.packet.data(), static_cast<DWORD>(c.packet.size()), nullptr, &c.ov);
    } else {
      c.packet.resize(packet_max);
      ok = ::ReadFile(c.h, c.packet.data(), static_cast<DWORD>(packet_max), nullptr, &c.ov);
    }
    if (!ok && ::GetLastError() != ERROR_IO_PENDING) {
      c.dropped = true;  // gone, or a packet too big for us (ERROR_MORE_DATA): not our client
      return;
    }
    c.busy = true;
    DWORD n = 0;
    if (::GetOverlappedResult(c.h, &c.ov, &n, FALSE)) {  // done already
      c.busy = false;
      finished(c, true, n);
    } else if (::GetLastError() != ERROR_IO_INCOMPLETE) {
      c.busy = false;
      finished(c, false, 0);
    }
  }

  // A client's read or write has completed (`ok`, `n` bytes) or failed.
  void finished(Client& c, bool ok, DWORD n) {
    if (!ok || n == 0) {
      c.dropped = true;  // the end, a broken pipe, or a packet not ours
      return;
    }
    if (c.writing) {
      c.out_pos += std::min(body_max, c.out.size() - c.out_pos);
      if (c.out_pos >= c.out.size()) {
        c.writing = false;
        c.out.clear();
        c.out_pos = 0;
      }
      return;
    }
    const bool more = (static_cast<std::uint8_t>(c.packet[0]) & more_follows) != 0;
    c.in.append(c.packet.data() + 1, n - 1);
    if (!more) respond(c);
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
        native_handle h = handle_from_u64(in.read_u64());
        expect_end(in);
        if (::GetFileType(h) != FILE_TYPE_PIPE)
          in.fail("a new client must come with a pipe's server end");
        clients_.push_back(std::make_unique<Client>(h, c.dict));
      } else {
        c.dict->handle(op, in, w);
      }
    } catch (...) {
      write_error_reply(w);
    }
    c.in.clear();
    // The reply must not refer to the dict's values (write_view): it may change before a slow
    // client has taken it all.
    if (w.size() == w.buffer().size())
      c.out.swap(w.buffer());
    else
      c.out = w.flatten();
    w.clear();
    c.out_pos = 0;
    c.writing = true;
  }

  proc::detail::Mutex m_, join_m_;
  bool stopping_ = false;  // shutdown() asked the thread to stop
  bool stopped_ = false;   // stopping, or the thread has ended: attach() refuses
  std::vector<std::unique_ptr<Client>> pending_;
  Waker waker_;
  std::vector<std::unique_ptr<Client>> clients_;  // the thread's own
  Writer reply_;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace proc::mp::detail::mgr
