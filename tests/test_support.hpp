#pragma once
// Shared by the tests: the path of our child program, Catch2 v2/v3, and descriptor counting.

#if defined(PROC_CATCH3)
#  include <catch2/catch_all.hpp>
#else
#  include <catch2/catch.hpp>
#endif

#include <proc/proc.hpp>
#include <string>
#include <vector>

#if !defined(_WIN32)
#  include <dirent.h>
#  include <sys/types.h>
#  include <sys/wait.h>
#endif

namespace test {

/// The child program built with the tests.
inline const std::string child = PROC_TEST_CHILD;

/// {child, args...}
inline std::vector<std::string> cmd(std::initializer_list<std::string> args) {
  std::vector<std::string> v{child};
  v.insert(v.end(), args);
  return v;
}

#if !defined(_WIN32)
/// How many descriptors this process has open.
inline int open_fd_count() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
    return n - 3;  // ".", ".." and the DIR's own descriptor
  }
  for (int fd = 0; fd < 4096; ++fd)
    if (fcntl(fd, F_GETFD) != -1) ++n;
  return n;
}

/// Whether this process has any unreaped child (a zombie or a running one).
inline bool has_children() {
  siginfo_t si{};
  return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}
#endif

}  // namespace test
