#pragma once
// Unnamed shared memory for proc::mp on Windows (Lock, SharedMemory, Shared, SharedArray) and the
// kernel mutex that makes a lock robust.
//
// Calls: CreateFileMappingW (INVALID_HANDLE_VALUE: backed by the paging file, no name),
// MapViewOfFile (FILE_MAP_READ | FILE_MAP_WRITE, the whole section), VirtualQuery, UnmapViewOfFile,
// CreateMutexW (no name), WaitForSingleObject, ReleaseMutex, GetCurrentThreadId, CloseHandle.
//
// Design:
// - A segment is a section without a name: nothing of it can be opened by another process, only
//   inherited through a handle passed on purpose (codec + spawn.hpp's handle list), and the
//   memory goes with the last handle and the last view, however the processes holding them end.
// - Windows has no call that reads back a section's size (only NtQuerySection, undocumented), so
//   a segment starts with a small header of its own, {magic, size}, and data() begins after it.
//   A child that adopts a section checks the header against the view's extent (VirtualQuery),
//   and keeps the size it read then: a peer rewriting the header later changes nothing here.
// - A lock is a kernel mutex (unnamed, its handle passed next to the segment's). A holder that
//   dies leaves it abandoned: the next wait returns WAIT_ABANDONED and owns it, so nobody ever
//   waits for a dead holder. What POSIX keeps in the robust mutex itself lives in the segment:
//   the poisoned flag (shared.hpp's LockHeader) and the holder's thread id (MutexState), which
//   makes the mutex non-recursive and error-checking, as on POSIX: Windows' own mutex counts
//   recursive waits, so a second lock by the holder is undone at once and reported as
//   `deadlock`, and an unlock by a thread that does not hold it is refused before ReleaseMutex.
//
// Invariants:
// - MutexState::owner is the id of the thread holding the mutex, written only by that thread
//   right after its wait succeeded and cleared right before its ReleaseMutex; thread ids are
//   unique among running threads of the whole system. After WAIT_OBJECT_0 the previous holder
//   released properly (cleared it), so seeing our own id there means this thread already held it.
// - Handles are not inheritable from birth (spawn.hpp makes them so for one CreateProcessW).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "proc/detail/platform.hpp"

namespace proc::mp::detail {

/// One view of an unnamed section, with its handle (passed to children).
class Segment {
 public:
  /// A new zero-filled segment of `bytes` bytes (> 0); `what` names it in errors.
  static std::shared_ptr<Segment> create(std::size_t bytes, const char* what) {
    if (bytes > SIZE_MAX - header_bytes)
      throw std::invalid_argument(std::string("proc::mp: ") + what + ": too big");
    const std::uint64_t total = header_bytes + bytes;
    HANDLE h =
        ::CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE,
                             static_cast<DWORD>(total >> 32), static_cast<DWORD>(total), nullptr);
    if (!h) proc::detail::throw_last_error(std::string("proc::mp: CreateFileMapping for ") + what);
    auto s = std::shared_ptr<Segment>(new Segment(h));
    s->map();
    Header head{magic, bytes};
    std::memcpy(s->base_, &head, sizeof head);
    s->size_ = bytes;
    return s;
  }

  /// Takes over `h` (received from a parent) and maps it whole. Its size must be at least
  /// `min_bytes`, else `std::runtime_error` (the caller turns it into a SerializationError).
  static std::shared_ptr<Segment> adopt(native_handle h, std::size_t min_bytes) {
    auto s = std::shared_ptr<Segment>(new Segment(h));
    if (!(s->base_ = ::MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0)))
      throw std::runtime_error("the handle passed is not shared memory (MapViewOfFile: error " +
                               std::to_string(::GetLastError()) + ")");
    MEMORY_BASIC_INFORMATION info{};
    if (::VirtualQuery(s->base_, &info, sizeof info) == 0)
      proc::detail::throw_last_error("proc::mp: VirtualQuery");
    Header head{};
    if (info.RegionSize >= sizeof head) std::memcpy(&head, s->base_, sizeof head);
    if (head.magic != magic || head.size == 0 || head.size > info.RegionSize - header_bytes ||
        head.size < min_bytes)
      throw std::runtime_error("the shared memory passed is " + std::to_string(head.size) +
                               " bytes, expected at least " + std::to_string(min_bytes));
    s->size_ = static_cast<std::size_t>(head.size);
    return s;
  }

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment() {
    if (base_ != nullptr) ::UnmapViewOfFile(base_);
    proc::detail::close_handle(h_);
  }

  [[nodiscard]] void* data() const noexcept { return static_cast<char*>(base_) + header_bytes; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] native_handle handle() const noexcept { return h_; }

 private:
  struct Header {
    std::uint64_t magic;
    std::uint64_t size;
  };
  static constexpr std::uint64_t magic = 0x4d47455350434f52ull;  // "ROCPSEGM"
  // 64: what follows is aligned for any T a Shared<T> may hold (as a fresh mapping on POSIX).
  static constexpr std::size_t header_bytes = 64;

  explicit Segment(native_handle h) noexcept : h_(h) {}
  void map() {
    base_ = ::MapViewOfFile(h_, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
    if (!base_) proc::detail::throw_last_error("proc::mp: MapViewOfFile");
  }

  native_handle h_ = nullptr;
  void* base_ = nullptr;
  std::size_t size_ = 0;
};

