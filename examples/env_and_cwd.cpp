// The child's environment and working directory: add or remove variables on top of ours,
// give a whole environment of its own, and run it in another directory.
#include <fmt/core.h>

#include <filesystem>
#include <proc/proc.hpp>
#include <string>

int main() {
  namespace fs = std::filesystem;

  // [env_update]
  // env_update changes a copy of this process's environment: a value sets, nullopt removes.
  std::string out =
      proc::check_output({"sh", "-c", "echo \"GREETING=$GREETING HOME=${HOME-<unset>}\""},
                         {.env_update = {{"GREETING", "hello"}, {"HOME", std::nullopt}}});
  fmt::print("{}", out);
  // [env_update]
  if (out != "GREETING=hello HOME=<unset>\n") return 1;

  // [env]
  // env is the child's *whole* environment. PATH is still looked up for the program (in the
  // child's PATH, falling back to the system default path when it has none).
  proc::Environment env{{"LANG", "C"}, {"ONLY", "this"}};
  std::string all = proc::check_output({"env"}, {.env = env});
  fmt::print("the child's whole environment:\n{}", all);
  // [env]
  if (all != "LANG=C\nONLY=this\n") return 1;

  // [environment]
  // proc::Environment is a sorted name -> value map; start from ours and edit it.
  proc::Environment mine = proc::Environment::current();
  mine.set("APP_MODE", "test");
  mine.erase("TERM");
  fmt::print("APP_MODE={}, TERM set: {}\n", mine.get("APP_MODE").value_or("?"),
             mine.contains("TERM"));
  // [environment]

  // A fresh directory from mktemp (its output, less the newline).
  std::string made = proc::check_output({"mktemp", "-d"});
  fs::path dir = made.substr(0, made.size() - 1);

  // [cwd]
  // cwd runs the child in another directory; ours does not change.
  proc::check_call({"sh", "-c", "echo data > note.txt"}, {.cwd = dir});
  std::string listing = proc::check_output({"ls"}, {.cwd = dir});
  fmt::print("files in {}: {}", dir.string(), listing);
  // [cwd]
  fs::remove_all(dir);
  if (listing != "note.txt\n") return 1;

  // [cwd_error]
  // A directory that does not exist is a SpawnError naming it, raised before anything runs.
  try {
    proc::run({"ls"}, {.cwd = dir / "missing"});
    return 1;
  } catch (const proc::SpawnError& e) {
    fmt::print("cannot start in {}: {}\n", e.cwd ? e.cwd->string() : "?", e.code().message());
  }
  // [cwd_error]
  return 0;
}
