// The exception types and their messages.
#include <type_traits>

#include "test_support.hpp"

using namespace std::chrono_literals;

static_assert(std::is_base_of_v<std::runtime_error, proc::SubprocessError>);
static_assert(std::is_base_of_v<proc::SubprocessError, proc::CalledProcessError>);
static_assert(std::is_base_of_v<proc::SubprocessError, proc::TimeoutExpired>);
static_assert(std::is_base_of_v<std::system_error, proc::SpawnError>);
static_assert(!std::is_base_of_v<proc::SubprocessError, proc::SpawnError>);

TEST_CASE("errors: CalledProcessError message like Python's") {
  proc::CalledProcessError e(3, {"make", "-j", "4"});
  CHECK(std::string(e.what()) == "Command 'make -j 4' returned non-zero exit status 3.");
  proc::CalledProcessError quoted(1, {"grep", "a b", "it's"});
  CHECK(std::string(quoted.what()) ==
        "Command 'grep 'a b' 'it'\"'\"'s'' returned non-zero exit status 1.");
#if !defined(_WIN32)
  proc::CalledProcessError killed(-9, {"sleep", "10"});
  CHECK(std::string(killed.what()) == "Command 'sleep 10' died with SIGKILL.");
#endif
  proc::CalledProcessError with_err(2, {"cc"}, "",
                                    "line1\nline2\nline3\nline4\nline5\nline6\nline7\n");
  std::string what = with_err.what();
  CHECK(what.find("line7") != std::string::npos);
  CHECK(what.find("line3") != std::string::npos);
  CHECK(what.find("line2") == std::string::npos);  // only the last five lines
}

TEST_CASE("errors: TimeoutExpired message and members") {
  proc::TimeoutExpired e({"sleep", "5"}, 200ms, "o", "e");
  CHECK(std::string(e.what()) == "Command 'sleep 5' timed out after 0.2 seconds.");
  CHECK(e.timeout == 200ms);
  CHECK(e.out == "o");
  CHECK(e.err == "e");
  proc::TimeoutExpired whole({"x"}, 3s);
  CHECK(std::string(whole.what()) == "Command 'x' timed out after 3 seconds.");
  // A one-string command (a shell command line) is shown as it is, as Python shows it.
  proc::TimeoutExpired shell({"sleep 5 && echo 'done'"}, 1500ms);
  CHECK(std::string(shell.what()) ==
        "Command 'sleep 5 && echo 'done'' timed out after 1.5 seconds.");
  proc::CalledProcessError shell_failed(2, {"ls /nope | wc"});
  CHECK(std::string(shell_failed.what()) ==
        "Command 'ls /nope | wc' returned non-zero exit status 2.");
}

TEST_CASE("errors: SpawnError carries the errno, program and cwd") {
  proc::SpawnError e(std::make_error_code(std::errc::permission_denied), "prog", std::nullopt,
                     "cannot run 'prog'");
  CHECK(e.code() == std::errc::permission_denied);
  CHECK(e.program == "prog");
  CHECK_FALSE(e.cwd.has_value());
  CHECK(std::string(e.what()).find("cannot run 'prog'") != std::string::npos);
}

TEST_CASE("errors: messages never repeat the system's text") {
  try {
    proc::run({test::child}, {.out = proc::file("/nonexistent-dir/out.txt")});
    FAIL("no exception");
  } catch (const proc::SpawnError& e) {
    std::string what = e.what();
    std::string text = e.code().message();
    INFO(what);
    CHECK(what.find(text) != std::string::npos);
    CHECK(what.find(text) == what.rfind(text));  // once
    CHECK(what.find("/nonexistent-dir/out.txt") != std::string::npos);
  }
}

#if !defined(_WIN32)
TEST_CASE("errors: a signal without a name is an unknown signal, as Python says") {
  proc::CalledProcessError e(-77, {"prog"});
  CHECK(std::string(e.what()) == "Command 'prog' died with unknown signal 77.");
  proc::CalledProcessError k(-9, {"prog"});
  CHECK(std::string(k.what()) == "Command 'prog' died with SIGKILL.");
}
#endif
