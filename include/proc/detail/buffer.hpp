#pragma once
// Collecting bytes that arrive from a pipe into the std::string the caller gets, at the cost of a
// plain read into a growing buffer: each byte is written once (by the kernel, straight into the
// buffer), no page is zero-filled or touched twice, and the memory at the peak is the output
// itself.
//
// How:
// - Small amounts grow in the string itself; `set_size_uninit` gives it the bytes read into
//   its spare capacity without writing them again (resize() would zero-fill them first).
// - Past `region_threshold`, the data moves once into a page region (POSIX back end) that grows
//   with mremap: no copy, pages touched once. At the end the string is allocated at the final
//   size and the region's whole pages are *moved* into it (mremap onto the string's untouched
//   pages); only the partial first and last page are copied. The region keeps its data at the
//   same offset within a page as the allocator's large blocks start, so the pages line up.
// - Where a piece is missing (no set_size_uninit for this standard library, no page regions,
//   the allocator's block does not line up), the same steps fall back to plain copies.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "proc/detail/platform.hpp"

namespace proc::detail {

// ---------------------------------------------------------------------------------------------
// set_size_uninit(s, n): s.size() becomes n (n <= s.capacity()) and the characters between the
// old and the new size are whatever was written through s.data() - not overwritten.

#if defined(__cpp_lib_string_resize_and_overwrite)
#  define PROC_HAVE_SET_SIZE_UNINIT 1
inline void set_size_uninit(std::string& s, std::size_t n) {
  s.resize_and_overwrite(n, [](char*, std::size_t k) { return k; });
}
#elif defined(__GLIBCXX__) && _GLIBCXX_USE_CXX11_ABI
#  define PROC_HAVE_SET_SIZE_UNINIT 1
// libstdc++ before C++23 has what resize_and_overwrite needs only as the private member
// _M_set_length (stores the length and the terminating NUL). An explicit instantiation may name
// a private member (access is not checked there), and the friend it defines gives us a call.
using StringSetLength = void (std::string::*)(std::string::size_type);
template <StringSetLength F>
struct StringSetLengthAccess {
  friend void string_set_length(std::string& s, std::size_t n) { (s.*F)(n); }
};
template struct StringSetLengthAccess<&std::string::_M_set_length>;
void string_set_length(std::string& s, std::size_t n);
inline void set_size_uninit(std::string& s, std::size_t n) { string_set_length(s, n); }
#endif

/// Collects bytes; `take()` hands them over as a std::string.
class ByteStore {
 public:
  ByteStore() = default;
  ByteStore(const ByteStore&) = delete;
  ByteStore& operator=(const ByteStore&) = delete;
  ~ByteStore() { release_region(); }

  /// Room for at least `want` more bytes after the data; returns it and sets `room` to its size.
  char* prepare(std::size_t want, std::size_t& room) {
#if defined(PROC_HAVE_PAGE_REGION) && defined(PROC_HAVE_SET_SIZE_UNINIT)
    if (region_ || str_.size() + want > region_threshold) return prepare_region(want, room);
#endif
#if defined(PROC_HAVE_SET_SIZE_UNINIT)
    if (str_.capacity() - str_.size() < want)
      str_.reserve(std::max(str_.size() + want, 2 * str_.capacity()));
    room = str_.capacity() - str_.size();
    return str_.data() + str_.size();
#else
    // Without set_size_uninit the string's size covers the room (zero-filled by resize).
    if (str_.size() - used_ < want)
      str_.resize(std::max(used_ + want, str_.size() + str_.size() / 2));
    room = str_.size() - used_;
    return str_.data() + used_;
#endif
  }

  /// `n` bytes were written into the room last prepared.
  void commit(std::size_t n) {
#if defined(PROC_HAVE_PAGE_REGION) && defined(PROC_HAVE_SET_SIZE_UNINIT)
    if (region_) {
      region_used_ += n;
      return;
    }
#endif
#if defined(PROC_HAVE_SET_SIZE_UNINIT)
    set_size_uninit(str_, str_.size() + n);
#else
    used_ += n;
#endif
  }

  void append(std::string_view s) {
    if (s.empty()) return;
    std::size_t room = 0;
    char* p = prepare(s.size(), room);
    std::memcpy(p, s.data(), s.size());
    commit(s.size());
  }

  [[nodiscard]] std::string_view view() const noexcept {
#if defined(PROC_HAVE_PAGE_REGION) && defined(PROC_HAVE_SET_SIZE_UNINIT)
    if (region_) return {region_ + region_offset(), region_used_};
#endif
#if defined(PROC_HAVE_SET_SIZE_UNINIT)
    return str_;
#else
    return {str_.data(), used_};
#endif
  }
  [[nodiscard]] std::size_t size() const noexcept { return view().size(); }

