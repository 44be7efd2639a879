// The Windows back end (detail/windows/): quoting, Unicode, environment blocks, PATHEXT lookup,
// batch files, job objects, handle inheritance and the threaded pump, all through our own child
// program. Built for Windows only (mingw-w64 and Wine in CI); on other systems the file is empty.
#if defined(_WIN32)

#  include <atomic>
#  include <chrono>
#  include <filesystem>
#  include <fstream>
#  include <string>
#  include <thread>
#  include <vector>

#  include "proc/detail/mutex.hpp"
#  include "test_support.hpp"

using namespace std::chrono_literals;
using test::cmd;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

/// A path from UTF-8 (std::filesystem::path(std::string) would read the ANSI code page).
fs::path u8path(std::string_view utf8) {
  return fs::path(std::u8string(reinterpret_cast<const char8_t*>(utf8.data()), utf8.size()));
}

/// A fresh directory under the temporary directory, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(std::string_view name) {
    path = fs::temp_directory_path() / u8path(name);
    path += "_" + std::to_string(GetCurrentProcessId());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// What the child's `args` op prints for `args`.
std::string expected_args(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += std::to_string(a.size()) + ":" + a + "\n";
  return s;
}

void write_file(const fs::path& p, std::string_view text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

}  // namespace

TEST_CASE("windows: argv round-trips exactly through CommandLineToArgvW") {
  const std::vector<std::string> table = {
      "plain",
      "with space",
      "",
      "tab\there",
      "quote\"inside",
      "\"",
      "\"\"",
      "\\",
      "trailing\\",
      "trailing space\\",
      "two trailing\\\\",
      "back\\\\slashes\\in\\middle",
      "\\\"",
      "a\\\\\"b",
      "\\\\server\\share\\",
      "  leading and trailing  ",
      "new\nline",
      "%PATH% !x! ^&|<>()",
      "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82",
  };
  std::vector<std::string> argv = cmd({"args"});
  argv.insert(argv.end(), table.begin(), table.end());
  auto r = proc::run(argv, {.out = proc::pipe});
  CHECK(r.returncode == 0);
  CHECK(r.out == expected_args(table));
}

TEST_CASE("windows: each quoting case alone, and the raw command line") {
  for (std::string a : {"", "x y", "x\\", "x \\", "\"", "a\\\"b", "\\\\"}) {
    auto r = proc::run(cmd({"args", a}), {.out = proc::pipe});
    CHECK(r.out == expected_args({a}));
  }
  auto line = proc::check_output(cmd({"cmdline", "outln", "a b", "out", "c\\"}));
  CHECK(line.find(" cmdline outln \"a b\" out c\\\n") != std::string::npos);
  CHECK(line.substr(line.size() - 6) == "a b\nc\\");
}

TEST_CASE("windows: a command line over 32767 characters is a SpawnError, not cut short") {
  CHECK(proc::check_output(cmd({"out", std::string(32000, 'q')})).size() == 32000);
  try {
    proc::run(cmd({"out", std::string(40000, 'q')}));
    FAIL("no SpawnError");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code().value() == ERROR_FILENAME_EXCED_RANGE);
    CHECK(std::string(e.what()).find("32767") != std::string::npos);
  }
}

TEST_CASE("windows: argv[0] is kept, and one containing a quote is refused") {
  auto r = proc::run({"any name", "argv0"}, {.out = proc::pipe, .executable = test::child});
  CHECK(r.out == "any name\n");
  CHECK_THROWS_AS(proc::run({"bad\"name", "argv0"}, {.executable = test::child}),
                  std::invalid_argument);
}

