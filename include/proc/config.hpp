#pragma once
/// \file
/// The one place that decides the platform. Everything else tests these macros.
///
/// - `PROC_POSIX`   — a POSIX system (Linux, macOS, the BSDs)
/// - `PROC_LINUX`   — Linux (pidfd, close_range, clone)
/// - `PROC_APPLE`   — macOS (kqueue)
/// - `PROC_WINDOWS` — Windows (CreateProcessW)

#if defined(_WIN32)
#  define PROC_WINDOWS 1
#elif defined(__linux__)
#  define PROC_POSIX 1
#  define PROC_LINUX 1
#elif defined(__APPLE__)
#  define PROC_POSIX 1
#  define PROC_APPLE 1
#elif defined(__unix__)
#  define PROC_POSIX 1
#else
#  error "proc: unsupported platform (neither POSIX nor Windows)"
#endif

#define PROC_VERSION_MAJOR 0
#define PROC_VERSION_MINOR 1
#define PROC_VERSION_PATCH 0
