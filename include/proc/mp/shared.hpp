#pragma once
/// \file
/// `proc::mp::Lock`, `SharedMemory`, `Shared<T>` and `SharedArray<T>`: state shared between
/// processes that survives a process dying while it holds it (SPEC-mp §6).
///
/// Each object is a handle to unnamed shared memory (Linux: a memfd; Windows: a section without a
/// name): copies share it, passing one to a `Process` passes the memory, and it is freed with the
/// last handle in any process. Nothing is ever created in /dev/shm. A lock is a robust
/// process-shared pthread mutex in that memory on Linux, a kernel mutex (`WAIT_ABANDONED`) whose
/// handle travels with the memory on Windows.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "proc/config.hpp"
#include "proc/duration.hpp"
#include "proc/mp/codec.hpp"
#include "proc/mp/errors.hpp"

// The back end of Segment and ProcessMutex (the same names on both sides).
#if defined(PROC_WINDOWS)
#  include "proc/mp/detail/windows/segment.hpp"
#else
#  include "proc/mp/detail/posix/segment.hpp"
#endif

namespace proc::mp {

/// What a `Lock` does when its holder dies while holding it.
enum class OwnerDeath {
  /// The next locker is told (`OwnerDied` from `lock()`, or `previous_owner_died()` from
  /// `acquire()`); unless that guard calls `mark_consistent()`, every later locker gets
  /// `LockPoisoned`. The default: the state the lock protects may be half-updated.
  poison,
  /// The next locker is told through `acquire()`'s guard only; locking goes on as usual.
  recover,
};

namespace detail {

inline constexpr std::uint32_t lock_magic = 0x4b434f4cu;  // "LOCK"

/// The head of every segment with a lock: the mutex (or, on Windows, who holds the kernel mutex)
/// and how owner death is handled.
struct LockHeader {
  MutexState mutex;
  std::uint32_t magic;
  std::uint32_t owner_death;            // OwnerDeath
  std::atomic<std::uint32_t> poisoned;  // set before a poisoning unlock; never cleared
};

/// A lock at the head of a shared segment (Lock, and the lock of Shared/SharedArray).
class SegmentLock {
 public:
  SegmentLock() = default;
  /// A new lock at the head of `seg` (new, zero-filled).
  SegmentLock(std::shared_ptr<Segment> seg, OwnerDeath od) : seg_(std::move(seg)) {
    mutex_ = ProcessMutex::create(&header()->mutex);
    header()->magic = lock_magic;
    header()->owner_death = static_cast<std::uint32_t>(od);
  }
  /// The lock of a segment received from a parent, with its mutex.
  SegmentLock(std::shared_ptr<Segment> seg, ProcessMutex m)
      : seg_(std::move(seg)), mutex_(std::move(m)) {
    if (header()->magic != lock_magic || header()->owner_death > 1)
      throw std::runtime_error("the shared memory passed holds no proc::mp lock");
  }

  [[nodiscard]] LockHeader* header() const noexcept {
    return static_cast<LockHeader*>(seg_->data());
  }
  [[nodiscard]] OwnerDeath owner_death() const noexcept {
    return static_cast<OwnerDeath>(header()->owner_death);
  }
  [[nodiscard]] const std::shared_ptr<Segment>& segment() const noexcept { return seg_; }
  [[nodiscard]] const ProcessMutex& mutex() const noexcept { return mutex_; }

  /// Locks (blocking, trying, or until a deadline). Returns nullopt when not acquired (busy or
  /// timed out), else whether the previous owner died. Under poison, `tell_death` false: a
  /// death makes this throw OwnerDied and leaves the lock poisoned.
  std::optional<bool> lock(bool try_only,
                           std::optional<std::chrono::steady_clock::time_point> until,
                           bool tell_death, const char* who) {
    if (header()->poisoned.load(std::memory_order_acquire) != 0) throw_poisoned(who);
    return settle(mutex_.lock(try_only, until), tell_death, who);
  }

  /// `lock(false, nullopt, tell_death, who)` with the common case (not poisoned, acquired) in a
  /// few instructions: the uncontended lock is what SPEC-mp §8 compares with a raw mutex.
  bool lock_blocking(bool tell_death, const char* who) {
    if (header()->poisoned.load(std::memory_order_acquire) == 0) [[likely]] {
      LockResult r = mutex_.lock_blocking();
      if (r == LockResult::acquired && ProcessMutex::keeps_poison) [[likely]]
        return false;
      return *settle(r, tell_death, who);
    }
    throw_poisoned(who);
  }

