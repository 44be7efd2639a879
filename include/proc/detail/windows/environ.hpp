#pragma once
// This process's environment, and the environment block a child gets.
//
// Calls: GetEnvironmentStringsW, FreeEnvironmentStringsW, GetEnvironmentVariableW,
// CompareStringOrdinal.
//
// Invariants:
// - Names and values are UTF-8 in the API and UTF-16 to Windows. The hidden per-drive entries
//   ("=C:=C:\\dir"), whose names start with '=', are not reported (an Environment cannot hold
//   them); a child that inherits the whole environment still gets them.
// - A block handed to CreateProcessW is sorted by name case-insensitively (ordinal, upper-case
//   comparison, as Windows documents) and has no two names that differ only in case: Windows
//   names are case-insensitive, so such a pair is std::invalid_argument rather than a silent
//   choice of one value.

#include <algorithm>
#include <cwchar>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "proc/detail/windows/win32.hpp"

namespace proc::detail {

/// Calls `f(name, value)` (UTF-8) for each entry of this process's environment.
template <class F>
void for_each_environment_entry(F&& f) {
  wchar_t* block = ::GetEnvironmentStringsW();
  if (!block) return;
  struct Free {
    wchar_t* b;
    ~Free() { ::FreeEnvironmentStringsW(b); }
  } free_block{block};
  for (const wchar_t* p = block; *p; p += std::wcslen(p) + 1) {
    std::wstring_view entry(p);
    auto eq = entry.find(L'=');
    if (eq == std::wstring_view::npos || eq == 0) continue;  // "=C:=..." and malformed entries
    std::string name = to_utf8(entry.substr(0, eq));
    std::string value = to_utf8(entry.substr(eq + 1));
    f(std::string_view(name), std::string_view(value));
  }
}

/// Compares two UTF-16 names as Windows does (ordinal, ignoring case): -1, 0 or 1.
inline int compare_names(std::wstring_view a, std::wstring_view b) noexcept {
  int r = ::CompareStringOrdinal(a.data(), static_cast<int>(a.size()), b.data(),
                                 static_cast<int>(b.size()), TRUE);
  return r == CSTR_LESS_THAN ? -1 : r == CSTR_GREATER_THAN ? 1 : 0;
}

/// A variable of this process, or nullopt.
inline std::optional<std::wstring> own_environment_variable(const wchar_t* name) {
  std::wstring value(256, L'\0');
  for (;;) {
    ::SetLastError(ERROR_SUCCESS);
    DWORD n = ::GetEnvironmentVariableW(name, value.data(), static_cast<DWORD>(value.size()));
    if (n == 0) {
      if (::GetLastError() == ERROR_ENVVAR_NOT_FOUND) return std::nullopt;
      return std::wstring();
    }
    if (n < value.size()) {
      value.resize(n);
      return value;
    }
    value.resize(n);  // n counts the terminator: the next call fits
  }
}

/// A child's environment, ready for CreateProcessW.
struct NativeEnvironment {
  std::wstring block;                // "A=1\0B=2\0\0"
  std::optional<std::wstring> path;  // PATH, found case-insensitively
  std::optional<std::wstring> pathext;
};

/// Builds the block from "NAME=value" entries (UTF-8). Throws std::invalid_argument for two
/// names that differ only in case, or for text that is not UTF-8.
inline NativeEnvironment make_native_environment(const std::vector<std::string>& entries) {
  struct Entry {
    std::wstring text;
    std::size_t name_len;
    std::string utf8_name;
  };
  std::vector<Entry> wide;
  wide.reserve(entries.size());
  for (const auto& e : entries) {
    auto eq = e.find('=');
    std::string name = e.substr(0, eq);
    std::wstring w = to_wide(e, "an environment entry");
    std::size_t name_len = to_wide(name, "an environment variable name").size();
    wide.push_back({std::move(w), name_len, std::move(name)});
  }
  auto name_of = [](const Entry& e) { return std::wstring_view(e.text).substr(0, e.name_len); };
  std::stable_sort(wide.begin(), wide.end(), [&](const Entry& a, const Entry& b) {
    return compare_names(name_of(a), name_of(b)) < 0;
  });
  NativeEnvironment out;
  for (std::size_t i = 0; i < wide.size(); ++i) {
    if (i > 0 && compare_names(name_of(wide[i - 1]), name_of(wide[i])) == 0)
      throw std::invalid_argument("proc: the environment sets both '" + wide[i - 1].utf8_name +
                                  "' and '" + wide[i].utf8_name +
                                  "'; Windows variable names are case-insensitive");
    auto name = name_of(wide[i]);
    auto value = std::wstring_view(wide[i].text).substr(wide[i].name_len + 1);
    if (compare_names(name, L"PATH") == 0) out.path = std::wstring(value);
    if (compare_names(name, L"PATHEXT") == 0) out.pathext = std::wstring(value);
    out.block += wide[i].text;
    out.block += L'\0';
  }
  if (wide.empty()) out.block += L'\0';  // an empty block is two NULs
  out.block += L'\0';
  return out;
}

}  // namespace proc::detail