TEST_CASE("windows: environment values are Unicode and names case-insensitive") {
  proc::Environment env = proc::Environment::current();
  env.set("PROC_UNICODE", "v\xc3\xa4lue \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82");
  env.set("MiXeD_CaSe", "yes");
  env.set("PROC_EMPTY", "");
  auto r = proc::run(cmd({"env", "PROC_UNICODE", "env", "MIXED_CASE", "env", "mixed_case", "env",
                          "PROC_EMPTY", "env", "PROC_NOT_SET"}),
                     {.out = proc::pipe, .env = env});
  CHECK(r.out == "v\xc3\xa4lue \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82\nyes\nyes\n\n<unset>\n");

  // Two spellings of one name are one variable (Environment compares names as Windows does):
  // the later value wins, under the first spelling.
  proc::Environment dup{{"PROC_DUP", "a"}, {"proc_dup", "b"}};
  CHECK(dup.size() == 1);
  CHECK(proc::check_output(cmd({"env", "PROC_DUP"}), {.env = dup}) == "b\n");
  // An update in another spelling than this process's own ("Path" vs a user's "PATH") replaces it.
  REQUIRE(SetEnvironmentVariableW(L"Proc_Spelt", L"old"));
  CHECK(proc::check_output(cmd({"env", "PROC_SPELT"}), {.env_update = {{"PROC_SPELT", "new"}}}) ==
        "new\n");
  SetEnvironmentVariableW(L"Proc_Spelt", nullptr);

  // env_update removes and adds on top of this process's environment.
  auto u = proc::check_output(
      cmd({"env", "PROC_ADDED", "env", "PROC_UNICODE"}),
      {.env = env, .env_update = {{"PROC_ADDED", "1"}, {"PROC_UNICODE", std::nullopt}}});
  CHECK(u == "1\n<unset>\n");
}

TEST_CASE("windows: Environment::current() reads UTF-16 variables as UTF-8") {
  REQUIRE(SetEnvironmentVariableW(L"PROC_TEST_WIDE", L"\u00e9\u65e5\U0001F642"));
  auto env = proc::Environment::current();
  CHECK(env.get("PROC_TEST_WIDE") == "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x99\x82");
  for (const auto& [name, value] : env) CHECK(name.find('=') == std::string::npos);
  SetEnvironmentVariableW(L"PROC_TEST_WIDE", nullptr);
}

TEST_CASE("windows: the child's PATH and PATHEXT find the program") {
  fs::path child(test::child);
  proc::Environment env = proc::Environment::current();
  for (auto name : {"PATH", "Path", "path"}) env.erase(name);
  env.set("PATH", "C:\\does-not-exist;" + child.parent_path().string());
  // No extension given: .EXE comes from PATHEXT.
  auto r = proc::run({child.stem().string(), "out", "found"}, {.out = proc::pipe, .env = env});
  CHECK(r.out == "found");

  // Not found: ERROR_FILE_NOT_FOUND, naming the program and what was searched.
  try {
    proc::run({"proc-no-such-program", "x"}, {.env = env});
    FAIL("no SpawnError");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code().value() == ERROR_FILE_NOT_FOUND);
    CHECK(e.code().category() == std::system_category());
    CHECK(e.code() == std::errc::no_such_file_or_directory);
    CHECK(e.program == "proc-no-such-program");
    CHECK(std::string(e.what()).find("proc-no-such-program") != std::string::npos);
    CHECK(std::string(e.what()).find("does-not-exist") != std::string::npos);
  }
  // A path that does not exist.
  try {
    proc::run({"C:\\proc\\missing\\tool.exe"});
    FAIL("no SpawnError");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code().value() == ERROR_FILE_NOT_FOUND);
    CHECK(e.program == "C:\\proc\\missing\\tool.exe");
  }
}

TEST_CASE("windows: cwd with a non-ASCII name, and a relative program path under it") {
  TempDir dir("proc_t\xc3\xa9st_\xe6\x97\xa5\xe6\x9c\xac");
  auto out = proc::check_output(cmd({"pwd"}), {.cwd = dir.path});
  REQUIRE(out.size() > 1);
  out.pop_back();  // "\n"
  CHECK(fs::equivalent(u8path(out), dir.path));

  fs::create_directories(dir.path / "bin");
  fs::copy_file(fs::path(test::child), dir.path / "bin" / "copy.exe");
  auto r = proc::run({"bin\\copy", "out", "rel"}, {.out = proc::pipe, .cwd = dir.path});
  CHECK(r.out == "rel");

  try {
    proc::run(cmd({"pwd"}), {.cwd = dir.path / "missing"});
    FAIL("no SpawnError");
  } catch (const proc::SpawnError& e) {
    CHECK((e.code().value() == ERROR_FILE_NOT_FOUND || e.code().value() == ERROR_PATH_NOT_FOUND));
    CHECK(e.cwd.has_value());
  }
}