  /// What a lock attempt's result means for the caller (see `lock`).
  [[gnu::noinline]] std::optional<bool> settle(LockResult r, bool tell_death, const char* who) {
    switch (r) {
      case LockResult::acquired:
        // Poisoned while this thread waited: a kernel mutex (Windows) stays usable, where a
        // robust pthread mutex left inconsistent refuses everyone (ENOTRECOVERABLE).
        if (!ProcessMutex::keeps_poison &&
            header()->poisoned.load(std::memory_order_acquire) != 0) {
          mutex_.unlock();
          throw_poisoned(who);
        }
        return false;
      case LockResult::busy:
      case LockResult::timed_out:
        return std::nullopt;
      case LockResult::not_recoverable:
        throw_poisoned(who);
      case LockResult::deadlock:
        if (header()->poisoned.load(std::memory_order_acquire) != 0) throw_poisoned(who);
        throw std::logic_error(std::string("proc::mp::") + who +
                               ": this thread already holds the lock (it is not recursive)");
      case LockResult::owner_died:
        break;
    }
    if (header()->poisoned.load(std::memory_order_acquire) != 0) {
      mutex_.unlock();  // an earlier death was never repaired: it stays poisoned
      throw_poisoned(who);
    }
    if (owner_death() == OwnerDeath::recover) {
      mutex_.make_consistent();
      return true;
    }
    if (tell_death) return true;  // the guard decides: mark_consistent() or poison
    poison_and_unlock();
    throw OwnerDied(std::string("proc::mp::") + who +
                    ": the previous holder died holding it; the lock is now poisoned "
                    "(use acquire() and mark_consistent() to recover, or OwnerDeath::recover)");
  }

  void unlock() { mutex_.unlock(); }
  void make_consistent() { mutex_.make_consistent(); }
  /// Unlocks a lock whose owner died without marking it consistent: poisoned for good.
  void poison_and_unlock() {
    header()->poisoned.store(1, std::memory_order_release);
    mutex_.unlock();  // POSIX: not consistent, ENOTRECOVERABLE for everyone from now on
  }

  [[noreturn]] static void throw_poisoned(const char* who) {
    throw LockPoisoned(std::string("proc::mp::") + who +
                       ": poisoned: an earlier holder died holding it and nobody marked it "
                       "consistent (OwnerDeath::poison)");
  }

 private:
  std::shared_ptr<Segment> seg_;
  ProcessMutex mutex_;
};

inline std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

/// Encodes a segment as a handle slot; decodes it back, checking its size.
inline void write_segment(Writer& w, const std::shared_ptr<Segment>& s) {
  w.write_u64(w.add_handle(s->handle()));
}
inline std::shared_ptr<Segment> read_segment(Reader& r, std::size_t min_bytes) {
  std::uint64_t slot = r.read_u64();
  auto h = r.take_handle(static_cast<std::size_t>(slot));
  try {
    return Segment::adopt(h, min_bytes);
  } catch (const std::runtime_error& e) {
    r.fail(e.what());
  }
}

/// Encodes a lock: its segment, then (Windows) its mutex's handle. (A template, so that the
/// branch of the other platform is never compiled.)
template <class M = ProcessMutex>
void write_lock(Writer& w, const SegmentLock& l) {
  write_segment(w, l.segment());
  if constexpr (M::has_handle) w.write_u64(w.add_handle(static_cast<const M&>(l.mutex()).handle()));
}
template <class M = ProcessMutex>
M read_mutex(Reader& r, MutexState* state) {
  if constexpr (M::has_handle) {
    std::uint64_t slot = r.read_u64();
    return M::adopt(state, r.take_handle(static_cast<std::size_t>(slot)));
  } else {
    return M::adopt(state);
  }
}
/// Decodes a lock whose segment is at least `min_bytes`; `check` may refuse it (runtime_error).
template <class Check>
SegmentLock read_lock(Reader& r, std::size_t min_bytes, Check&& check) {
  auto seg = read_segment(r, min_bytes);
  ProcessMutex m = read_mutex(r, &static_cast<LockHeader*>(seg->data())->mutex);
  try {
    SegmentLock l(std::move(seg), std::move(m));
    check(l);
    return l;
  } catch (const std::runtime_error& e) {
    r.fail(e.what());
  }
}
inline SegmentLock read_lock(Reader& r, std::size_t min_bytes) {
  return read_lock(r, min_bytes, [](const SegmentLock&) {});
}

}  // namespace detail

/// A lock shared by processes: Python's `multiprocessing.Lock`, robust. Lockable, so
/// `std::scoped_lock` / `std::unique_lock` work; pass it to a `Process` as an argument.
/// A holder that dies (SIGKILL, crash, exec) never leaves the others waiting: see `OwnerDeath`.
/// Not recursive: locking it twice from one thread is `std::logic_error`, as is unlocking it
/// from a thread that does not hold it.
class Lock {
 public:
  explicit Lock(OwnerDeath on_owner_death = OwnerDeath::poison)
      : lock_(detail::Segment::create(sizeof(detail::LockHeader), "proc::mp::Lock"),
              on_owner_death) {}

