#pragma once
// Growing a std::string as data arrives, without a copy through a scratch buffer: the string is
// grown geometrically and read() writes straight into its spare room; `used` tracks the filled
// part and the string is cut to it at the end.

#include <algorithm>
#include <cstddef>
#include <string>

#include "proc/detail/platform.hpp"

namespace proc::detail {

/// Room of at least `want` bytes after `used` in `s`, growing it geometrically.
inline void reserve_tail(std::string& s, std::size_t used, std::size_t want) {
  if (s.size() - used >= want) return;
  s.resize(std::max(used + want, s.size() + s.size() / 2 + (1u << 16)));
}

/// Appends everything up to end of stream from `h` to `out`.
inline void read_to_end(native_handle h, std::string& out) {
  std::size_t used = out.size();
  for (;;) {
    reserve_tail(out, used, 1u << 16);
    std::size_t n = read_some(h, out.data() + used, out.size() - used);
    if (n == 0) break;
    used += n;
  }
  out.resize(used);
}

}  // namespace proc::detail