TEST_CASE("windows: files with Unicode names, append and NUL") {
  TempDir dir("proc_files");
  fs::path f = dir.path / u8path("\xc3\xa9t\xc3\xa9.txt");
  proc::run(cmd({"out", "one"}), {.out = proc::file(f)});
  proc::run(cmd({"out", "two"}), {.out = proc::append(f)});
  auto back = proc::check_output(cmd({"cat"}), {.in = proc::file(f)});
  CHECK(back == "onetwo");
  auto r = proc::run(cmd({"cat", "out", "x"}),
                     {.in = proc::devnull, .out = proc::pipe, .err = proc::devnull});
  CHECK(r.out == "x");
  auto both =
      proc::check_output(cmd({"out", "a", "err", "b", "out", "c"}), {.err = proc::to_stdout});
  CHECK(both == "abc");
}

TEST_CASE("windows: communicate moves 10 MiB each way through cat") {
  const std::string input = pattern(10 << 20);
  proc::Popen p(cmd({"cat"}), {.in = proc::pipe, .out = proc::pipe});
  auto [out, err] = p.communicate(input, 120s);
  CHECK(out.size() == input.size());
  CHECK(out == input);
  CHECK(err.empty());
  CHECK(p.wait() == 0);

  auto r = proc::run(cmd({"cat"}), {.input = input, .capture_output = true});
  CHECK(r.out == input);
}

TEST_CASE("windows: stdout and stderr flooding at once do not deadlock") {
  const std::size_t n = 8 << 20;
  auto r =
      proc::run(cmd({"spew-both", std::to_string(n)}), {.capture_output = true, .timeout = 120s});
  CHECK(r.returncode == 0);
  CHECK(r.out.size() == n);
  CHECK(r.err.size() == n);
  CHECK(r.out == pattern(n));
  CHECK(r.err == pattern(n));
  // And a child that reads stdin while flooding both: cat-err echoes to stderr.
  const std::string input = pattern(4 << 20);
  auto c = proc::run(cmd({"spew", "1000000", "cat-err"}), {.input = input, .capture_output = true});
  CHECK(c.out.size() == 1000000);
  CHECK(c.err == input);
}

TEST_CASE("windows: a timed-out communicate resumes with nothing lost or repeated") {
  // The child sleeps before reading, so the pump times out with a write in flight.
  const std::string input = pattern(3 << 20);
  proc::Popen p(cmd({"sleep", "1500", "cat"}), {.in = proc::pipe, .out = proc::pipe});
  CHECK_THROWS_AS(p.communicate(input, 300ms), proc::TimeoutExpired);
  auto [out, err] = p.communicate({}, 120s);
  CHECK(out.size() == input.size());
  CHECK(out == input);
  CHECK(p.wait() == 0);

  // Many short rounds: each pump ends with a write in flight, the next takes it back.
  proc::Popen q(cmd({"sleep", "300", "cat"}), {.in = proc::pipe, .out = proc::pipe});
  int timeouts = 0;
  proc::CommunicateResult r;
  for (;;) {
    try {
      r = q.communicate(timeouts == 0 ? std::string_view(input) : std::string_view(), 20ms);
      break;
    } catch (const proc::TimeoutExpired& e) {
      CHECK(input.compare(0, e.out.size(), e.out) == 0);  // a prefix so far, never a repeat
      REQUIRE(++timeouts < 10000);
    }
  }
  CHECK(timeouts > 1);
  CHECK(r.out.size() == input.size());
  CHECK(r.out == input);
  CHECK(q.wait() == 0);
}

TEST_CASE("windows: destroying a Popen with a write in flight does not hang") {
  auto start = Clock::now();
  {
    proc::Popen p(cmd({"sleep", "30000", "cat"}),
                  {.in = proc::pipe, .out = proc::pipe, .on_destroy = proc::OnDestroy::kill});
    CHECK_THROWS_AS(p.communicate(pattern(4 << 20), 200ms), proc::TimeoutExpired);
  }
  CHECK(Clock::now() - start < 10s);
}

