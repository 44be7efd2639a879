#pragma once
/// \file
/// `proc::mp::Manager` and `proc::mp::SharedDict<K, V>` (Python's `multiprocessing.Manager()`
/// and its `dict()` proxies): a dictionary that lives in one place and is used from any number
/// of processes, every operation applied whole and one at a time.
///
/// The transport and the manager's thread are the back end's (detail/posix/manager.hpp,
/// detail/windows/manager.hpp); the dicts, the requests and the proxies are here.

#include "proc/config.hpp"

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

#include <algorithm>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/detail/platform.hpp"
#include "proc/mp/errors.hpp"

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

/// Closes the connections a proxy made for children.
inline void close_handles(std::vector<native_handle>& hs) noexcept {
  for (native_handle h : hs) proc::detail::close_handle(h);
  hs.clear();
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

/// Fills `w` with the error reply for the exception being handled (its type and what()).
inline void write_error_reply(Writer& w) {
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

/// True while this thread encodes a request's key or value (a SharedDict inside one would
/// call back into its own connection).
inline bool& encoding_request() noexcept {
  thread_local bool on = false;
  return on;
}

/// Fills `w` with request `op` and what `encode(Writer&)` writes after it. A key or value that
/// carries a handle (Connection, Lock, ...) is refused.
template <class Encode>
void write_request(Writer& w, Op op, const char* what, Encode&& encode) {
  w.clear();
  w.write_u8(static_cast<std::uint8_t>(op));
  {
    struct Encoding {
      Encoding() { encoding_request() = true; }
      ~Encoding() { encoding_request() = false; }
    } scope;
    encode(w);
  }
  if (!w.handles().empty()) {
    w.clear();
    throw std::logic_error(std::string("proc::mp::SharedDict::") + what +
                           ": a key or value cannot carry a Connection, Lock or other resource");
  }
}

/// The payload of a whole reply as `decode(Reader&)` reads it; an error reply (the twin of
/// write_error_reply) is rethrown as SerializationError or RemoteError.
template <class Decode>
auto read_reply(const std::string& reply, Decode&& decode) {
  Reader r(reply);
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

/// What a proxy's call throws once its connection to the manager is gone.
inline ManagerGone manager_gone(const char* what) {
  return ManagerGone(std::string("proc::mp::SharedDict::") + what +
                     ": the manager is gone (shut down, or its process ended)");
}

}  // namespace detail::mgr
}  // namespace proc::mp

// The back end: ManagerCore (the manager's thread), ProxyState (one connection to it),
// pass_connection, write_proxy and read_proxy (the same names on both sides).
#if defined(PROC_WINDOWS)
#  include "proc/mp/detail/windows/manager.hpp"
#else
#  include "proc/mp/detail/posix/manager.hpp"
#endif

namespace proc::mp {

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
/// Windows: see docs/windows.md (a named pipe per proxy).
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
      detail::mgr::close_handles(passed_);
      s_ = std::move(other.s_);
      passed_ = std::move(other.passed_);
      other.passed_.clear();
    }
    return *this;
  }
  ~SharedDict() { detail::mgr::close_handles(passed_); }

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

  explicit SharedDict(std::shared_ptr<detail::mgr::ProxyState> s) : s_(std::move(s)) {}

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
    if (detail::mgr::encoding_request())
      throw std::logic_error(
          "proc::mp::SharedDict: a SharedDict cannot be a key or value of a SharedDict");
    proc::detail::native_handle h = detail::mgr::pass_connection(state("pass"));
    try {
      passed_.push_back(h);
    } catch (...) {
      proc::detail::close_handle(h);
      throw;
    }
    return h;
  }

  std::shared_ptr<detail::mgr::ProxyState> s_;
  mutable std::vector<proc::detail::native_handle> passed_;  // ends made for children
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
/// Movable, not copyable.
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
    return SharedDict<K, V>(core_->attach(std::move(d)));
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
    proc::detail::native_handle h = d.pass_handle();
    detail::mgr::write_proxy(w, h, *d.s_);
  }
  static SharedDict<K, V> decode(Reader& r) { return SharedDict<K, V>(detail::mgr::read_proxy(r)); }
};

}  // namespace proc::mp
