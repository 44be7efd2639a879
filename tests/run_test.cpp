// run(), call(), check_call(), check_output(), getoutput(), getstatusoutput().
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <type_traits>

#include "test_support.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::cmd;

TEST_CASE("run: returncode, inherited stdio, captured streams") {
  CHECK(proc::run(cmd({"exit", "0"})).returncode == 0);
  CHECK(proc::run(cmd({"exit", "3"})).returncode == 3);
  auto r = proc::run(cmd({"out", "hello", "err", "oops", "exit", "4"}), {.capture_output = true});
  CHECK(r.returncode == 4);
  CHECK(r.out == "hello");
  CHECK(r.err == "oops");
  CHECK(r.args == cmd({"out", "hello", "err", "oops", "exit", "4"}));
  auto only_out =
      proc::run(cmd({"out", "a", "err", "b"}), {.out = proc::pipe, .err = proc::devnull});
  CHECK(only_out.out == "a");
  CHECK(only_out.err.empty());
}

TEST_CASE("run: braced lists, vectors and strings all select the right overload") {
  CHECK(proc::run({test::child, "exit", "5"}).returncode == 5);
  std::vector<std::string> v = cmd({"exit", "6"});
  CHECK(proc::run(v).returncode == 6);
  CHECK(proc::run(test::child).returncode == 0);  // the program alone
#if !defined(_WIN32)
  CHECK(proc::run("exit 7", {.shell = true}).returncode == 7);
#endif
}

// A braced list of two elements never reaches the one-string overload: {"sleep", 1} would be
// std::string("sleep", 1), the program "s". It must not compile; a list of strings must.
template <class T>
concept runs_braced_pair = requires(T second) {
  proc::run({"sleep", second});
};
template <class T>
concept popens_braced_pair = requires(T second) {
  proc::Popen({"sleep", second});
};
template <class T>
concept checks_output_braced_pair = requires(T second) {
  proc::check_output({"sleep", second});
};
static_assert(!runs_braced_pair<int>);
static_assert(!popens_braced_pair<int>);
static_assert(!checks_output_braced_pair<int>);
static_assert(!runs_braced_pair<std::size_t>);
static_assert(runs_braced_pair<const char*>);
static_assert(popens_braced_pair<std::string>);
static_assert(checks_output_braced_pair<const char*>);

TEST_CASE("run: input is written to stdin and then closed") {
  auto r = proc::run(cmd({"cat"}), {.out = proc::pipe, .input = "some input\nsecond line"});
  CHECK(r.out == "some input\nsecond line");
  auto counted =
      proc::run(cmd({"count-in"}), {.out = proc::pipe, .input = std::string(3 << 20, 'x')});
  CHECK(counted.out == std::to_string(3 << 20) + "\n");
  // No input: stdin is inherited (here it is whatever ctest gave us), never a hang when it's
  // /dev/null. With input = "" the child sees EOF at once.
  CHECK(proc::run(cmd({"count-in"}), {.out = proc::pipe, .input = ""}).out == "0\n");
}

TEST_CASE("run: check raises CalledProcessError with the output") {
  try {
    proc::run(cmd({"out", "partial", "errln", "first", "errln", "last words", "exit", "3"}),
              {.capture_output = true, .check = true});
    FAIL("no exception");
  } catch (const proc::CalledProcessError& e) {
    CHECK(e.returncode == 3);
    CHECK(e.cmd == cmd({"out", "partial", "errln", "first", "errln", "last words", "exit", "3"}));
    CHECK(e.out == "partial");
    CHECK(e.err == "first\nlast words\n");
    std::string what = e.what();
    CHECK(what.rfind("Command '", 0) == 0);
    CHECK(what.find("returned non-zero exit status 3.") != std::string::npos);
    CHECK(what.find("last words") != std::string::npos);  // the stderr tail follows
  }
  CHECK_NOTHROW(proc::run(cmd({"exit", "0"}), {.check = true}));
  proc::CompletedProcess ok = proc::run(cmd({"exit", "2"}));
  CHECK_THROWS_AS(ok.check_returncode(), proc::CalledProcessError);
}