TEST_CASE("windows: writing to a child that closed stdin is ERROR_NO_DATA, not a crash") {
  proc::Popen p(cmd({"exit", "0"}), {.in = proc::pipe});
  CHECK(p.wait() == 0);
  try {
    p.in().write(pattern(1 << 20));
    FAIL("no system_error");
  } catch (const std::system_error& e) {
    CHECK((e.code().value() == ERROR_NO_DATA || e.code().value() == ERROR_BROKEN_PIPE));
    CHECK(e.code() == std::errc::broken_pipe);
  }
  // communicate() treats it as the end of the input, as Python does.
  proc::Popen q(cmd({"close-in", "out", "done"}), {.in = proc::pipe, .out = proc::pipe});
  CHECK(q.communicate(pattern(1 << 20)).out == "done");
}

TEST_CASE("windows: exit codes are returncodes") {
  for (int code : {0, 1, 3, 42, 255, 256, 259, 65535}) {
    CHECK(proc::call(cmd({"exit", std::to_string(code)})) == code);
  }
  CHECK(proc::call(cmd({"exit", "-1"})) == -1);  // 0xFFFFFFFF read as a signed int
  try {
    proc::check_call(cmd({"exit", "3"}));
    FAIL("no CalledProcessError");
  } catch (const proc::CalledProcessError& e) {
    CHECK(e.returncode == 3);
  }
}

TEST_CASE("windows: a child ended by an exception has a negative returncode, named in messages") {
  proc::Popen p(cmd({"sleep", "30000"}));
  HANDLE h = OpenProcess(PROCESS_TERMINATE, FALSE, static_cast<DWORD>(p.pid()));
  REQUIRE(h != nullptr);
  TerminateProcess(h, 0xC0000005u);  // as if it had crashed with an access violation
  CloseHandle(h);
  int rc = p.wait();
  CHECK(rc == static_cast<int>(0xC0000005u));
  CHECK(rc < 0);
  CHECK(proc::detail::returncode_is_signal(rc));
  CHECK_FALSE(proc::detail::returncode_is_signal(-1));  // exit(-1)
  CHECK(proc::detail::signal_name(-rc) == "STATUS_ACCESS_VIOLATION (0xC0000005)");
  CHECK(proc::detail::signal_name(1) == "exit code 0xFFFFFFFF");
  proc::CompletedProcess done{p.args(), rc, "", ""};
  try {
    done.check_returncode();
    FAIL("no CalledProcessError");
  } catch (const proc::CalledProcessError& e) {
    CHECK(std::string(e.what()).find("STATUS_ACCESS_VIOLATION (0xC0000005)") != std::string::npos);
  }
}

TEST_CASE("windows: terminate() and kill() end the child with exit code 1") {
  proc::Popen p(cmd({"sleep", "30000"}));
  CHECK_FALSE(p.poll().has_value());
  p.terminate();
  CHECK(p.wait(10s) == 1);
  proc::Popen q(cmd({"wait-signal"}));
  q.kill();
  CHECK(q.wait(10s) == 1);
  proc::Popen s(cmd({"sleep", "30000"}), {.on_destroy = proc::OnDestroy::kill});
  CHECK(s.stop(1s) == 1);
}

TEST_CASE("windows: terminate() and kill() on an exited child are harmless") {
  proc::Popen p(cmd({"exit", "5"}));
  CHECK(p.wait() == 5);
  CHECK_NOTHROW(p.terminate());
  CHECK_NOTHROW(p.kill());
  CHECK_NOTHROW(p.send_signal(0));
  CHECK_NOTHROW(p.signal_group(proc::detail::sig_kill));
  CHECK(p.wait() == 5);
  CHECK(p.returncode() == 5);
  // Exited but not yet waited for.
  proc::Popen q(cmd({"exit", "6"}));
  std::this_thread::sleep_for(300ms);
  CHECK_NOTHROW(q.kill());
  CHECK(q.wait() == 6);
  // Signals Windows cannot deliver are refused.
  proc::Popen r(cmd({"sleep", "30000"}), {.on_destroy = proc::OnDestroy::kill});
  CHECK_THROWS_AS(r.send_signal(2), std::invalid_argument);
}

