// proc::ExitStatus, proc::quoted, and the fmt formatters of results.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <vector>

#include "test_support.hpp"

using test::cmd;

namespace {

// How the formatters show the test child's command line.
std::string child_line(const std::string& rest) { return proc::quote(test::child) + " " + rest; }

}  // namespace

// The value type is usable at compile time.
static_assert(proc::ExitStatus(0).success());
static_assert(proc::ExitStatus(2).code() == 2);
#if !defined(_WIN32)  // on Windows a negative returncode is a signal only for NTSTATUS codes
static_assert(!proc::ExitStatus(-9).exited());
static_assert(proc::ExitStatus(-9).signal() == 9);
#else
static_assert(proc::ExitStatus(-1).exited());
static_assert(!proc::ExitStatus(static_cast<int>(0xC0000005u)).exited());
#endif
static_assert(proc::ExitStatus(3) == proc::ExitStatus(3));
static_assert(!std::is_convertible_v<int, proc::ExitStatus>);  // explicit

TEST_CASE("format: ExitStatus accessors") {
  proc::ExitStatus ok(0);
  CHECK(ok.returncode() == 0);
  CHECK(ok.exited());
  CHECK(ok.success());
  CHECK(ok.code() == 0);
  CHECK_FALSE(ok.signaled());
  CHECK(ok.signal() == std::nullopt);

  proc::ExitStatus two(2);
  CHECK(two.exited());
  CHECK_FALSE(two.success());
  CHECK(two.code() == 2);
  CHECK(two.signal() == std::nullopt);

#if !defined(_WIN32)
  proc::ExitStatus killed(-9);
  CHECK(killed.returncode() == -9);
  CHECK_FALSE(killed.exited());
  CHECK_FALSE(killed.success());
  CHECK(killed.code() == std::nullopt);
  CHECK(killed.signaled());
  CHECK(killed.signal() == 9);
  CHECK(killed != proc::ExitStatus(9));
#else
  proc::ExitStatus crashed(static_cast<int>(0xC0000005u));  // an NTSTATUS exception code
  CHECK(crashed.signaled());
  CHECK_FALSE(crashed.exited());
  CHECK(proc::ExitStatus(-1).exited());  // exit(-1) is an exit code, not a crash
#endif
}

TEST_CASE("format: ExitStatus text") {
  CHECK(fmt::format("{}", proc::ExitStatus(0)) == "exited with 0");
  CHECK(fmt::format("{}", proc::ExitStatus(2)) == "exited with 2");
  CHECK(fmt::format("{}", proc::ExitStatus(255)) == "exited with 255");
  CHECK(proc::to_string(proc::ExitStatus(2)) == "exited with 2");
  CHECK(fmt::to_string(proc::ExitStatus(1)) == "exited with 1");
#if !defined(_WIN32)
  CHECK(fmt::format("{}", proc::ExitStatus(-9)) == "killed by SIGKILL");
  CHECK(fmt::format("{}", proc::ExitStatus(-15)) == "killed by SIGTERM");
  CHECK(fmt::format("{}", proc::ExitStatus(-13)) == "killed by SIGPIPE");
  CHECK(fmt::format("{}", proc::ExitStatus(-77)) == "killed by unknown signal 77");
  CHECK(fmt::format("[{}] [{}]", proc::ExitStatus(-6), proc::ExitStatus(1)) ==
        "[killed by SIGABRT] [exited with 1]");
#endif
}

TEST_CASE("format: ExitStatus of real children") {
  CHECK(fmt::format("{}", proc::ExitStatus(proc::run(cmd({"exit", "2"})).returncode)) ==
        "exited with 2");
  CHECK(fmt::format("{}", proc::ExitStatus(proc::call(cmd({"outln", "x"}),
                                                      {.out = proc::devnull}))) == "exited with 0");
#if !defined(_WIN32)
  proc::ExitStatus s(proc::run(cmd({"raise", "9"})).returncode);
  CHECK(s.signal() == 9);
  CHECK(fmt::format("{}", s) == "killed by SIGKILL");

  proc::Popen p(cmd({"wait-signal"}));
  p.terminate();
  CHECK(fmt::format("{}", proc::ExitStatus(p.wait())) == "killed by SIGTERM");
#endif
}