  /// The guard of `acquire()`: holds the lock until destroyed (or `unlock()`ed).
  class Guard {
   public:
    Guard(Guard&& o) noexcept
        : lock_(std::exchange(o.lock_, nullptr)), died_(o.died_), consistent_(o.consistent_) {}
    Guard& operator=(Guard&&) = delete;
    Guard(const Guard&) = delete;
    ~Guard() {
      if (lock_ != nullptr) {
        try {
          release();
        } catch (...) {
        }
      }
    }
    /// Whether the previous holder died holding the lock (the protected state may be torn).
    [[nodiscard]] bool previous_owner_died() const noexcept { return died_; }
    /// Declares the protected state repaired, so the lock is not poisoned (OwnerDeath::poison).
    void mark_consistent() {
      if (died_ && !consistent_ && lock_->owner_death() == OwnerDeath::poison)
        lock_->make_consistent();
      consistent_ = true;
    }
    /// Releases the lock now.
    void unlock() {
      if (lock_ == nullptr) throw std::logic_error("proc::mp::Lock::Guard: already unlocked");
      release();
    }

   private:
    void release() {
      detail::SegmentLock* l = std::exchange(lock_, nullptr);
      if (died_ && !consistent_ && l->owner_death() == OwnerDeath::poison)
        l->poison_and_unlock();
      else
        l->unlock();
    }
    friend class Lock;
    template <class T>
    friend class Shared;
    template <class T>
    friend class SharedArray;
    Guard(detail::SegmentLock* l, bool died) : lock_(l), died_(died) {}
    detail::SegmentLock* lock_;
    bool died_;
    bool consistent_ = false;
  };

  /// Blocks until this process holds the lock. Throws `OwnerDied` (poison) if the previous
  /// holder died holding it, `LockPoisoned` if an earlier death was never repaired.
  void lock() { lock_.lock_blocking(false, "Lock::lock"); }
  /// Takes the lock if it is free, without waiting.
  bool try_lock() { return lock_.lock(true, std::nullopt, false, "Lock::try_lock").has_value(); }
  /// Waits at most `timeout` for the lock.
  bool try_lock_for(Duration timeout) {
    return lock_
        .lock(false, proc::detail::deadline_after(timeout.value), false, "Lock::try_lock_for")
        .has_value();
  }
  void unlock() { lock_.unlock(); }

  /// Locks and returns a guard that says whether the previous holder died holding the lock.
  [[nodiscard]] Guard acquire() {
    return Guard(&lock_, lock_.lock_blocking(true, "Lock::acquire"));
  }
  /// As `acquire()`, waiting at most `timeout` (nullopt when it passed).
  [[nodiscard]] std::optional<Guard> acquire_for(Duration timeout) {
    auto r =
        lock_.lock(false, proc::detail::deadline_after(timeout.value), true, "Lock::acquire_for");
    if (!r) return std::nullopt;
    return Guard(&lock_, *r);
  }

  [[nodiscard]] OwnerDeath owner_death() const noexcept { return lock_.owner_death(); }

 private:
  friend struct codec<Lock>;
  explicit Lock(detail::SegmentLock l) : lock_(std::move(l)) {}
  detail::SegmentLock lock_;
};

template <>
struct codec<Lock> {
  static void encode(Writer& w, const Lock& l) { detail::write_lock(w, l.lock_); }
  static Lock decode(Reader& r) { return Lock(detail::read_lock(r, sizeof(detail::LockHeader))); }
};

/// Raw shared bytes, zero-filled: `bytes()` in every process it is passed to. Python's
/// `multiprocessing.shared_memory.SharedMemory`, without a name to unlink: freed with the last
/// handle. No lock of its own.
class SharedMemory {
 public:
  /// `bytes` > 0, else `std::invalid_argument`.
  static SharedMemory create(std::size_t bytes) {
    if (bytes == 0)
      throw std::invalid_argument("proc::mp::SharedMemory::create: size 0 (must be at least 1)");
    return SharedMemory(detail::Segment::create(bytes, "proc::mp::SharedMemory"));
  }
  [[nodiscard]] std::span<std::byte> bytes() const noexcept {
    return {static_cast<std::byte*>(seg_->data()), seg_->size()};
  }
  [[nodiscard]] std::size_t size() const noexcept { return seg_->size(); }