TEST_CASE("windows: Win32 wait times from deadlines, the extreme ones included") {
  using proc::detail::wait_millis;
  auto now = proc::detail::Clock::now();
  CHECK(wait_millis(std::nullopt) == INFINITE);
  CHECK(wait_millis(proc::detail::Clock::time_point::min()) == 0);
  CHECK(wait_millis(now - 1s) == 0);
  CHECK(wait_millis(proc::detail::Clock::time_point::max()) == INFINITE - 1);  // not "forever"
  auto ms = wait_millis(now + 1500ms);
  CHECK(ms > 1000);
  CHECK(ms <= 1500);
  CHECK(wait_millis(now + 1ns) <= 1);  // rounded up, never a busy 0 before the deadline
}

TEST_CASE("windows: kill from another thread while one waits") {
  proc::Popen p(cmd({"sleep", "30000"}));
  std::thread killer([&] {
    std::this_thread::sleep_for(200ms);
    p.kill();
  });
  auto start = Clock::now();
  CHECK(p.wait() == 1);
  CHECK(Clock::now() - start < 10s);
  killer.join();
}

TEST_CASE("windows: a batch file gets its arguments quoted for cmd.exe") {
  TempDir dir("proc_bat");
  fs::path bat = dir.path / "show args.bat";
  write_file(bat, "@echo off\r\necho [%1] [%2] [%3]\r\n");
  auto r = proc::run({bat.string(), "plain", "two words", "a&b|c<d>e^f(g)"}, {.out = proc::pipe});
  CHECK(r.returncode == 0);
  CHECK(r.out == "[plain] [\"two words\"] [\"a&b|c<d>e^f(g)\"]\r\n");

  // Found without its extension (PATHEXT), as a .cmd too.
  fs::path script = dir.path / "script.cmd";
  write_file(script, "@echo off\r\necho cmd:%1\r\n");
  auto s = proc::run({(dir.path / "script").string(), "ok"}, {.out = proc::pipe});
  CHECK(s.out == "cmd:ok\r\n");
}

TEST_CASE("windows: batch-file arguments cmd.exe would interpret are refused (BatBadBut)") {
  TempDir dir("proc_batbad");
  fs::path bat = dir.path / "t.bat";
  fs::path marker = dir.path / "injected.txt";
  write_file(bat, "@echo off\r\necho %1\r\n");
  const std::vector<std::string> evils = {
      "\"&echo pwned>\"" + marker.string(), "%PATH%", "!x!", "a\"b", "line\nbreak", "cr\rhere"};
  for (const auto& evil : evils) {
    CAPTURE(evil);
    try {
      proc::run({bat.string(), evil}, {.out = proc::pipe});
      FAIL("not refused");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("batch file") != std::string::npos);
    }
  }
  CHECK_FALSE(fs::exists(marker));
}

TEST_CASE("windows: shell = true runs the command through cmd.exe as written") {
  auto r = proc::run("echo one& echo two", {.out = proc::pipe, .shell = true});
  CHECK(r.returncode == 0);
  CHECK(r.out == "one\r\ntwo\r\n");
  CHECK(r.args == std::vector<std::string>{"echo one& echo two"});
  // Quotes reach cmd.exe untouched (no backslash escapes, which cmd does not know).
  auto q = proc::check_output("echo \"a b\"", {.shell = true});
  CHECK(q == "\"a b\"\r\n");
  CHECK(proc::call("exit /b 7", {.shell = true}) == 7);
  auto [status, text] = proc::getstatusoutput("echo out& echo err 1>&2& exit /b 2");
  CHECK(status == 2);
  CHECK(text.find("out") != std::string::npos);
  CHECK(text.find("err") != std::string::npos);
  // cmd.exe has no $1: extra arguments are refused rather than dropped.
  CHECK_THROWS_AS(proc::run(std::vector<std::string>{"echo", "x"}, {.shell = true}),
                  std::invalid_argument);
}