/// What a process mutex said when it was locked.
enum class LockResult { acquired, owner_died, not_recoverable, busy, timed_out, deadlock };

/// The part of a process mutex that lives in the lock's shared memory: who holds it.
struct MutexState {
  std::atomic<std::uint32_t> owner;  // the holder's thread id; 0 when free
};

/// A process-shared mutex as this process sees it: a kernel mutex handle (shared by the copies
/// of one lock in this process) and the state in shared memory.
class ProcessMutex {
 public:
  /// Whether the mutex has a handle of its own to pass to a child next to the segment's.
  static constexpr bool has_handle = true;
  /// A kernel mutex is usable again once acquired: poisoning is the segment's flag alone.
  static constexpr bool keeps_poison = false;

  ProcessMutex() = default;
  /// A new mutex for a new (zero-filled) segment.
  static ProcessMutex create(MutexState* state) {
    HANDLE h = ::CreateMutexW(nullptr, FALSE, nullptr);
    if (!h) proc::detail::throw_last_error("proc::mp: CreateMutex");
    return ProcessMutex(state, h);
  }
  /// The mutex of a segment received from a parent, with its handle (taken over).
  static ProcessMutex adopt(MutexState* state, native_handle h) { return ProcessMutex(state, h); }

  /// Blocks until locked (`deadline` none), or until the deadline (`timed_out`); with
  /// `try_only`, never blocks (`busy`).
  LockResult lock(bool try_only, std::optional<std::chrono::steady_clock::time_point> deadline) {
    const auto me = static_cast<std::uint32_t>(::GetCurrentThreadId());
    for (;;) {
      DWORD r = ::WaitForSingleObject(handle(), try_only ? 0 : proc::detail::wait_millis(deadline));
      if (r == WAIT_OBJECT_0) {
        if (state_->owner.load(std::memory_order_relaxed) == me) {
          ::ReleaseMutex(handle());  // the recursive count Windows just took
          return LockResult::deadlock;
        }
        state_->owner.store(me, std::memory_order_relaxed);
        return LockResult::acquired;
      }
      if (r == WAIT_ABANDONED) {
        state_->owner.store(me, std::memory_order_relaxed);
        return LockResult::owner_died;
      }
      if (r == WAIT_TIMEOUT) {
        if (try_only) return LockResult::busy;
        // wait_millis caps a far deadline: wait again until it has really passed.
        if (deadline && std::chrono::steady_clock::now() >= *deadline) return LockResult::timed_out;
        continue;
      }
      proc::detail::throw_last_error("proc::mp: WaitForSingleObject (lock)");
    }
  }

  /// `lock(false, nullopt)` (the POSIX back end has a shorter path for it).
  LockResult lock_blocking() { return lock(false, std::nullopt); }

  /// After `owner_died`: nothing to do, a kernel mutex is usable again once it was acquired.
  void make_consistent() noexcept {}

  void unlock() {
    const auto me = static_cast<std::uint32_t>(::GetCurrentThreadId());
    if (state_->owner.load(std::memory_order_relaxed) != me)
      throw std::logic_error("proc::mp::Lock: unlock by a thread that does not hold it");
    state_->owner.store(0, std::memory_order_relaxed);
    if (!::ReleaseMutex(handle())) {
      DWORD e = ::GetLastError();
      if (e == ERROR_NOT_OWNER)
        throw std::logic_error("proc::mp::Lock: unlock by a thread that does not hold it");
      proc::detail::throw_win32(e, "proc::mp: ReleaseMutex");
    }
  }

  [[nodiscard]] native_handle handle() const noexcept { return handle_->get(); }

 private:
  ProcessMutex(MutexState* state, HANDLE h)
      : state_(state), handle_(std::make_shared<proc::detail::UniqueHandle>(h)) {}
  MutexState* state_ = nullptr;
  std::shared_ptr<proc::detail::UniqueHandle> handle_;
};

}  // namespace proc::mp::detail
