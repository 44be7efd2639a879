#pragma once
/// \file
/// `proc::Environment`: a child's whole environment, as a sorted name → value map.

#include <initializer_list>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "proc/detail/platform.hpp"

namespace proc {

namespace detail {

/// `s` with each NUL byte shown as `\0`, for messages that name a bad value.
inline std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) out += c == '\0' ? std::string("\\0") : std::string(1, c);
  return out;
}

}  // namespace detail

/// A set of environment variables, kept sorted by name. On Windows names are case-insensitive,
/// as Windows treats them: `set("PATH", v)` replaces an existing `Path` (keeping its spelling).
///
/// Names that are empty or contain `=`, and any NUL byte in a name or value, are
/// `std::invalid_argument` (the message names the offending entry).
class Environment {
 public:
  /// Ordered by name; names compare case-sensitively on POSIX, ignoring case on Windows.
  using map_type = std::map<std::string, std::string, detail::EnvNameLess>;
  using const_iterator = map_type::const_iterator;

  /// An empty environment.
  Environment() = default;

  /// An environment holding exactly these entries (a later duplicate name wins).
  Environment(std::initializer_list<std::pair<std::string, std::string>> entries) {
    for (const auto& [name, value] : entries) set(name, value);
  }

  /// A copy of this process's environment, taken now.
  static Environment current() {
    Environment env;
    detail::for_each_environment_entry([&](std::string_view name, std::string_view value) {
      env.vars_.insert_or_assign(std::string(name), std::string(value));
    });
    return env;
  }

  /// The value of `name`, or `std::nullopt` when it is not set.
  [[nodiscard]] std::optional<std::string> get(std::string_view name) const {
    auto it = vars_.find(name);
    if (it == vars_.end()) return std::nullopt;
    return it->second;
  }

  /// Sets `name` to `value`, replacing any earlier value.
  /// Throws `std::invalid_argument` for a bad name or a NUL byte.
  void set(std::string_view name, std::string_view value) {
    check_name(name);
    if (value.find('\0') != std::string_view::npos)
      throw std::invalid_argument("proc::Environment: NUL byte in the value of '" +
                                  std::string(name) + "'");
    vars_.insert_or_assign(std::string(name), std::string(value));
  }

  /// Removes `name`; does nothing when it is not set.
  void erase(std::string_view name) {
    auto it = vars_.find(name);
    if (it != vars_.end()) vars_.erase(it);
  }

  [[nodiscard]] bool contains(std::string_view name) const {
    return vars_.find(name) != vars_.end();
  }
  [[nodiscard]] std::size_t size() const noexcept { return vars_.size(); }
  [[nodiscard]] bool empty() const noexcept { return vars_.empty(); }
  [[nodiscard]] const_iterator begin() const noexcept { return vars_.begin(); }
  [[nodiscard]] const_iterator end() const noexcept { return vars_.end(); }

  friend bool operator==(const Environment&, const Environment&) = default;

  /// Throws `std::invalid_argument` unless `name` can be an environment variable name.
  static void check_name(std::string_view name) {
    if (name.empty()) throw std::invalid_argument("proc::Environment: empty variable name");
    if (name.find('=') != std::string_view::npos)
      throw std::invalid_argument("proc::Environment: variable name contains '=': '" +
                                  std::string(name) + "'");
    if (name.find('\0') != std::string_view::npos)
      throw std::invalid_argument("proc::Environment: NUL byte in variable name '" +
                                  detail::printable(name) + "'");
  }

 private:
  map_type vars_;
};

}  // namespace proc
