// The bad-input matrix: every kind of bad argument, option or program gives a clear exception
// that names the bad value; nothing is started (a child would create a marker file) and nothing
// leaks (descriptor count, no children left).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "test_support.hpp"

#if !defined(_WIN32)
#  include <fcntl.h>
#  include <sys/stat.h>
#  include <unistd.h>

using namespace std::chrono_literals;
using namespace std::string_literals;
using test::cmd;

namespace {

namespace fs = std::filesystem;

// A scratch directory, with a marker path that the child would create if it ever ran.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("proc-bad-input-" + std::to_string(::getpid()));
  fs::path marker = dir / "started";
  Scratch() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { fs::remove_all(dir); }

  // {child, "touch", marker, extra...}
  [[nodiscard]] std::vector<std::string> touch(std::vector<std::string> extra = {}) const {
    std::vector<std::string> v = cmd({"touch", marker.string()});
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  }
  fs::path file(const std::string& name, const std::string& text, fs::perms perms) const {
    fs::path p = dir / name;
    std::ofstream(p, std::ios::binary) << text;
    fs::permissions(p, perms);
    return p;
  }
};

// The checks every case shares: nothing started, nothing leaked.
struct Aftermath {
  const Scratch& s;
  int fds = test::open_fd_count();
  void check() const {
    CHECK_FALSE(fs::exists(s.marker));
    CHECK(test::open_fd_count() == fds);
    CHECK_FALSE(test::has_children());
  }
};

// `f` must throw std::invalid_argument whose message contains `needle`.
void invalid(const Scratch& s, const std::string& label, const std::function<void()>& f,
             const std::string& needle) {
  INFO(label);
  Aftermath after{s};
  try {
    f();
    FAIL_CHECK("no exception");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(), Catch::Contains(needle));
  } catch (const std::exception& e) {
    FAIL_CHECK("wrong exception type: " << e.what());
  }
  after.check();
}

// `f` must throw proc::SpawnError with `code`, naming `needle`, with `program` set.
void spawn_error(const Scratch& s, const std::string& label, const std::function<void()>& f,
                 int code, const std::string& needle, const std::string& program,
                 const std::optional<fs::path>& cwd = std::nullopt) {
  INFO(label);
  Aftermath after{s};
  try {
    f();
    FAIL_CHECK("no exception");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code().value() == code);
    CHECK(e.code().category() == std::generic_category());
    CHECK_THAT(e.what(), Catch::Contains(needle));
    CHECK(e.program == program);
    CHECK(e.cwd == cwd);
  } catch (const std::exception& e) {
    FAIL_CHECK("wrong exception type: " << e.what());
  }
  after.check();
}

// The three ways a child is started: each must report a failure the same way.
struct Path {
  const char* name;
  proc::Options options;
  bool posix_spawn = false;  // take posix_spawn, the plain twin of the default clone3 child
};
std::vector<Path> spawn_paths() {
  return {{"default (clone3)", {}},
          {"posix_spawn", {}, true},
          {"clone", {.umask = 022u}},
          {"fork", {.pre_exec = [] {}}}};
}

}  // namespace

// The call under test is the last argument, so that it may contain commas.
// clang-format off
#  define EXPECT_INVALID(label, needle, ...) invalid(s, label, [&] { __VA_ARGS__; }, needle)
#  define EXPECT_SPAWN_ERROR(label, expected, ...) \
    spawn_error(s, label, [&] { __VA_ARGS__; }, PROC_UNPARENTHESIZE expected)
#  define PROC_UNPARENTHESIZE(...) __VA_ARGS__
// clang-format on

TEST_CASE("bad input: empty argument lists") {
  Scratch s;
  const std::vector<std::string> none;
  EXPECT_INVALID("run", "empty", proc::run(none));
  EXPECT_INVALID("call", "empty", proc::call(none));
  EXPECT_INVALID("check_call", "empty", proc::check_call(none));
  EXPECT_INVALID("check_output", "empty", proc::check_output(none));
  EXPECT_INVALID("Popen", "empty", proc::Popen p(none));
  EXPECT_INVALID("run_pipeline without stages", "stage",
                 proc::run_pipeline(std::vector<std::vector<std::string>>{}));
  EXPECT_INVALID("pipeline stage 2", "empty", proc::run_pipeline({s.touch(), {}}));
}