TEST_CASE("format: quoted argument lists") {
  CHECK(fmt::format("{}", proc::quoted({"ls", "-l"})) == "ls -l");
  CHECK(fmt::format("{}", proc::quoted({"grep", "a b", "it's", ""})) ==
        "grep 'a b' 'it'\"'\"'s' ''");
  CHECK(fmt::format("{}", proc::quoted({})) == "");
  std::vector<std::string> v{"echo", "$HOME", "*.txt"};
  CHECK(fmt::format("$ {}", proc::quoted(v)) == "$ echo '$HOME' '*.txt'");
  CHECK(&proc::quoted(v).args() == &v);
  // The output is what proc::join gives, so it splits back into the same list.
  CHECK(proc::split(fmt::format("{}", proc::quoted(v))) == v);
}

TEST_CASE("format: vectors of strings keep fmt's range formatting") {
  std::vector<std::string> v{"a b", "c"};
  CHECK(fmt::format("{}", v) == "[\"a b\", \"c\"]");
}

TEST_CASE("format: CompletedProcess") {
  proc::CompletedProcess made{{"ls", "-l"}, 0, "twelve bytes", ""};
  CHECK(fmt::format("{}", made) ==
        "CompletedProcess(args='ls -l', returncode=0, out=12 bytes, err=0 bytes)");
  proc::CompletedProcess one{{"sh", "-c", "exit 3"}, 3, "x", "y"};
  CHECK(fmt::format("{}", one) ==
        "CompletedProcess(args='sh -c 'exit 3'', returncode=3, out=1 byte, "
        "err=1 byte)");
#if !defined(_WIN32)
  proc::CompletedProcess killed{{"sleep", "10"}, -9, "", ""};
  CHECK(fmt::format("{}", killed) ==
        "CompletedProcess(args='sleep 10', returncode=-9 (killed by SIGKILL), out=0 bytes, "
        "err=0 bytes)");
#endif
}

TEST_CASE("format: CompletedProcess of real runs") {
  auto r = proc::run(cmd({"out", "hello", "err", "oops!", "exit", "2"}), {.capture_output = true});
  CHECK(fmt::format("{}", r) == "CompletedProcess(args='" +
                                    child_line("out hello err 'oops!' exit 2") +
                                    "', returncode=2, out=5 bytes, err=5 bytes)");

  auto inherited = proc::run(cmd({"exit", "0"}));
  CHECK(fmt::format("{}", inherited) == "CompletedProcess(args='" + child_line("exit 0") +
                                            "', returncode=0, out=0 bytes, err=0 bytes)");

#if !defined(_WIN32)
  auto killed = proc::run(cmd({"raise", "9"}));
  CHECK(fmt::format("{}", killed) == "CompletedProcess(args='" + child_line("raise 9") +
                                         "', returncode=-9 (killed by SIGKILL), out=0 bytes, "
                                         "err=0 bytes)");
#endif
}

TEST_CASE("format: PipelineResult") {
  proc::PipelineResult made{{{"seq", "100"}, {"grep", "7"}, {"wc", "-l"}}, {0, 0, 0}, "19\n", ""};
  CHECK(fmt::format("{}", made) ==
        "PipelineResult(args='seq 100 | grep 7 | wc -l', returncodes=[0, 0, 0], out=3 bytes, "
        "err=0 bytes)");

  auto r =
      proc::run_pipeline({cmd({"lines", "3"}), cmd({"cat", "exit", "4"})}, {.out = proc::pipe});
  CHECK(r.returncodes == std::vector<int>{0, 4});
  CHECK(fmt::format("{}", r) == "PipelineResult(args='" + child_line("lines 3") + " | " +
                                    child_line("cat exit 4") +
                                    "', returncodes=[0, 4], out=6 bytes, err=0 bytes)");

#if !defined(_WIN32)
  proc::PipelineResult broken{{{"yes"}, {"head", "-1"}}, {-13, 0}, "y\n", ""};
  CHECK(fmt::format("{}", broken) ==
        "PipelineResult(args='yes | head -1', returncodes=[-13 (killed by SIGPIPE), 0], "
        "out=2 bytes, err=0 bytes)");
#endif
}

TEST_CASE("format: results format inside larger strings and to fmt::memory_buffer") {
  proc::CompletedProcess r{{"true"}, 0, "", ""};
  fmt::memory_buffer buf;
  fmt::format_to(std::back_inserter(buf), "ran {} -> {}", proc::quoted(r.args),
                 proc::ExitStatus(r.returncode));
  CHECK(fmt::to_string(buf) == "ran true -> exited with 0");
}

TEST_CASE("format: a format specification is an error") {
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:>20}"), proc::ExitStatus(0)), fmt::format_error);
  CHECK_THROWS_AS(fmt::format(fmt::runtime("{:x}"), proc::CompletedProcess{}), fmt::format_error);
}
