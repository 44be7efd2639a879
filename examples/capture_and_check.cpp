// Capture a child's output and check how it ended: check_output, run with capture_output,
// CalledProcessError with the child's stderr, and SpawnError for a program that is not there.
#include <fmt/core.h>

#include <cerrno>
#include <filesystem>
#include <proc/proc.hpp>
#include <stdexcept>
#include <string>

int main() {
  // [check_output]
  // stdout as a string; a non-zero exit throws proc::CalledProcessError.
  std::string words = proc::check_output({"sh", "-c", "echo alpha; echo beta"});
  fmt::print("captured {} bytes: {}", words.size(), words);
  // [check_output]

  // [capture_output]
  // Both streams captured; the exit status is data, not an error, unless .check asks for it.
  proc::CompletedProcess r =
      proc::run({"sh", "-c", "echo to-out; echo to-err >&2; exit 3"}, {.capture_output = true});
  fmt::print("returncode={} out={:?} err={:?}\n", r.returncode, r.out, r.err);
  // [capture_output]
  if (r.returncode != 3 || r.out != "to-out\n" || r.err != "to-err\n") return 1;

  // [check]
  // .check = true turns a non-zero exit into an exception that carries the output.
  try {
    proc::run({"sh", "-c", "echo 'no such table: users' >&2; exit 2"},
              {.capture_output = true, .check = true});
    return 1;  // not reached
  } catch (const proc::CalledProcessError& e) {
    fmt::print("caught: {}\n", e.what());  // names the command and the status, then stderr
    fmt::print("returncode={} err={:?}\n", e.returncode, e.err);
  }
  // [check]

  // [merge]
  // stderr merged into stdout, in the order the child wrote them (Python's stderr=STDOUT).
  std::string both = proc::check_output({"sh", "-c", "echo one; echo two >&2; echo three"},
                                        {.err = proc::to_stdout});
  fmt::print("merged: {:?}\n", both);
  // [merge]
  if (both != "one\ntwo\nthree\n") return 1;

  std::string made = proc::check_output({"mktemp"});  // a fresh file, for the next part
  std::filesystem::path log = made.substr(0, made.size() - 1);

  // [files]
  // Files as stdin/stdout/stderr: file() creates or truncates (or reads, for in), append() adds.
  proc::run({"echo", "first run"}, {.out = proc::file(log)});
  proc::run({"echo", "second run"}, {.out = proc::append(log)});
  std::string lines = proc::check_output({"wc", "-l"}, {.in = proc::file(log)});
  fmt::print("{} has {} lines\n", log.string(), std::stoi(lines));
  // [files]
  std::filesystem::remove(log);
  if (std::stoi(lines) != 2) return 1;

  // [devnull]
  // Discard what a child writes; its returncode still tells how it went.
  int found = proc::call({"grep", "-q", "root", "/etc/passwd"},
                         {.out = proc::devnull, .err = proc::devnull});
  fmt::print("grep returned {}\n", found);
  // [devnull]

  // [spawn_error]
  // A program that cannot be started is a SpawnError (a std::system_error), not exit status 127.
  try {
    proc::run({"no-such-program-xyz"});
    return 1;  // not reached
  } catch (const proc::SpawnError& e) {
    fmt::print("cannot start {}: errno {} ({})\n", e.program, e.code().value(),
               e.code() == std::errc::no_such_file_or_directory ? "ENOENT" : "other");
  }
  // [spawn_error]

  // [invalid_argument]
  // Options that contradict each other are std::invalid_argument, before anything starts.
  try {
    proc::run({"cat"}, {.in = proc::devnull, .input = "text"});
    return 1;  // not reached
  } catch (const std::invalid_argument& e) {
    fmt::print("invalid: {}\n", e.what());
  }
  // [invalid_argument]

  // [getstatusoutput]
  // Through the shell, stderr merged, one trailing newline stripped (as Python's helpers).
  auto [status, text] = proc::getstatusoutput("ls /nonexistent-dir-xyz");
  fmt::print("status {}: {}\n", status, text);
  // [getstatusoutput]
  return status != 0 ? 0 : 1;
}