TEST_CASE("bad input: a NUL byte in any string is invalid_argument naming it") {
  Scratch s;
  const std::string bad = "bad\0value"s;
  const std::string shown = "bad\\0value";  // how the messages print it
  EXPECT_INVALID("program", shown, proc::run({bad, "x"}));
  EXPECT_INVALID("argument", shown, proc::run(s.touch({"ok", bad})));
  EXPECT_INVALID("argument (Popen)", shown, proc::Popen p(s.touch({bad})));
  EXPECT_INVALID("shell command", shown, proc::run("touch x"s + bad, {.shell = true}));
  EXPECT_INVALID("shell argument", shown,
                 proc::run(std::vector<std::string>{"touch \"$1\"", "sh", bad}, {.shell = true}));
  EXPECT_INVALID("cwd", shown, proc::run(s.touch(), {.cwd = bad}));
  EXPECT_INVALID("executable", shown, proc::run(s.touch(), {.executable = bad}));
  EXPECT_INVALID("env_update name", shown, proc::run(s.touch(), {.env_update = {{bad, "v"}}}));
  EXPECT_INVALID("env_update value", "NAME", proc::run(s.touch(), {.env_update = {{"NAME", bad}}}));
  EXPECT_INVALID("Environment name", shown, proc::Environment{{bad, "v"}});
  EXPECT_INVALID("Environment value", "NAME", proc::Environment{{"NAME", bad}});
  EXPECT_INVALID("Environment::set name", shown, proc::Environment().set(bad, "v"));
  EXPECT_INVALID("in file", shown, proc::run(s.touch(), {.in = proc::file(bad)}));
  EXPECT_INVALID("out file", shown, proc::run(s.touch(), {.out = proc::file(bad)}));
  EXPECT_INVALID("err append", shown, proc::run(s.touch(), {.err = proc::append(bad)}));
  EXPECT_INVALID("user", shown, proc::run(s.touch(), {.user = bad}));
  EXPECT_INVALID("group", shown, proc::run(s.touch(), {.group = bad}));
  EXPECT_INVALID("extra_groups", shown,
                 proc::run(s.touch(), {.extra_groups = std::vector<proc::Identity>{bad}}));
  EXPECT_INVALID("pipeline stage 2", shown, proc::run_pipeline({s.touch(), {"cat", bad}}));
}

TEST_CASE("bad input: environment names that are empty or contain '='") {
  Scratch s;
  EXPECT_INVALID("env_update 'A=B'", "A=B", proc::run(s.touch(), {.env_update = {{"A=B", "x"}}}));
  EXPECT_INVALID("env_update ''", "empty", proc::run(s.touch(), {.env_update = {{"", "x"}}}));
  EXPECT_INVALID("env_update '=' removal", "=X",
                 proc::run(s.touch(), {.env_update = {{"=X", std::nullopt}}}));
  EXPECT_INVALID("Environment{'A=B'}", "A=B", proc::Environment{{"A=B", "1"}});
  EXPECT_INVALID("Environment::set('')", "empty", proc::Environment().set("", "1"));
}

TEST_CASE("bad input: unknown user and group names are named") {
  Scratch s;
  EXPECT_INVALID("user", "proc-no-such-user", proc::run(s.touch(), {.user = "proc-no-such-user"}));
  EXPECT_INVALID("group", "proc-no-such-group",
                 proc::run(s.touch(), {.group = "proc-no-such-group"}));
  EXPECT_INVALID(
      "extra_groups", "proc-no-such-group",
      proc::run(s.touch(), {.in = proc::pipe,
                            .extra_groups = std::vector<proc::Identity>{0, "proc-no-such-group"}}));
}

TEST_CASE("bad input: invalid descriptors in pass_fds and fd(...)") {
  Scratch s;
  int closed = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(closed >= 0);
  ::close(closed);
  const std::string n = std::to_string(closed);
  EXPECT_INVALID("pass_fds closed", n, proc::run(s.touch(), {.pass_fds = {closed}}));
  EXPECT_INVALID("pass_fds -1", "-1", proc::run(s.touch(), {.pass_fds = {-1}}));
  EXPECT_INVALID("in = fd(closed)", n, proc::run(s.touch(), {.in = proc::fd(closed)}));
  EXPECT_INVALID("out = fd(closed)", n,
                 proc::run(s.touch(), {.in = proc::pipe, .out = proc::fd(closed)}));
  EXPECT_INVALID("err = fd(-7)", "-7", proc::run(s.touch(), {.err = proc::fd(-7)}));
  EXPECT_INVALID("closed PipeEnd", "closed", proc::run(s.touch(), {.in = proc::PipeEnd()}));
}

