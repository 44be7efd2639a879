#pragma once
// The Windows headers, and the small tools every file of the Windows back end shares: UTF-8 <->
// UTF-16 conversion, an owning HANDLE, and errors from GetLastError().
//
// Calls: MultiByteToWideChar, WideCharToMultiByte (CP_UTF8), CloseHandle, GetLastError.
//
// Invariants:
// - <windows.h> is included with WIN32_LEAN_AND_MEAN and NOMINMAX, and both macros are removed
//   again if we defined them, so a user's code after us sees no `min`/`max` macros and no
//   change in what a later #include of <windows.h> would declare.
// - Text crosses the API boundary as UTF-8 and the Win32 boundary as UTF-16; invalid UTF-8 in
//   anything sent to Windows is std::invalid_argument, never silently replaced.

#if !defined(WIN32_LEAN_AND_MEAN)
#  define WIN32_LEAN_AND_MEAN
#  define PROC_UNDEF_WIN32_LEAN_AND_MEAN
#endif
#if !defined(NOMINMAX)
#  define NOMINMAX
#  define PROC_UNDEF_NOMINMAX
#endif
#include <windows.h>
// GetProcessMemoryInfo as K32GetProcessMemoryInfo, which kernel32 exports (no psapi.lib).
#if !defined(PSAPI_VERSION)
#  define PSAPI_VERSION 2
#endif
#include <psapi.h>
#if defined(PROC_UNDEF_WIN32_LEAN_AND_MEAN)
#  undef WIN32_LEAN_AND_MEAN
#  undef PROC_UNDEF_WIN32_LEAN_AND_MEAN
#endif
#if defined(PROC_UNDEF_NOMINMAX)
#  undef NOMINMAX
#  undef PROC_UNDEF_NOMINMAX
#endif

#if defined(_WIN32_WINNT) && _WIN32_WINNT < 0x0600
#  error "proc needs the Windows Vista API or later (_WIN32_WINNT >= 0x0600)"
#endif

#include <climits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace proc::detail {

[[noreturn]] inline void throw_win32(DWORD code, const std::string& what) {
  throw std::system_error(static_cast<int>(code), std::system_category(), what);
}

[[noreturn]] inline void throw_last_error(const std::string& what) {
  throw_win32(::GetLastError(), what);
}

/// UTF-16 for Windows. Throws std::invalid_argument naming `what` when `s` is not UTF-8.
inline std::wstring to_wide(std::string_view s, const char* what = "text") {
  if (s.empty()) return {};
  if (s.size() > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument(std::string("proc: ") + what + " is too long");
  int n = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), static_cast<int>(s.size()),
                                nullptr, 0);
  if (n <= 0)
    throw std::invalid_argument(std::string("proc: ") + what + " is not valid UTF-8: '" +
                                std::string(s) + "'");
  std::wstring out(static_cast<std::size_t>(n), L'\0');
  ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s.data(), static_cast<int>(s.size()),
                        out.data(), n);
  return out;
}

/// UTF-8 from Windows. An unpaired surrogate (which Windows allows in names) becomes U+FFFD.
inline std::string to_utf8(std::wstring_view w) {
  if (w.empty()) return {};
  int n = ::WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0,
                                nullptr, nullptr);
  if (n <= 0) return {};
  std::string out(static_cast<std::size_t>(n), '\0');
  ::WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), out.data(), n, nullptr,
                        nullptr);
  return out;
}

/// Owns one HANDLE (null or INVALID_HANDLE_VALUE: none) and closes it.
class UniqueHandle {
 public:
  UniqueHandle() noexcept = default;
  explicit UniqueHandle(HANDLE h) noexcept : h_(h == INVALID_HANDLE_VALUE ? nullptr : h) {}
  UniqueHandle(UniqueHandle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) reset(std::exchange(o.h_, nullptr));
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  [[nodiscard]] HANDLE get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != nullptr; }
  HANDLE release() noexcept { return std::exchange(h_, nullptr); }
  void reset(HANDLE h = nullptr) noexcept {
    if (h_) ::CloseHandle(h_);
    h_ = h == INVALID_HANDLE_VALUE ? nullptr : h;
  }

 private:
  HANDLE h_ = nullptr;
};

}  // namespace proc::detail