#if !defined(_WIN32)
TEST_CASE("run: death by signal is returncode -N") {
  CHECK(proc::run(cmd({"raise", "9"})).returncode == -9);
  CHECK(proc::run(cmd({"raise", "15"})).returncode == -15);
  try {
    proc::run(cmd({"raise", "9"}), {.check = true});
    FAIL("no exception");
  } catch (const proc::CalledProcessError& e) {
    CHECK(e.returncode == -9);
    CHECK(std::string(e.what()).find("died with SIGKILL.") != std::string::npos);
  }
}
#endif

TEST_CASE("run: timeout kills and reaps the child and keeps the partial output") {
  auto start = std::chrono::steady_clock::now();
  try {
    proc::run(cmd({"out", "before", "err", "e-before", "sleep", "20000", "out", "after"}),
              {.capture_output = true, .timeout = 300ms});
    FAIL("no timeout");
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out == "before");
    CHECK(e.err == "e-before");
    CHECK(e.timeout == 300ms);
    CHECK(std::string(e.what()).find("timed out after 0.3 seconds.") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);
#if !defined(_WIN32)
  CHECK_FALSE(test::has_children());
#endif
}

#if !defined(_WIN32)
TEST_CASE("run: a timeout is not held up by a grandchild that keeps stdout open") {
  auto start = std::chrono::steady_clock::now();
  try {
    // stderr to devnull: the orphaned sleep must not hold ctest's output pipe open.
    proc::run("sleep 30 & echo x; wait",
              {.out = proc::pipe, .err = proc::devnull, .timeout = 300ms, .shell = true});
    FAIL("no timeout");
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out == "x\n");
  }
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("run: a timeout kills the whole group of a child that leads one") {
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(proc::run(cmd({"grandchild", "30000", "outln", "x", "sleep", "30000"}),
                            {.out = proc::pipe, .timeout = 200ms, .start_new_session = true}),
                  proc::TimeoutExpired);
  // The grandchild was in the group, so the pipe closed at once: no drain grace needed.
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}
#endif

TEST_CASE("call, check_call, check_output") {
  CHECK(proc::call(cmd({"exit", "9"})) == 9);
  CHECK_NOTHROW(proc::check_call(cmd({"exit", "0"})));
  CHECK_THROWS_AS(proc::check_call(cmd({"exit", "1"})), proc::CalledProcessError);
  CHECK(proc::check_output(cmd({"out", "value"})) == "value");
  CHECK(proc::check_output(cmd({"out", "1", "err", "2", "out", "3"}), {.err = proc::to_stdout}) ==
        "123");
  CHECK_THROWS_AS(proc::check_output(cmd({"out", "x", "exit", "2"})), proc::CalledProcessError);
  CHECK_THROWS_AS(proc::check_output(cmd({"out", "x"}), {.out = proc::devnull}),
                  std::invalid_argument);
}

#if !defined(_WIN32)
TEST_CASE("getoutput and getstatusoutput go through the shell and merge stderr") {
  CHECK(proc::getoutput("echo one; echo two >&2") == "one\ntwo");
  auto [status, text] = proc::getstatusoutput("echo problem >&2; exit 3");
  CHECK(status == 3);
  CHECK(text == "problem");
  auto [sig_status, sig_text] = proc::getstatusoutput("kill -9 $$");
  CHECK(sig_status == -9);
  CHECK(sig_text.empty());
  CHECK(proc::getoutput("printf 'a\\n\\n'") == "a\n");  // one trailing newline stripped
}

TEST_CASE("run: shell with extra arguments becomes $0 $1 ...") {
  auto r = proc::run({"echo \"$0:$1\"", "zero", "one"}, {.out = proc::pipe, .shell = true});
  CHECK(r.out == "zero:one\n");
  CHECK(r.args == std::vector<std::string>{"echo \"$0:$1\"", "zero", "one"});
}
#endif