TEST_CASE("bad input: conflicting options") {
  Scratch s;
  auto path = s.dir / "in.txt";
  std::ofstream(path) << "x";
  EXPECT_INVALID("input + in = pipe", "input",
                 proc::run(s.touch(), {.in = proc::pipe, .input = "x"}));
  EXPECT_INVALID("input + in = devnull", "input",
                 proc::run(s.touch(), {.in = proc::devnull, .input = "x"}));
  EXPECT_INVALID("input + in = file", "input",
                 proc::run(s.touch(), {.in = proc::file(path), .input = "x"}));
  EXPECT_INVALID("capture_output + out", "capture_output",
                 proc::run(s.touch(), {.out = proc::devnull, .capture_output = true}));
  EXPECT_INVALID("capture_output + err", "capture_output",
                 proc::run(s.touch(), {.err = proc::to_stdout, .capture_output = true}));
  EXPECT_INVALID("in = to_stdout", "to_stdout", proc::run(s.touch(), {.in = proc::to_stdout}));
  EXPECT_INVALID("out = to_stdout", "to_stdout", proc::run(s.touch(), {.out = proc::to_stdout}));
  EXPECT_INVALID("Popen + input", "communicate", proc::Popen p(s.touch(), {.input = "x"}));
  EXPECT_INVALID("Popen + check", "communicate", proc::Popen p(s.touch(), {.check = true}));
  EXPECT_INVALID("Popen + timeout", "communicate", proc::Popen p(s.touch(), {.timeout = 1s}));
  EXPECT_INVALID("check_output + out", "out", proc::check_output(s.touch(), {.out = proc::pipe}));
  EXPECT_INVALID("check_output + capture_output", "out",
                 proc::check_output(s.touch(), {.capture_output = true}));
  EXPECT_INVALID("run_pipeline input + in", "input",
                 proc::run_pipeline({s.touch(), {"cat"}}, {.in = proc::devnull, .input = "x"}));
  EXPECT_INVALID("start_pipeline + timeout", "timeout",
                 proc::start_pipeline({s.touch(), {"cat"}}, {.timeout = 1s}));
}

TEST_CASE("bad input: missing, non-executable and directory programs on every spawn path") {
  Scratch s;
  auto text = s.file("not-executable", "#!/bin/sh\necho hi\n",
                     fs::perms::owner_read | fs::perms::owner_write);
  auto junk = s.file("junk",
                     "\x7f"
                     "ELF this is not a program",
                     fs::perms::owner_all);
  auto bindir = s.dir / "bin";
  fs::create_directories(bindir);
  fs::copy_file(text, bindir / "proc-text-only");
  fs::create_directories(s.dir / "bin2" / "proc-dir-only");
  const std::string missing = (s.dir / "no-such-program").string();
  for (const auto& path : spawn_paths()) {
    std::optional<test::PreferPosixSpawn> twin;
    if (path.posix_spawn) twin.emplace();
    proc::Options o = path.options;
    std::string p = path.name;
    auto with = [&](proc::Options extra) {
      extra.umask = o.umask;
      extra.pre_exec = o.pre_exec;
      return extra;
    };
    EXPECT_SPAWN_ERROR(p + ": missing, by PATH",
                       (ENOENT, "proc-no-such-program", "proc-no-such-program"),
                       proc::run({"proc-no-such-program", s.marker.string()},
                                 with({.env_update = {{"PATH", bindir.string()}}})));
    EXPECT_SPAWN_ERROR(p + ": missing, by path", (ENOENT, missing, missing),
                       proc::run({missing}, o));
    EXPECT_SPAWN_ERROR(p + ": missing executable", (ENOENT, missing, missing),
                       proc::run(s.touch(), with({.executable = missing})));
    EXPECT_SPAWN_ERROR(p + ": not executable", (EACCES, text.string(), text.string()),
                       proc::run({text.string()}, o));
    EXPECT_SPAWN_ERROR(
        p + ": only non-executable candidates in PATH",
        (EACCES, "proc-text-only", "proc-text-only"),
        proc::run({"proc-text-only"}, with({.env_update = {{"PATH", bindir.string()}}})));
    EXPECT_SPAWN_ERROR(p + ": a directory", (EACCES, s.dir.string(), s.dir.string()),
                       proc::run({s.dir.string()}, o));
    EXPECT_SPAWN_ERROR(
        p + ": a directory is skipped in PATH", (ENOENT, "proc-dir-only", "proc-dir-only"),
        proc::run({"proc-dir-only"}, with({.env_update = {{"PATH", (s.dir / "bin2").string()}}})));
    EXPECT_SPAWN_ERROR(p + ": not a program (exec format)", (ENOEXEC, junk.string(), junk.string()),
                       proc::run({junk.string()}, o));
    EXPECT_SPAWN_ERROR(p + ": missing cwd",
                       (ENOENT, (s.dir / "missing").string(), test::child, s.dir / "missing"),
                       proc::run(s.touch(), with({.cwd = s.dir / "missing"})));
    EXPECT_SPAWN_ERROR(p + ": cwd is a file", (ENOTDIR, text.string(), test::child, text),
                       proc::run(s.touch(), with({.cwd = text})));
    EXPECT_SPAWN_ERROR(
        p + ": with pipes", (ENOENT, missing, missing),
        proc::Popen x({missing}, with({.in = proc::pipe, .out = proc::pipe, .err = proc::pipe})));
  }
}