  /// The data, leaving this store empty.
  std::string take() {
#if defined(PROC_HAVE_PAGE_REGION) && defined(PROC_HAVE_SET_SIZE_UNINIT)
    if (region_) return take_region();
#endif
#if !defined(PROC_HAVE_SET_SIZE_UNINIT)
    str_.resize(used_);
    used_ = 0;
#endif
    // A small result should not keep the read room it grew (up to region_threshold) alive.
    if (str_.capacity() > 2 * str_.size()) str_.shrink_to_fit();
    return std::exchange(str_, std::string());
  }

  /// Where a capture switches from growing a string to growing a page region.
  static constexpr std::size_t region_threshold = std::size_t{64} << 10;

 private:
#if defined(PROC_HAVE_PAGE_REGION) && defined(PROC_HAVE_SET_SIZE_UNINIT)
  // The offset within a page at which the allocator's large blocks start (glibc: 16, after the
  // chunk header; sanitizer allocators: 0). Probed once with a block big enough for malloc to
  // map it (and too big to move glibc's dynamic mmap threshold when freed).
  static std::size_t region_offset() noexcept {
    static const std::size_t offset = [] {
      void* p = ::operator new (std::size_t{64} << 20, std::nothrow);
      std::size_t o = p ? reinterpret_cast<std::uintptr_t>(p) % page_size() : 0;
      ::operator delete(p);
      return o;
    }();
    return offset;
  }

  char* prepare_region(std::size_t want, std::size_t& room) {
    std::size_t off = region_offset();
    if (!region_) {
      std::size_t bytes = round_to_page(off + std::max(2 * region_threshold, str_.size() + want));
      region_ = region_map(bytes);
      if (!region_) throw std::bad_alloc();
      region_bytes_ = bytes;
      std::memcpy(region_ + off, str_.data(), str_.size());
      region_used_ = str_.size();
      str_ = std::string();
    }
    if (region_bytes_ - off - region_used_ < want) {
      std::size_t bytes = round_to_page(std::max(2 * region_bytes_, off + region_used_ + want));
      char* p = region_grow(region_, region_bytes_, bytes);
      if (!p) throw std::bad_alloc();
      region_ = p;
      region_bytes_ = bytes;
    }
    room = region_bytes_ - off - region_used_;
    return region_ + off + region_used_;
  }

  std::string take_region() {
    const std::size_t off = region_offset(), page = page_size(), n = region_used_;
    std::string s;
    s.reserve(n);
    char* dst = s.data();
    const char* src = region_ + off;
    std::size_t done = 0, hole = 0, moved = 0;
    if (reinterpret_cast<std::uintptr_t>(dst) % page == off) {
      // dst + head and src + head are page boundaries: copy the partial first page, move the
      // whole pages that lie inside the string's block, copy the partial last page.
      std::size_t head = std::min(n, (page - off) % page);
      std::memcpy(dst, src, head);
      std::size_t whole = (n - head) / page * page;
      done = head;
      if (whole && region_move_pages(region_ + off + head, whole, dst + head)) {
        done += whole;
        hole = off + head;
        moved = whole;
      }
    }
    std::memcpy(dst + done, src + done, n - done);
    set_size_uninit(s, n);
    release_region(hole, moved);
    return s;
  }

  static std::size_t round_to_page(std::size_t n) noexcept {
    std::size_t page = page_size();
    return (n + page - 1) / page * page;
  }
#endif

  // Unmaps the region but for the `hole_bytes` at `hole_at` whose pages were moved out: that
  // address space is free again, and another thread's mmap may already have been given it. Only
  // what is left on either side of the hole is ours to unmap.
  void release_region([[maybe_unused]] std::size_t hole_at = 0,
                      [[maybe_unused]] std::size_t hole_bytes = 0) noexcept {
#if defined(PROC_HAVE_PAGE_REGION) && defined(PROC_HAVE_SET_SIZE_UNINIT)
    region_unmap(region_, hole_at);
    region_unmap(region_ + hole_at + hole_bytes, region_bytes_ - hole_at - hole_bytes);
    region_ = nullptr;
    region_bytes_ = region_used_ = 0;
#endif
  }

  std::string str_;
#if !defined(PROC_HAVE_SET_SIZE_UNINIT)
  std::size_t used_ = 0;
#endif
#if defined(PROC_HAVE_PAGE_REGION) && defined(PROC_HAVE_SET_SIZE_UNINIT)
  char* region_ = nullptr;
  std::size_t region_bytes_ = 0, region_used_ = 0;
#endif
};

/// Appends everything up to end of stream from `h` to `out`.
inline void read_to_end(native_handle h, std::string& out) {
  ByteStore store;
  store.append(out);
  for (;;) {
    std::size_t room = 0;
    char* p = store.prepare(std::size_t{1} << 16, room);
    std::size_t n = read_some(h, p, room);
    if (n == 0) break;
    store.commit(n);
  }
  out = store.take();
}

}  // namespace proc::detail