TEST_CASE("run: bad input is std::invalid_argument before anything starts") {
  CHECK_THROWS_AS(proc::run(std::vector<std::string>{}), std::invalid_argument);
  CHECK_THROWS_WITH(proc::run({test::child, std::string("a\0b", 3)}), Catch::Contains("NUL"));
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.in = proc::devnull, .input = "x"}),
                  std::invalid_argument);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.out = proc::pipe, .capture_output = true}),
                  std::invalid_argument);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.in = proc::to_stdout}), std::invalid_argument);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.out = proc::to_stdout}), std::invalid_argument);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.env_update = {{"A=B", "x"}}}), std::invalid_argument);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.env_update = {{"", "x"}}}), std::invalid_argument);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.cwd = std::string("/tmp\0x", 6)}),
                  std::invalid_argument);
}

TEST_CASE("run: a missing program is a SpawnError naming it and the directories searched") {
  try {
    proc::run({"proc-no-such-program-xyz"},
              {.env_update = {{"PATH", "/nonexistent-a:/nonexistent-b"}}});
    FAIL("no exception");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code() == std::errc::no_such_file_or_directory);
    CHECK(e.program == "proc-no-such-program-xyz");
    std::string what = e.what();
    CHECK(what.find("proc-no-such-program-xyz") != std::string::npos);
    CHECK(what.find("/nonexistent-a:/nonexistent-b") != std::string::npos);
  }
  CHECK_THROWS_AS(proc::run({"/nonexistent/dir/prog"}), proc::SpawnError);
#if !defined(_WIN32)
  CHECK_FALSE(test::has_children());
#endif
}

#if !defined(_WIN32)
TEST_CASE("run: non-executable files and directories are EACCES, a bad cwd is reported") {
  auto dir =
      std::filesystem::temp_directory_path() / ("proc-run-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "not-executable";
  std::ofstream(file) << "#!/bin/sh\necho hi\n";
  try {
    proc::run({file.string()});
    FAIL("no exception");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code() == std::errc::permission_denied);
    CHECK(std::string(e.what()).find(file.string()) != std::string::npos);
  }
  try {
    proc::run({dir.string()});
    FAIL("no exception");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code() == std::errc::permission_denied);
  }
  try {
    proc::run(cmd({"pwd"}), {.cwd = dir / "missing"});
    FAIL("no exception");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code() == std::errc::no_such_file_or_directory);
    REQUIRE(e.cwd.has_value());
    CHECK(*e.cwd == dir / "missing");
    CHECK(std::string(e.what()).find("missing") != std::string::npos);
  }
  CHECK_FALSE(test::has_children());
  std::filesystem::remove_all(dir);
}
#endif

TEST_CASE("run: cwd, executable") {
  auto dir = std::filesystem::canonical(std::filesystem::temp_directory_path());
  auto r = proc::run(cmd({"pwd"}), {.out = proc::pipe, .cwd = dir});
  CHECK(std::filesystem::path(r.out.substr(0, r.out.find_last_not_of("\r\n") + 1)) == dir);
  // executable: the program run; args[0] stays argv[0].
  auto e = proc::run({"my-custom-argv0", "argv0"}, {.out = proc::pipe, .executable = test::child});
  CHECK(e.out == "my-custom-argv0\n");
}