TEST_CASE("bad input: a later pipeline stage that cannot start ends the earlier ones at once") {
  Scratch s;
  auto start = std::chrono::steady_clock::now();
  EXPECT_SPAWN_ERROR("stage 2 missing", (ENOENT, "proc-no-such-program", "proc-no-such-program"),
                     proc::run_pipeline({cmd({"sleep", "20000"}), {"proc-no-such-program"}}));
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("bad input: extreme timeouts: huge means no limit, zero and negative mean now") {
  using std::chrono::hours;
  using std::chrono::nanoseconds;
  CHECK(proc::Duration(hours::max()).value == nanoseconds::max());
  CHECK(proc::Duration(-hours::max()).value == nanoseconds::min());
  CHECK(proc::Duration(std::chrono::duration<double>(1e300)).value == nanoseconds::max());
  CHECK(proc::Duration(1.5s).value == 1500ms);
  CHECK(proc::Duration(1ns).value == 1ns);

  const int fds = test::open_fd_count();
  for (proc::Duration forever : {proc::Duration(nanoseconds::max()), proc::Duration(hours::max()),
                                 proc::Duration(hours(24 * 365 * 300))}) {
    INFO("timeout " << forever.value.count() << " ns");
    proc::Popen a(cmd({"sleep", "30", "exit", "5"}));
    CHECK(a.wait_for(forever) == 5);
    proc::Popen b(cmd({"sleep", "30", "exit", "6"}));
    CHECK(b.wait(forever) == 6);
    auto r =
        proc::run(cmd({"sleep", "30", "outln", "done"}), {.out = proc::pipe, .timeout = forever});
    CHECK(r.out == "done\n");
    proc::Popen c(cmd({"cat"}), {.in = proc::pipe, .out = proc::pipe});
    CHECK(c.communicate("x", forever).out == "x");
    proc::Popen d(cmd({"lines", "3"}), {.out = proc::pipe});
    int lines = 0;
    CHECK(d.stream_lines([&](std::string_view) { ++lines; }, {}, forever) == 0);
    CHECK(lines == 3);
    auto pr = proc::run_pipeline({cmd({"lines", "3"}), cmd({"cat"})},
                                 {.out = proc::pipe, .timeout = forever});
    CHECK(pr.out == "1\n2\n3\n");
  }

  auto start = std::chrono::steady_clock::now();
  for (proc::Duration now :
       {proc::Duration(0s), proc::Duration(-1s), proc::Duration(nanoseconds::min())}) {
    INFO("timeout " << now.value.count() << " ns");
    proc::Popen e(cmd({"sleep", "30000"}), {.on_destroy = proc::OnDestroy::kill});
    CHECK_FALSE(e.wait_for(now).has_value());
    CHECK_THROWS_AS(proc::run(cmd({"sleep", "30000"}), {.timeout = now}), proc::TimeoutExpired);
  }
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

#endif  // !_WIN32
