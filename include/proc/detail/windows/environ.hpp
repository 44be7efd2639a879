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
//   names are case-insensitive, so such a pair with different values is std::invalid_argument
//   rather than a silent choice — unless it is plainly "this process's value, changed" (see
//   make_native_environment).

#include <algorithm>
#include <cwchar>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "proc/detail/windows/win32.hpp"

namespace proc::detail {

/// How environment names are ordered and compared: ignoring ASCII case, as Windows treats them
/// (so `set("PATH", ...)` replaces `Path`). Transparent, for lookups by string_view.
struct EnvNameLess {
  using is_transparent = void;
  static char upper(char c) noexcept { return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c; }
  bool operator()(std::string_view a, std::string_view b) const noexcept {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
      return static_cast<unsigned char>(upper(x)) < static_cast<unsigned char>(upper(y));
    });
  }
};

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

/// Builds the block from "NAME=value" entries (UTF-8). Throws std::invalid_argument for text
/// that is not UTF-8, and for names that differ only in case and carry different values —
/// except in the common case of a copy of this process's environment with one variable changed
/// under another spelling (Environment::current() holds "Path", env_update sets "PATH"): when
/// all but one value equal this process's own value of the variable, that one value wins.
inline NativeEnvironment make_native_environment(const std::vector<std::string>& entries) {
  struct Entry {
    std::wstring text;
    std::size_t name_len;
    std::string utf8_name;
    std::wstring_view name() const { return std::wstring_view(text).substr(0, name_len); }
    std::wstring_view value() const { return std::wstring_view(text).substr(name_len + 1); }
  };
  std::vector<Entry> wide;
  wide.reserve(entries.size());
  for (const auto& e : entries) {
    std::string name = e.substr(0, e.find('='));
    std::wstring w = to_wide(e, "an environment entry");
    std::size_t name_len = to_wide(name, "an environment variable name").size();
    wide.push_back({std::move(w), name_len, std::move(name)});
  }
  std::stable_sort(wide.begin(), wide.end(), [](const Entry& a, const Entry& b) {
    return compare_names(a.name(), b.name()) < 0;
  });
  NativeEnvironment out;
  for (std::size_t i = 0; i < wide.size();) {
    std::size_t j = i + 1;
    while (j < wide.size() && compare_names(wide[i].name(), wide[j].name()) == 0) ++j;
    const Entry* keep = &wide[i];
    if (j - i > 1) {
      // Spellings of one variable: the values that are not this process's own value.
      auto own = own_environment_variable(std::wstring(wide[i].name()).c_str());
      const Entry* changed = nullptr;
      bool ambiguous = false;
      for (std::size_t k = i; k < j; ++k) {
        if (own && wide[k].value() == *own) continue;
        if (changed && changed->value() != wide[k].value()) ambiguous = true;
        changed = &wide[k];
      }
      bool all_same = std::all_of(wide.begin() + static_cast<std::ptrdiff_t>(i),
                                  wide.begin() + static_cast<std::ptrdiff_t>(j),
                                  [&](const Entry& e) { return e.value() == wide[i].value(); });
      if (!all_same && (ambiguous || !changed || !own))
        throw std::invalid_argument("proc: the environment sets both '" + wide[i].utf8_name +
                                    "' and '" + wide[i + 1].utf8_name +
                                    "' to different values; Windows variable names are "
                                    "case-insensitive, so the child could get only one");
      if (!all_same) keep = changed;
    }
    if (compare_names(keep->name(), L"PATH") == 0) out.path = std::wstring(keep->value());
    if (compare_names(keep->name(), L"PATHEXT") == 0) out.pathext = std::wstring(keep->value());
    out.block += keep->text;
    out.block += L'\0';
    i = j;
  }
  if (wide.empty()) out.block += L'\0';  // an empty block is two NULs
  out.block += L'\0';
  return out;
}

}  // namespace proc::detail