TEST_CASE("run: env replaces the environment, env_update adds, overrides and removes") {
#if defined(_WIN32)
  _putenv_s("PROC_TEST_PARENT_VAR", "parent");
#else
  ::setenv("PROC_TEST_PARENT_VAR", "parent", 1);
#endif
  auto get = [](const char* name, const proc::Options& o) {
    proc::Options opts = o;
    opts.out = proc::pipe;
    return proc::run(cmd({"env", name}), opts).out;
  };
  CHECK(get("PROC_TEST_PARENT_VAR", {}) == "parent\n");
  CHECK(get("PROC_TEST_PARENT_VAR", {.env = proc::Environment{{"OTHER", "1"}}}) == "<unset>\n");
  CHECK(get("OTHER", {.env = proc::Environment{{"OTHER", "1"}}}) == "1\n");
  CHECK(get("NEWVAR", {.env_update = {{"NEWVAR", "new"}}}) == "new\n");
  CHECK(get("PROC_TEST_PARENT_VAR", {.env_update = {{"PROC_TEST_PARENT_VAR", "over"}}}) ==
        "over\n");
  CHECK(get("PROC_TEST_PARENT_VAR", {.env_update = {{"PROC_TEST_PARENT_VAR", std::nullopt}}}) ==
        "<unset>\n");
  CHECK(get("A", {.env = proc::Environment{{"A", "1"}}, .env_update = {{"A", "2"}}}) == "2\n");
  // The parent's own environment is untouched.
  CHECK(std::string(::getenv("PROC_TEST_PARENT_VAR")) == "parent");
  CHECK(::getenv("NEWVAR") == nullptr);
}

#if !defined(_WIN32)
TEST_CASE("run: PATH lookup follows the child's environment") {
  auto dir =
      std::filesystem::temp_directory_path() / ("proc-path-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(test::child, dir / "proc-test-child-copy",
                             std::filesystem::copy_options::overwrite_existing);
  // Not in our PATH:
  CHECK_THROWS_AS(proc::run({"proc-test-child-copy", "exit", "0"}), proc::SpawnError);
  // In the child's PATH (env_update and env):
  CHECK(proc::run({"proc-test-child-copy", "exit", "4"}, {.env_update = {{"PATH", dir.string()}}})
            .returncode == 4);
  CHECK(proc::run({"proc-test-child-copy", "exit", "5"},
                  {.env = proc::Environment{{"PATH", "/nowhere:" + dir.string()}}})
            .returncode == 5);
  // A child environment without PATH falls back to the system default path.
  CHECK(proc::run({"sh", "-c", "exit 6"}, {.env = proc::Environment{}}).returncode == 6);
  std::filesystem::remove_all(dir);
}