TEST_CASE("windows: concurrent spawns never hold each other's pipes") {
  // Each thread starts a `cat` and, while its stdin pipe is open, a long `sleep` child. If any
  // sleeper (of any thread) had inherited a cat's stdin, that cat would not see EOF until the
  // sleeper ended, many seconds later.
  constexpr int threads = 8;
  std::atomic<int> slow{0}, bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        for (int round = 0; round < 3; ++round) {
          proc::Popen cat(cmd({"cat"}), {.in = proc::pipe, .out = proc::pipe});
          proc::Popen sleeper(
              cmd({"sleep", "20000"}),
              {.in = proc::pipe, .out = proc::pipe, .on_destroy = proc::OnDestroy::kill});
          std::string msg = "thread " + std::to_string(t) + " round " + std::to_string(round);
          auto start = Clock::now();
          auto [out, err] = cat.communicate(msg, 15s);
          if (Clock::now() - start > 8s) ++slow;
          if (out != msg || cat.wait() != 0) ++bad;
          sleeper.kill();
          sleeper.wait();
        }
      } catch (...) {
        ++bad;
      }
    });
  }
  for (auto& th : pool) th.join();
  CHECK(slow == 0);
  CHECK(bad == 0);
}

TEST_CASE("windows: run() timeout kills the tree, so a grandchild holding stdout cannot hang it") {
  auto start = Clock::now();
  try {
    proc::run(cmd({"out", "before", "grandchild", "60000", "sleep", "60000"}),
              {.capture_output = true, .timeout = 500ms});
    FAIL("no TimeoutExpired");
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out == "before");
    CHECK(e.timeout == 500ms);
  }
  CHECK(Clock::now() - start < 8s);

  // signal_group ends the grandchild even after the child itself has exited.
  proc::Popen p(cmd({"grandchild", "60000", "out", "x"}), {.out = proc::pipe});
  CHECK(p.wait(10s) == 0);
  p.signal_group(proc::detail::sig_kill);
  auto t0 = Clock::now();
  CHECK(p.out().read_all() == "x");  // EOF: the grandchild's copy of the pipe is gone
  CHECK(Clock::now() - t0 < 8s);
}

TEST_CASE("windows: every child runs in a job, and kill_on_parent_exit is accepted") {
  for (bool kill_on_exit : {false, true}) {
    proc::Popen p(cmd({"sleep", "30000"}),
                  {.kill_on_parent_exit = kill_on_exit, .on_destroy = proc::OnDestroy::kill});
    // (Wine wants PROCESS_QUERY_INFORMATION for IsProcessInJob, not the LIMITED variant.)
    HANDLE h = OpenProcess(PROCESS_QUERY_INFORMATION, FALSE, static_cast<DWORD>(p.pid()));
    REQUIRE(h != nullptr);
    BOOL in_job = FALSE;
    CHECK(IsProcessInJob(h, nullptr, &in_job));
    CHECK(in_job);
    CloseHandle(h);
    p.kill();
    CHECK(p.wait() == 1);
  }
  // Detached with kill_on_parent_exit: left running (the job stays open until we exit).
  int pid = 0;
  {
    proc::Popen d(cmd({"sleep", "30000"}),
                  {.kill_on_parent_exit = true, .on_destroy = proc::OnDestroy::detach});
    pid = d.pid();
  }
  HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE | PROCESS_TERMINATE, FALSE,
                         static_cast<DWORD>(pid));
  REQUIRE(h != nullptr);
  CHECK(WaitForSingleObject(h, 200) == WAIT_TIMEOUT);
  TerminateProcess(h, 0);
  CloseHandle(h);
}

TEST_CASE("windows: POSIX-only options are refused, naming the option") {
  auto refused = [](const proc::Options& o, const char* name) {
    try {
      proc::run(cmd({"exit", "0"}), o);
      FAIL("accepted: " << name);
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find(name) != std::string::npos);
    }
  };
  refused({.pass_fds = {3}}, "pass_fds");
  refused({.umask = 022u}, "umask");
  refused({.user = "nobody"}, "user");
  refused({.group = 0}, "group");
  refused({.extra_groups = std::vector<proc::Identity>{1}}, "extra_groups");
  refused({.pre_exec = [] {}}, "pre_exec");
  refused({.process_group = 5}, "process_group");
  // A new process group is what Windows has: accepted.
  CHECK(proc::call(cmd({"exit", "0"}), {.start_new_session = true}) == 0);
  CHECK(proc::call(cmd({"exit", "0"}), {.process_group = 0}) == 0);
}