 private:
  friend struct codec<SharedMemory>;
  explicit SharedMemory(std::shared_ptr<detail::Segment> s) : seg_(std::move(s)) {}
  std::shared_ptr<detail::Segment> seg_;
};

template <>
struct codec<SharedMemory> {
  static void encode(Writer& w, const SharedMemory& m) { detail::write_segment(w, m.seg_); }
  static SharedMemory decode(Reader& r) { return SharedMemory(detail::read_segment(r, 1)); }
};

/// A value of trivially copyable `T` shared by processes, under its own robust lock: Python's
/// `multiprocessing.Value`. `update(f)` is atomic across processes.
template <class T>
class Shared {
  static_assert(std::is_trivially_copyable_v<T>,
                "proc::mp::Shared<T> needs a trivially copyable T (its bytes are shared)");

 public:
  explicit Shared(T initial = T{}, OwnerDeath on_owner_death = OwnerDeath::poison)
      : lock_(detail::Segment::create(bytes_needed(), "proc::mp::Shared"), on_owner_death) {
    new (slot()) T(initial);
  }

  /// A guard with access to the value while it holds the lock.
  class Locked {
   public:
    T& operator*() const noexcept { return *value_; }
    T* operator->() const noexcept { return value_; }
    [[nodiscard]] bool previous_owner_died() const noexcept { return guard_.previous_owner_died(); }
    void mark_consistent() { guard_.mark_consistent(); }

   private:
    friend class Shared;
    Locked(Lock::Guard g, T* v) : guard_(std::move(g)), value_(v) {}
    Lock::Guard guard_;
    T* value_;
  };

  [[nodiscard]] T load() const {
    auto g = const_cast<Shared*>(this)->lock();
    return *g;
  }
  void store(const T& v) { *lock() = v; }
  /// Calls `f(T&)` under the lock and returns what it returns.
  template <class F>
  decltype(auto) update(F&& f) {
    auto g = lock();
    return std::forward<F>(f)(*g);
  }
  /// Holds the lock: `*guard` is the value. A previous holder's death is reported as by
  /// `Lock::acquire()`; under poison, an unrepaired one throws `LockPoisoned`.
  [[nodiscard]] Locked lock() {
    bool died = lock_.lock_blocking(true, "Shared::lock");
    Lock::Guard g(&lock_, died);
    if (died && lock_.owner_death() == OwnerDeath::poison) {
      // load/store/update cannot tell the caller: a half-written value must not be read as good.
      g.lock_ = nullptr;
      lock_.poison_and_unlock();
      throw OwnerDied(
          "proc::mp::Shared: the previous holder died holding its lock; it is now poisoned");
    }
    return Locked(std::move(g), slot());
  }

