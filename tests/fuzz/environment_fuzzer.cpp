// proc::Environment and the "NAME=value" block built for a child, against a plain std::map
// model.
//
// The input is a program of operations (set, erase, get, contains, queue an env_update) on
// names and values from a small alphabet that includes '=' and NUL, so that bad names,
// collisions and PATH come up often. Invariants after every step:
//   - the Environment equals the model (size, contains, get, iteration in sorted order);
//   - a bad name (empty, '=', NUL) or a NUL in a value is std::invalid_argument and changes
//     nothing;
// and at the end, for detail::build_environment_block(env, updates):
//   - it throws std::invalid_argument exactly when an update is bad, else
//   - its entries are sorted, unique by name, NUL-free, each "NAME=value" with the name before
//     the first '=', and equal to the model with the updates applied; `path` is PATH's value.
#include <map>
#include <optional>
#include <proc/detail/environment_block.hpp>
#include <proc/environment.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz_input.hpp"

namespace {

using Model = std::map<std::string, std::string>;

constexpr std::string_view name_chars{"AB=_P\0T\xff", 8};
constexpr std::string_view value_chars{"xy=:/\0 \n", 8};

bool good_name(const std::string& n) {
  return !n.empty() && n.find('=') == std::string::npos && n.find('\0') == std::string::npos;
}
bool good_value(const std::string& v) { return v.find('\0') == std::string::npos; }

void check_equal(const proc::Environment& env, const Model& model) {
  FUZZ_CHECK(env.size() == model.size());
  FUZZ_CHECK(env.empty() == model.empty());
  auto m = model.begin();
  for (const auto& [name, value] : env) {
    FUZZ_CHECK(m != model.end());
    FUZZ_CHECK(name == m->first);
    FUZZ_CHECK(value == m->second);
    ++m;
  }
  FUZZ_CHECK(m == model.end());
}

// A name that is sometimes PATH, so the block's `path` is exercised.
std::string pick_name(fuzz::Input& in) {
  if (in.byte() % 8 == 0) return "PATH";
  return in.from(name_chars, 4);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  proc::Environment env;
  Model model;
  proc::detail::EnvironmentUpdates updates;
  bool updates_bad = false;
  Model expected;  // the model with the updates applied, while they are good

  for (int step = 0; step < 64 && !in.empty(); ++step) {
    std::uint8_t op = in.byte() % 5;
    std::string name = pick_name(in);
    switch (op) {
      case 0: {  // set
        std::string value = in.from(value_chars, 6);
        proc::Environment before = env;
        bool ok = true;
        try {
          env.set(name, value);
        } catch (const std::invalid_argument&) {
          ok = false;
        }
        FUZZ_CHECK(ok == (good_name(name) && good_value(value)));
        if (ok)
          model[name] = value;
        else
          FUZZ_CHECK(env == before);
        break;
      }
      case 1:  // erase: any name, never throws
        env.erase(name);
        model.erase(name);
        break;
      case 2: {  // get
        auto got = env.get(name);
        auto it = model.find(name);
        FUZZ_CHECK(got.has_value() == (it != model.end()));
        if (got) FUZZ_CHECK(*got == it->second);
        break;
      }
      case 3:  // contains
        FUZZ_CHECK(env.contains(name) == (model.count(name) > 0));
        break;
      case 4: {  // queue an env_update: a value sets, nullopt removes
        std::optional<std::string> value;
        if (in.byte() % 3 != 0) value = in.from(value_chars, 6);
        updates.emplace_back(name, value);
        if (!good_name(name) || (value && !good_value(*value))) updates_bad = true;
        break;
      }
    }
    check_equal(env, model);
  }

  expected = model;
  for (const auto& [name, value] : updates) {
    if (value)
      expected[name] = *value;
    else
      expected.erase(name);
  }

  std::optional<proc::detail::EnvironmentBlock> block;
  bool threw = false;
  try {
    block = proc::detail::build_environment_block(env, updates);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  FUZZ_CHECK(threw == updates_bad);
  if (threw) return 0;
  FUZZ_CHECK(block.has_value());

  Model parsed;
  const std::string* previous = nullptr;
  for (const std::string& entry : block->entries) {
    FUZZ_CHECK(entry.find('\0') == std::string::npos);
    std::size_t eq = entry.find('=');
    FUZZ_CHECK(eq != std::string::npos && eq > 0);
    std::string name = entry.substr(0, eq);
    if (previous) FUZZ_CHECK(previous->substr(0, previous->find('=')) < name);
    previous = &entry;
    parsed[name] = entry.substr(eq + 1);
  }
  FUZZ_CHECK(parsed == expected);
  auto path = expected.find("PATH");
  FUZZ_CHECK(block->path.has_value() == (path != expected.end()));
  if (block->path) FUZZ_CHECK(*block->path == path->second);

  // No env and no updates: the child inherits, no block at all.
  FUZZ_CHECK(!proc::detail::build_environment_block(std::nullopt, {}).has_value());
  return 0;
}