TEST_CASE("windows: the child inherits only its three standard handles") {
  // An inheritable handle of ours must not reach a child: hold the write end of an inheritable
  // pipe while a child runs, close it, and the read end must see EOF at once.
  SECURITY_ATTRIBUTES sa{sizeof sa, nullptr, TRUE};
  HANDLE r = nullptr, w = nullptr;
  REQUIRE(CreatePipe(&r, &w, &sa, 0));
  proc::Popen p(cmd({"sleep", "20000"}), {.out = proc::pipe, .on_destroy = proc::OnDestroy::kill});
  CloseHandle(w);
  auto start = Clock::now();
  char c;
  DWORD n = 0;
  CHECK_FALSE(ReadFile(r, &c, 1, &n, nullptr));
  CHECK(GetLastError() == ERROR_BROKEN_PIPE);
  CHECK(Clock::now() - start < 5s);
  CloseHandle(r);
  // A borrowed handle (proc::fd) is passed on, and stays open in the parent.
  HANDLE r2 = nullptr, w2 = nullptr;
  REQUIRE(CreatePipe(&r2, &w2, nullptr, 0));
  proc::run(cmd({"out", "via fd"}), {.out = proc::fd(w2)});
  CloseHandle(w2);
  char buf[32];
  DWORD got = 0;
  CHECK(ReadFile(r2, buf, sizeof buf, &got, nullptr));
  CHECK(std::string(buf, got) == "via fd");
  CloseHandle(r2);
}

TEST_CASE("windows: pty children leave no handle or thread behind") {
  // Each pty child has a pseudo-console, two pipes and a thread that closes the console when
  // the child exits. 30 of them later the process has what it had before.
  auto handles = [] { return test::open_fd_count(); };
  auto threads = [] { return test::threads_now(); };
  proc::run(cmd({"console", "outln", "warm-up"}), {.out = proc::pty});  // one-time allocations
  const int h0 = handles(), t0 = threads();
  for (int i = 0; i < 30; ++i) {
    auto r = proc::run(cmd({"console", "outln", "x"}), {.in = proc::pty, .out = proc::pty});
    REQUIRE(r.returncode == 0);
  }
  auto deadline = Clock::now() + 10s;  // the closing threads end just after their child
  while ((handles() > h0 || threads() > t0) && Clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  CHECK(handles() <= h0);
  CHECK(threads() <= t0);
  // A pty child is attached to its pseudo-console: another console is refused by name.
  CHECK_THROWS_WITH(
      proc::run(cmd({"exit", "0"}), {.out = proc::pty, .creation_flags = CREATE_NEW_CONSOLE}),
      Catch::Contains("creation_flags"));
}

TEST_CASE("windows: the library's mutexes hold no handle, even when contended") {
  // MinGW's std::mutex makes an event at its first contention and keeps it while it lives: a
  // process-wide lock would gain a handle at a random moment. proc::detail::Mutex is an SRW
  // lock, which never holds one.
  std::thread([] {}).join();     // winpthreads' one-time handles for the first thread
  static proc::detail::Mutex m;  // long-lived, as the library's are
  const int before = test::open_fd_count();
  std::atomic<bool> stop{false};
  std::thread other([&] {
    while (!stop) {
      std::lock_guard lock(m);
    }
  });
  int contended = 0;  // the main thread found it held and had to wait
  for (auto end = Clock::now() + 10s; contended < 1000 && Clock::now() < end;) {
    if (!m.try_lock()) {
      ++contended;
      m.lock();
    }
    m.unlock();
  }
  stop = true;
  other.join();
  REQUIRE(contended > 0);
  CHECK(test::open_fd_count() == before);
}

#endif  // _WIN32
