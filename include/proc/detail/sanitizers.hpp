#pragma once
// Which sanitizer this translation unit is built with, for the few places that must behave
// differently under one: PROC_ASAN, PROC_TSAN, PROC_MSAN.
//
// - ThreadSanitizer intercepts clone() as if it were fork() and cannot follow a CLONE_VM child,
//   so a TSan build takes the fork path wherever it would use clone (same behaviour, slower).
// - ThreadSanitizer and MemorySanitizer keep shadow state per address that mremap'd page
//   regions would leave stale (false races, livelocks, crashes in users' own builds), so under
//   them captures grow in the string itself, as with PROC_NO_PAGE_REGION.
// - AddressSanitizer's stack poison may linger where a page region is mapped (see handle.hpp).

#if defined(__SANITIZE_ADDRESS__)
#  define PROC_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#  define PROC_TSAN 1
#endif
#if defined(__has_feature)
#  if __has_feature(address_sanitizer) && !defined(PROC_ASAN)
#    define PROC_ASAN 1
#  endif
#  if __has_feature(thread_sanitizer) && !defined(PROC_TSAN)
#    define PROC_TSAN 1
#  endif
#  if __has_feature(memory_sanitizer)
#    define PROC_MSAN 1
#  endif
#endif