TEST_CASE("run: descriptors and children do not leak over hundreds of runs and failures") {
  proc::run(cmd({"exit", "0"}), {.capture_output = true});  // warm up lazily opened things
  int before = test::open_fd_count();
  for (int i = 0; i < 300; ++i) {
    auto r = proc::run(cmd({"out", "x", "err", "y"}), {.input = "in", .capture_output = true});
    REQUIRE(r.out == "x");
    CHECK_THROWS_AS(proc::run({"proc-no-such-program-xyz"}, {.capture_output = true}),
                    proc::SpawnError);
    CHECK_THROWS_AS(
        proc::run(cmd({"exit", "0"}), {.capture_output = true, .cwd = "/nonexistent-dir"}),
        proc::SpawnError);
    // The clone/fork paths, failing after the child exists.
    CHECK_THROWS_AS(proc::run({"/nonexistent/prog"}, {.capture_output = true, .umask = 022}),
                    proc::SpawnError);
  }
  CHECK(test::open_fd_count() == before);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("run: the PATH search goes on after an exec error other than ENOENT, as Python's") {
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / ("proc-path-" + std::to_string(::getpid()));
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  fs::create_directories(dir / "c");
  // a/prog is executable but no program (no shebang, not ELF): ENOEXEC. b/prog runs.
  std::ofstream(dir / "a" / "prog") << "\x01\x02 not a program\n";
  fs::permissions(dir / "a" / "prog", fs::perms::owner_all);
  std::ofstream(dir / "b" / "prog") << "#!/bin/sh\necho from b\n";
  fs::permissions(dir / "b" / "prog", fs::perms::owner_all);
  std::ofstream(dir / "c" / "prog") << "#!/bin/sh\necho from c\n";
  fs::permissions(dir / "c" / "prog", fs::perms::owner_read);  // not executable: EACCES
  const std::string a = (dir / "a").string(), b = (dir / "b").string(), c = (dir / "c").string();
  for (proc::Options o : {proc::Options{}, proc::Options{.umask = 022u}}) {
    o.out = proc::pipe;
    o.env_update = {{"PATH", a + ":" + b}};
    CHECK(proc::run({"prog"}, o).out == "from b\n");
    o.env_update = {{"PATH", c + ":" + b}};
    CHECK(proc::run({"prog"}, o).out == "from b\n");
    // None runs: the first error other than ENOENT is the one reported.
    o.env_update = {{"PATH", c + ":" + a}};
    try {
      proc::run({"prog"}, o);
      FAIL("no exception");
    } catch (const proc::SpawnError& e) {
      CHECK(e.code().value() == EACCES);
      CHECK(e.program == "prog");
    }
    o.env_update = {{"PATH", a + ":" + c}};
    CHECK_THROWS_WITH(proc::run({"prog"}, o), Catch::Contains("prog"));
  }
  fs::remove_all(dir);
  CHECK_FALSE(test::has_children());
}
#endif

// Issue 13: graceful timeouts and output caps.

#if !defined(_WIN32)
TEST_CASE("run: with kill_grace, a timeout sends SIGTERM first and the child can clean up") {
  auto t0 = Clock::now();
  try {
    proc::run(cmd({"term-cleanup", "cleaned up\n", "outln", "ready", "sleep", "30000"}),
              {.out = proc::pipe, .timeout = 300ms, .kill_grace = 5s});
    FAIL("no exception");
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out == "ready\ncleaned up\n");
  }
  CHECK(Clock::now() - t0 < 4s);  // it left on SIGTERM, well before the grace ran out
  // One that ignores SIGTERM gets SIGKILL after the grace.
  t0 = Clock::now();
  CHECK_THROWS_AS(proc::run(cmd({"trap-term", "sleep", "30000"}),
                            {.out = proc::pipe, .timeout = 200ms, .kill_grace = 500ms}),
                  proc::TimeoutExpired);
  auto took = Clock::now() - t0;
  CHECK(took >= 650ms);  // timeout + grace
  CHECK(took < 5s);      // + a margin
  // Without a grace: SIGKILL at once (the cleanup never runs).
  try {
    proc::run(cmd({"term-cleanup", "cleaned up\n", "outln", "ready", "sleep", "30000"}),
              {.out = proc::pipe, .timeout = 300ms});
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out == "ready\n");
  }
  // OnDestroy::terminate takes kill_grace as its grace.
  t0 = Clock::now();
  {
    proc::Popen p(
        cmd({"trap-term", "sleep", "30000"}),
        {.out = proc::pipe, .on_destroy = proc::OnDestroy::terminate, .kill_grace = 300ms});
    REQUIRE(p.out().readline() == "trapped\n");
  }
  CHECK(Clock::now() - t0 < 1900ms);  // not the 2 s default
  CHECK_FALSE(test::has_children());
}
#endif

