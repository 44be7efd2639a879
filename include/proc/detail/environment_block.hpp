#pragma once
// The child's environment as the back ends need it: "NAME=value" entries sorted by name, built
// from `Options::env` (or this process's environment) with `Options::env_update` applied, plus
// the PATH the program lookup must follow. A plain function of its inputs, so it is fuzzed
// (tests/fuzz/environment_fuzzer.cpp).

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "proc/environment.hpp"

namespace proc::detail {

struct EnvironmentBlock {
  std::vector<std::string> entries;  // "NAME=value", sorted by name, names unique
  std::optional<std::string> path;   // the value of PATH in `entries`, if any
};

using EnvironmentUpdates = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// The child's environment; `std::nullopt` when it simply inherits this process's (no `env`,
/// no updates). Updates apply in order: a value sets, `std::nullopt` removes. Throws
/// `std::invalid_argument` for a bad name or a NUL byte in a value.
inline std::optional<EnvironmentBlock> build_environment_block(
    const std::optional<Environment>& env, const EnvironmentUpdates& updates) {
  if (!env && updates.empty()) return std::nullopt;
  Environment merged = env ? *env : Environment::current();
  for (const auto& [name, value] : updates) {
    if (value) {
      merged.set(name, *value);
    } else {
      Environment::check_name(name);
      merged.erase(name);
    }
  }
  EnvironmentBlock block;
  block.entries.reserve(merged.size());
  for (const auto& [name, value] : merged) block.entries.push_back(name + "=" + value);
  block.path = merged.get("PATH");
  return block;
}

}  // namespace proc::detail
