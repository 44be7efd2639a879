#pragma once
// Reading this process's environment (the `environ` array).

#include <cstring>
#include <functional>
#include <string_view>

#if defined(PROC_APPLE)
#  include <crt_externs.h>
#endif

extern "C" {
#if !defined(PROC_APPLE)
extern char** environ;
#endif
}

namespace proc::detail {

/// How environment names are ordered and compared: byte-wise, case-sensitive (POSIX).
using EnvNameLess = std::less<>;

/// This process's environment block (not a copy).
inline char** process_environ() noexcept {
#if defined(PROC_APPLE)
  return *_NSGetEnviron();
#else
  return ::environ;
#endif
}

/// Calls `f(name, value)` for each entry of this process's environment.
template <class F>
void for_each_environment_entry(F&& f) {
  for (char** e = process_environ(); e && *e; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;  // malformed: not passed on by us
    f(entry.substr(0, eq), entry.substr(eq + 1));
  }
}

}  // namespace proc::detail