TEST_CASE("run: max_output over and under the limit") {
  auto under = proc::run(cmd({"spew", "1000"}), {.out = proc::pipe, .max_output = 1000});
  CHECK(under.out.size() == 1000);
  auto t0 = Clock::now();
  try {
    proc::run(cmd({"spew", "100000000000"}), {.out = proc::pipe, .max_output = 100000});
    FAIL("no exception");
  } catch (const proc::OutputLimitExceeded& e) {
    CHECK(e.limit == 100000);
    CHECK(e.out.size() == 100000);
    CHECK(e.out.substr(0, 3) == "abc");
    CHECK_THAT(e.what(), Catch::Contains("100000"));
  }
  CHECK(Clock::now() - t0 < 20s);
  static_assert(std::is_base_of_v<proc::SubprocessError, proc::OutputLimitExceeded>);
  // Each stream on its own: stderr over, stdout under.
  // (On Windows the child writes its whole stderr and exits at once: the reader's error must
  // survive the pump returning for the child's exit.)
  try {
    proc::run(cmd({"out", "small", "spew-err", "50000"}),
              {.capture_output = true, .max_output = 1000});
    FAIL("no exception");
  } catch (const proc::OutputLimitExceeded& e) {
    CHECK(e.err.size() == 1000);
    CHECK(e.out == "small");
  }
  // communicate
  proc::Popen p(cmd({"spew", "100000000000"}), {.out = proc::pipe, .max_output = 5000});
  try {
    p.communicate();
    FAIL("no exception");
  } catch (const proc::OutputLimitExceeded& e) {
    CHECK(e.out.size() == 5000);
  }
  CHECK(p.returncode().has_value());  // stopped and reaped
  // run_pipeline and run_all
  CHECK_THROWS_AS(proc::run_pipeline({cmd({"spew", "100000000000"}), cmd({"cat"})},
                                     {.out = proc::pipe, .max_output = 4096}),
                  proc::OutputLimitExceeded);
  auto rs = proc::run_all(
      {proc::Command(cmd({"spew", "100000000000"}), {.out = proc::pipe, .max_output = 777}),
       proc::Command(cmd({"spew", "10"}), {.out = proc::pipe, .max_output = 777})});
  REQUIRE(rs[0].error);
  CHECK_THROWS_AS(std::rethrow_exception(rs[0].error), proc::OutputLimitExceeded);
  CHECK(rs[0].process.out.size() == 777);
  CHECK(rs[1].ok());
  CHECK(rs[1].process.out.size() == 10);
}

#if !defined(_WIN32)
TEST_CASE("run: Windows-only options are refused on POSIX") {
  CHECK_THROWS_WITH(proc::run(cmd({"exit", "0"}), {.creation_flags = 0x08000000}),
                    Catch::Contains("creation_flags"));
  CHECK_THROWS_WITH(proc::run(cmd({"exit", "0"}), {.hide_window = true}),
                    Catch::Contains("hide_window"));
}
#endif

#if defined(_WIN32)
TEST_CASE("run: Windows-only options are accepted on Windows") {
  // CREATE_NO_WINDOW and a hidden window: the child runs, its pipes work.
  auto r = proc::run(cmd({"outln", "hidden"}),
                     {.out = proc::pipe, .creation_flags = CREATE_NO_WINDOW, .hide_window = true});
  CHECK(r.returncode == 0);
  CHECK(r.out == "hidden\n");
  auto d = proc::run(cmd({"outln", "detached", "exit", "3"}),
                     {.out = proc::pipe, .creation_flags = DETACHED_PROCESS});
  CHECK(d.returncode == 3);
  CHECK(d.out == "detached\n");
  auto c = proc::run(cmd({"exit", "4"}), {.creation_flags = CREATE_NEW_CONSOLE});
  CHECK(c.returncode == 4);
}

TEST_CASE("run: kill_grace on Windows: Ctrl+Break to a child in its own group, bounded") {
  // In its own console process group the child is asked with CTRL_BREAK_EVENT first; whether
  // or not it can handle it (Wine's console may not deliver it), the call ends within
  // timeout + grace + a margin.
  auto t0 = Clock::now();
  try {
    proc::run(cmd({"term-cleanup", "cleaned up\n", "outln", "ready", "sleep", "30000"}),
              {.out = proc::pipe, .timeout = 300ms, .start_new_session = true, .kill_grace = 1s});
    FAIL("no exception");
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out.substr(0, 6) == "ready\n");
  }
  CHECK(Clock::now() - t0 < 10s);
  // A child with a console of its own cannot get the event: terminated at once, no grace.
  t0 = Clock::now();
  CHECK_THROWS_AS(proc::run(cmd({"sleep", "30000"}), {.timeout = 200ms,
                                                      .start_new_session = true,
                                                      .kill_grace = 20s,
                                                      .creation_flags = CREATE_NO_WINDOW}),
                  proc::TimeoutExpired);
  CHECK(Clock::now() - t0 < 10s);
}
#endif