 private:
  friend struct codec<Shared<T>>;
  static constexpr std::size_t value_at() {
    return detail::round_up(sizeof(detail::LockHeader), alignof(T) > 16 ? alignof(T) : 16);
  }
  static constexpr std::size_t bytes_needed() { return value_at() + sizeof(T); }
  T* slot() const noexcept {
    return std::launder(
        reinterpret_cast<T*>(static_cast<char*>(lock_.segment()->data()) + value_at()));
  }
  explicit Shared(detail::SegmentLock l) : lock_(std::move(l)) {}
  mutable detail::SegmentLock lock_;
};

template <class T>
struct codec<Shared<T>> {
  static void encode(Writer& w, const Shared<T>& s) { detail::write_lock(w, s.lock_); }
  static Shared<T> decode(Reader& r) {
    return Shared<T>(detail::read_lock(r, Shared<T>::bytes_needed()));
  }
};

/// A fixed-size array of trivially copyable `T` shared by processes, under one robust lock:
/// Python's `multiprocessing.Array`.
template <class T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>,
                "proc::mp::SharedArray<T> needs a trivially copyable T (its bytes are shared)");

 public:
  /// `n` elements, each `initial`.
  explicit SharedArray(std::size_t n, T initial = T{},
                       OwnerDeath on_owner_death = OwnerDeath::poison)
      : lock_(detail::Segment::create(bytes_needed(n), "proc::mp::SharedArray"), on_owner_death) {
    *count_slot() = n;
    T* p = data();
    for (std::size_t i = 0; i < n; ++i) new (p + i) T(initial);
  }

  class Locked {
   public:
    [[nodiscard]] std::span<T> span() const noexcept { return span_; }
    T& operator[](std::size_t i) const { return span_[i]; }
    [[nodiscard]] bool previous_owner_died() const noexcept { return guard_.previous_owner_died(); }
    void mark_consistent() { guard_.mark_consistent(); }

   private:
    friend class SharedArray;
    Locked(Lock::Guard g, std::span<T> s) : guard_(std::move(g)), span_(s) {}
    Lock::Guard guard_;
    std::span<T> span_;
  };

  [[nodiscard]] std::size_t size() const noexcept { return *count_slot(); }
  [[nodiscard]] T load(std::size_t i) const {
    check(i, "load");
    auto g = const_cast<SharedArray*>(this)->lock();
    return g[i];
  }
  void store(std::size_t i, const T& v) {
    check(i, "store");
    lock()[i] = v;
  }
  /// Every element, copied under the lock.
  [[nodiscard]] std::vector<T> to_vector() const {
    auto g = const_cast<SharedArray*>(this)->lock();
    return std::vector<T>(g.span().begin(), g.span().end());
  }
  /// Calls `f(std::span<T>)` under the lock and returns what it returns.
  template <class F>
  decltype(auto) update(F&& f) {
    auto g = lock();
    return std::forward<F>(f)(g.span());
  }
  /// Holds the lock; `guard.span()` is the array. Owner death as for `Shared::lock()`.
  [[nodiscard]] Locked lock() {
    bool died = lock_.lock_blocking(true, "SharedArray::lock");
    Lock::Guard g(&lock_, died);
    if (died && lock_.owner_death() == OwnerDeath::poison) {
      g.lock_ = nullptr;
      lock_.poison_and_unlock();
      throw OwnerDied(
          "proc::mp::SharedArray: the previous holder died holding its lock; it is now poisoned");
    }
    return Locked(std::move(g), std::span<T>(data(), size()));
  }

 private:
  friend struct codec<SharedArray<T>>;
  static constexpr std::size_t count_at() {
    return detail::round_up(sizeof(detail::LockHeader), 16);
  }
  static constexpr std::size_t data_at() {
    return detail::round_up(count_at() + sizeof(std::uint64_t), alignof(T) > 16 ? alignof(T) : 16);
  }
  static std::size_t bytes_needed(std::size_t n) {
    if (n > (std::size_t{1} << 40) / (sizeof(T) > 0 ? sizeof(T) : 1))
      throw std::invalid_argument("proc::mp::SharedArray: " + std::to_string(n) +
                                  " elements is more than shared memory can hold");
    return data_at() + (n == 0 ? 1 : n * sizeof(T));
  }
  static std::uint64_t* count_in(const detail::SegmentLock& l) noexcept {
    return reinterpret_cast<std::uint64_t*>(static_cast<char*>(l.segment()->data()) + count_at());
  }
  std::uint64_t* count_slot() const noexcept { return count_in(lock_); }
  T* data() const noexcept {
    return std::launder(
        reinterpret_cast<T*>(static_cast<char*>(lock_.segment()->data()) + data_at()));
  }
  void check(std::size_t i, const char* what) const {
    if (i >= size())
      throw std::out_of_range("proc::mp::SharedArray::" + std::string(what) + ": index " +
                              std::to_string(i) + " is out of range (size " +
                              std::to_string(size()) + ")");
  }
  explicit SharedArray(detail::SegmentLock l) : lock_(std::move(l)) {}
  mutable detail::SegmentLock lock_;
};

template <class T>
struct codec<SharedArray<T>> {
  static void encode(Writer& w, const SharedArray<T>& a) { detail::write_lock(w, a.lock_); }
  static SharedArray<T> decode(Reader& r) {
    return SharedArray<T>(
        detail::read_lock(r, SharedArray<T>::data_at(), [](const detail::SegmentLock& l) {
          std::uint64_t n = *SharedArray<T>::count_in(l);
          if (n > (l.segment()->size() - SharedArray<T>::data_at()) / sizeof(T))
            throw std::runtime_error("the shared array's size does not fit its memory");
        }));
  }
};

}  // namespace proc::mp
