// Fault injection through the system-call seam (detail/posix/syscall.hpp): EINTR is retried,
// spawn/fork/clone failures are clean SpawnErrors, EMFILE from pipe2/open/dup is a clean
// std::system_error, pidfd_open failure falls back to waitid, short reads and writes lose
// nothing, and no failure leaks a descriptor or leaves a child behind.
//
// This file is its own executable, so defining PROC_FAULT_INJECTION here keeps the One
// Definition Rule: no other translation unit of this program includes proc.
#define PROC_FAULT_INJECTION 1

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include "test_support.hpp"

#if !defined(_WIN32)
#  include <fcntl.h>
#  include <poll.h>
#  include <signal.h>
#  include <unistd.h>

using namespace std::chrono_literals;
using proc::detail::Sys;
using test::cmd;
using Clock = std::chrono::steady_clock;

namespace {

// One rule per seam name: after letting `skip` calls through, fail with `err` (`times` times, or
// forever when negative); with `every_other`, only every second call fails.
struct Rule {
  std::atomic<int> err{0};
  std::atomic<int> skip{0};
  std::atomic<int> times{-1};
  std::atomic<bool> every_other{false};
  std::atomic<unsigned> toggle{0};
  std::atomic<int> calls{0};     // how often the seam asked about this call
  std::atomic<int> injected{0};  // how often it was made to fail
};

constexpr int sys_count = static_cast<int>(Sys::close) + 1;
std::array<Rule, sys_count> rules;

Rule& rule(Sys s) { return rules[static_cast<std::size_t>(s)]; }

int hook(Sys which) {
  Rule& r = rule(which);
  r.calls.fetch_add(1);
  int e = r.err.load();
  if (e == 0) return 0;
  if (r.skip.load() > 0 && r.skip.fetch_sub(1) > 0) return 0;
  if (r.every_other.load() && (r.toggle.fetch_add(1) % 2 == 1)) return 0;
  int left = r.times.load();
  if (left == 0) return 0;
  if (left > 0) r.times.fetch_sub(1);
  r.injected.fetch_add(1);
  return e;
}

// Installs the hook for one test; on destruction removes it and clears every rule.
struct Faults {
  Faults() {
    clear();
    proc::detail::fault_hook.store(&hook);
  }
  Faults(const Faults&) = delete;
  Faults& operator=(const Faults&) = delete;
  ~Faults() {
    proc::detail::fault_hook.store(nullptr);
    proc::detail::fault_short_io.store(0);
    clear();
  }
  static void clear() {
    for (auto& r : rules) {
      r.err = 0;
      r.skip = 0;
      r.times = -1;
      r.every_other = false;
      r.toggle = 0;
      r.calls = 0;
      r.injected = 0;
    }
  }
  Faults& fail(Sys s, int err, int skip = 0, int times = -1) {
    Rule& r = rule(s);
    r.skip = skip;
    r.times = times;
    r.every_other = false;
    r.err = err;
    return *this;
  }
  Faults& fail_every_other(Sys s, int err) {
    Rule& r = rule(s);
    r.every_other = true;
    r.err = err;
    return *this;
  }
  void off(Sys s) { rule(s).err = 0; }
};

// Runs `f`, which must throw E; returns the exception (or nullopt, failing the test).
template <class E, class F>
std::optional<E> thrown(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL_CHECK("unexpected exception: " << e.what());
    return std::nullopt;
  }
  FAIL_CHECK("no exception");
  return std::nullopt;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("proc-fault-" + std::to_string(::getpid()) + "-" + name);
}

// The descriptor and child counts before and after a block must match.
struct NoLeak {
  int fds = test::open_fd_count();
  ~NoLeak() {
    CHECK(test::open_fd_count() == fds);
    CHECK_FALSE(test::has_children());
  }
};

}  // namespace

TEST_CASE("fault: EINTR from every call through the seam is retried and the result is exact") {
  NoLeak guard;
  Faults f;
  for (Sys s : {Sys::pipe, Sys::open, Sys::read, Sys::write, Sys::poll, Sys::dup, Sys::waitid})
    f.fail_every_other(s, EINTR);

  const std::string big = pattern(300000);
  auto r = proc::run(cmd({"cat", "err", "E"}), {.input = big, .capture_output = true});
  CHECK(r.returncode == 0);
  CHECK(r.out == big);
  CHECK(r.err == "E");

  auto path = temp_file("eintr");
  CHECK(proc::run(cmd({"outln", "to-file"}), {.in = proc::devnull, .out = proc::file(path)})
            .returncode == 0);
  {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    CHECK(line == "to-file");
  }
  std::filesystem::remove(path);

  proc::Popen p(cmd({"lines", "500"}), {.out = proc::pipe});
  int n = 0;
  for (std::string_view line : p.out().lines()) CHECK(line == std::to_string(++n));
  CHECK(n == 500);
  CHECK(p.wait() == 0);

  // A source on a low descriptor other than its target is moved up with F_DUPFD_CLOEXEC.
  CHECK(proc::run(cmd({"exit", "4"}), {.err = proc::fd(1)}).returncode == 4);

  for (Sys s : {Sys::pipe, Sys::open, Sys::read, Sys::write, Sys::poll, Sys::dup, Sys::waitid}) {
    INFO("seam call " << static_cast<int>(s));
    CHECK(rule(s).injected.load() > 0);
  }
}

TEST_CASE("fault: EAGAIN and ENOMEM from posix_spawn are SpawnErrors, nothing leaked") {
  test::PreferPosixSpawn posix_spawn;
  auto path = temp_file("spawn");
  for (int err : {EAGAIN, ENOMEM}) {
    INFO("errno " << err);
    NoLeak guard;
    {
      Faults f;
      f.fail(Sys::spawn, err);
      auto e = thrown<proc::SpawnError>([&] {
        proc::Popen p(cmd({"exit", "0"}),
                      {.in = proc::pipe, .out = proc::pipe, .err = proc::file(path)});
      });
      REQUIRE(e);
      CHECK(e->code().value() == err);
      CHECK(e->program == test::child);
      CHECK(std::string(e->what()).find(test::child) != std::string::npos);
      auto e2 = thrown<proc::SpawnError>([&] {
        proc::run(cmd({"exit", "0"}), {.input = "x", .capture_output = true});
      });
      REQUIRE(e2);
      CHECK(e2->code().value() == err);
      CHECK(rule(Sys::spawn).injected.load() == 2);
    }
    // Recovery: the same call works once the fault is gone.
    CHECK(proc::run(cmd({"cat"}), {.input = "ok", .capture_output = true}).out == "ok");
  }
  std::filesystem::remove(path);
}

TEST_CASE("fault: EAGAIN and ENOMEM from clone and fork are SpawnErrors, nothing leaked") {
  const proc::Options via_clone{.in = proc::pipe, .out = proc::pipe, .umask = 077u};
  const proc::Options via_fork{.in = proc::pipe, .out = proc::pipe, .pre_exec = [] {}};
  for (const proc::Options* o : {&via_clone, &via_fork}) {
    for (int err : {EAGAIN, ENOMEM}) {
      INFO((o == &via_clone ? "clone" : "fork") << " path, errno " << err);
      NoLeak guard;
      {
        Faults f;
        f.fail(Sys::fork, err);
        auto e = thrown<proc::SpawnError>([&] { proc::Popen p(cmd({"exit", "0"}), *o); });
        REQUIRE(e);
        CHECK(e->code().value() == err);
        CHECK(e->program == test::child);
        CHECK(rule(Sys::fork).injected.load() == 1);
      }
      proc::Popen ok(cmd({"cat"}), *o);
      CHECK(ok.communicate("back").out == "back");
      CHECK(ok.wait() == 0);
    }
  }
}

TEST_CASE("fault: EMFILE from pipe2 at each pipe a spawn needs is a clean SpawnError") {
  // in, out, err pipes, then (fork path, pre_exec) the exec-report pipe: fail each in turn. The
  // clone paths report through shared memory: three pipes.
  const proc::Options via_clone{
      .in = proc::pipe, .out = proc::pipe, .err = proc::pipe, .umask = 022u};
  const proc::Options via_fork{
      .in = proc::pipe, .out = proc::pipe, .err = proc::pipe, .pre_exec = [] {}};
  for (int k = 0; k < 7; ++k) {
    const proc::Options& o = k < 3 ? via_clone : via_fork;
    INFO("pipe number " << (k < 3 ? k : k - 3) << (k < 3 ? " (clone)" : " (fork)"));
    NoLeak guard;
    {
      Faults f;
      f.fail(Sys::pipe, EMFILE, k < 3 ? k : k - 3);
      auto e = thrown<proc::SpawnError>([&] { proc::Popen p(cmd({"exit", "0"}), o); });
      REQUIRE(e);
      CHECK(e->code().value() == EMFILE);
      CHECK(e->program == test::child);
      CHECK_THAT(e->what(), Catch::Contains("pipe") && Catch::Contains(test::child));
      CHECK(rule(Sys::pipe).injected.load() == 1);
    }
  }
}

TEST_CASE("fault: EMFILE and ENFILE from open (files, /dev/null) are SpawnErrors naming the file") {
  auto path = temp_file("open");
  for (int err : {EMFILE, ENFILE}) {
    INFO("errno " << err);
    NoLeak guard;
    Faults f;
    f.fail(Sys::open, err);
    auto e = thrown<proc::SpawnError>([&] {
      proc::run(cmd({"exit", "0"}), {.in = proc::pipe, .out = proc::file(path)});
    });
    REQUIRE(e);
    CHECK(e->code().value() == err);
    CHECK(e->program == test::child);
    CHECK(std::string(e->what()).find(path.string()) != std::string::npos);
    // The second open fails: the first (devnull for in) must be closed again.
    f.fail(Sys::open, err, 1);
    auto e2 = thrown<proc::SpawnError>([&] {
      proc::run(cmd({"exit", "0"}), {.in = proc::devnull, .out = proc::append(path)});
    });
    REQUIRE(e2);
    CHECK(e2->code().value() == err);
  }
  std::filesystem::remove(path);
}

TEST_CASE("fault: EMFILE from the dup that moves a low descriptor is a clean SpawnError") {
  for (int skip = 0; skip < 2; ++skip) {
    INFO("dup number " << skip);
    NoLeak guard;
    Faults f;
    f.fail(Sys::dup, EMFILE, skip);
    // in = our 1 and out = our 2: both sit on a low number that is not their target.
    auto e = thrown<proc::SpawnError>([&] {
      proc::run(cmd({"exit", "0"}), {.in = proc::fd(1), .out = proc::fd(2)});
    });
    REQUIRE(e);
    CHECK(e->code().value() == EMFILE);
  }
}

TEST_CASE("fault: without pidfd_open (ENOSYS) waits fall back to waitid and still work") {
  proc::detail::Reaper::instance();  // started once per process, with its wake-up pipe
  NoLeak guard;
  Faults f;
  f.fail(Sys::pidfd_open, ENOSYS);

  proc::Popen a(cmd({"sleep", "50", "exit", "3"}));
  CHECK(a.wait() == 3);
  CHECK(a.poll() == 3);

  proc::Popen b(cmd({"sleep", "30000"}), {.on_destroy = proc::OnDestroy::kill});
  auto start = Clock::now();
  CHECK_FALSE(b.wait_for(60ms).has_value());
  auto took = Clock::now() - start;
  CHECK(took >= 60ms);
  CHECK(took < 3s);
  CHECK_THROWS_AS(b.wait(20ms), proc::TimeoutExpired);

  // kill() from another thread while this one blocks in an untimed wait.
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    b.kill();
  });
  CHECK(b.wait() == -SIGKILL);
  killer.join();

  // wait_for that ends because the child exits, well before the limit.
  proc::Popen c(cmd({"sleep", "30", "exit", "5"}));
  start = Clock::now();
  CHECK(c.wait_for(20s) == 5);
  CHECK(Clock::now() - start < 5s);

  // communicate and run with a timeout.
  proc::Popen d(cmd({"cat"}), {.in = proc::pipe, .out = proc::pipe});
  CHECK(d.communicate("through cat", 10s).out == "through cat");
  CHECK(d.returncode() == 0);
  start = Clock::now();
  CHECK_THROWS_AS(proc::run(cmd({"sleep", "30000"}), {.timeout = 100ms}), proc::TimeoutExpired);
  CHECK(Clock::now() - start < 5s);

  proc::Popen e(cmd({"trap-term", "sleep", "30000"}), {.out = proc::pipe});
  CHECK(e.out().readline() == "trapped\n");
  CHECK(e.stop(50ms) == -SIGKILL);

  // A detached child is still reaped (the reaper looks every 100 ms without a pidfd).
  { proc::Popen g(cmd({"sleep", "20"}), {.on_destroy = proc::OnDestroy::detach}); }
  auto until = Clock::now() + 5s;
  while (test::has_children() && Clock::now() < until) std::this_thread::sleep_for(10ms);
  CHECK(rule(Sys::pidfd_open).injected.load() >= 6);
}

TEST_CASE("fault: short reads and writes lose nothing") {
  NoLeak guard;
  Faults f;
  SECTION("one byte at a time: readline, lines, read, read_all, write") {
    proc::detail::fault_short_io = 1;
    proc::Popen p(cmd({"echo-lines"}), {.in = proc::pipe, .out = proc::pipe});
    p.in().write("first\n");
    CHECK(p.out().readline() == "reply:first\n");
    p.in().write(pattern(3000) + "\nlast\n");
    p.in().close();
    std::vector<std::string> got;
    for (std::string_view line : p.out().lines()) got.emplace_back(line);
    REQUIRE(got.size() == 2);
    CHECK(got[0] == "reply:" + pattern(3000));
    CHECK(got[1] == "reply:last");
    CHECK(p.wait() == 0);

    proc::Popen q(cmd({"spew", "5000"}), {.out = proc::pipe});
    char buf[16];
    CHECK(q.out().read(buf) == 1);
    CHECK(buf[0] == 'a');
    CHECK(q.out().read_all() == pattern(5000).substr(1));
    CHECK(q.wait() == 0);
  }
  SECTION("three bytes at a time: stream_lines") {
    proc::detail::fault_short_io = 3;
    proc::Popen p(cmd({"lines-both", "300"}), {.out = proc::pipe, .err = proc::pipe});
    int outs = 0, errs = 0;
    bool in_order = true;
    p.stream_lines([&](std::string_view l) { in_order &= l == "o" + std::to_string(++outs); },
                   [&](std::string_view l) { in_order &= l == "e" + std::to_string(++errs); });
    CHECK(outs == 300);
    CHECK(errs == 300);
    CHECK(in_order);
  }
  SECTION("seven bytes at a time: communicate in both directions") {
    proc::detail::fault_short_io = 7;
    const std::string big = pattern(200003);
    auto r = proc::run(cmd({"cat", "spew-err", "1000"}), {.input = big, .capture_output = true});
    CHECK(r.returncode == 0);
    CHECK(r.out == big);
    CHECK(r.err == pattern(1000));
  }
  CHECK(rule(Sys::read).calls.load() > 500);  // the reads really were cut short
}

TEST_CASE("fault: EAGAIN from the non-blocking stdin write in communicate is waited out") {
  NoLeak guard;
  Faults f;
  f.fail_every_other(Sys::write, EAGAIN);
  const std::string big = pattern(1 << 20);
  auto r = proc::run(cmd({"cat"}), {.out = proc::pipe, .input = big});
  CHECK(r.out == big);
  CHECK(rule(Sys::write).injected.load() > 0);
}

TEST_CASE("fault: read, write and poll errors in communicate are reported, nothing leaked") {
  for (Sys s : {Sys::read, Sys::write, Sys::poll}) {
    INFO("seam call " << static_cast<int>(s));
    NoLeak guard;
    {
      proc::Popen p(cmd({"cat"}), {.in = proc::pipe, .out = proc::pipe, .err = proc::pipe});
      Faults f;
      f.fail(s, EIO);
      auto e = thrown<std::system_error>([&] { p.communicate("input", 10s); });
      REQUIRE(e);
      CHECK(e->code().value() == EIO);
    }  // ~Popen: closes what the pump left open, then waits (cat sees EOF)
  }
}

TEST_CASE("fault: a failing waitid surfaces as std::system_error, then the child is reaped") {
  NoLeak guard;
  proc::Popen p(cmd({"sleep", "20", "exit", "6"}));
  {
    Faults f;
    f.fail(Sys::waitid, EINVAL, 0, 1);
    auto e = thrown<std::system_error>([&] { p.poll(); });
    REQUIRE(e);
    CHECK(e->code().value() == EINVAL);
  }
  CHECK(p.wait() == 6);
}

TEST_CASE("fault: EINTR-only hooks never fail posix_spawn, clone or fork") {
  NoLeak guard;
  Faults f;
  f.fail(Sys::spawn, EINTR).fail(Sys::fork, EINTR).fail(Sys::pidfd_open, EINTR);
  CHECK(proc::run(cmd({"exit", "1"})).returncode == 1);
  CHECK(proc::run(cmd({"exit", "2"}), {.umask = 022u}).returncode == 2);
  CHECK(proc::run(cmd({"exit", "3"}), {.pre_exec = [] {}}).returncode == 3);
}

// Issue 10: what Python's own test scenarios and an attack suite found.

TEST_CASE("fault: a timed-out run returns even when the child cannot be signalled (EPERM)") {
  proc::detail::Reaper::instance();  // started once per process, with its wake-up pipe
  NoLeak guard;                      // the children are reaped later, by the reaper
  {
    Faults f;
    f.fail(Sys::kill, EPERM);
    auto start = Clock::now();
    CHECK_THROWS_AS(proc::run(cmd({"sleep", "400"}), {.timeout = 100ms}), proc::TimeoutExpired);
    CHECK(Clock::now() - start < 3s);
    // ~Popen's kill and terminate policies hand such a child to the reaper too.
    start = Clock::now();
    { proc::Popen p(cmd({"sleep", "400"}), {.on_destroy = proc::OnDestroy::kill}); }
    { proc::Popen p(cmd({"sleep", "400"}), {.on_destroy = proc::OnDestroy::terminate}); }
    CHECK(Clock::now() - start < 3s);
  }
  CHECK(test::no_children_within(5s));
}

TEST_CASE("fault: a read error in run() kills the child instead of waiting for it") {
  NoLeak guard;
  Faults f;
  f.fail(Sys::read, EIO);
  auto start = Clock::now();
  auto e = thrown<std::system_error>([&] {
    proc::run(cmd({"outln", "x", "sleep", "30000"}), {.out = proc::pipe});
  });
  REQUIRE(e);
  CHECK(e->code().value() == EIO);
  CHECK(Clock::now() - start < 5s);
  start = Clock::now();
  CHECK_THROWS_AS(proc::run_pipeline({cmd({"outln", "x", "sleep", "30000"}), cmd({"cat"})},
                                     {.out = proc::pipe, .timeout = 60s}),
                  std::system_error);
  CHECK(Clock::now() - start < 5s);
}

TEST_CASE("fault: a read error in run() kills the child's whole group when it leads one") {
  NoLeak guard;
  int p[2];
  REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
  Faults f;
  f.fail(Sys::read, EIO, 0, 1);  // the first read of the child's stdout: after it forked
  auto start = Clock::now();
  auto e = thrown<std::system_error>([&] {
    proc::run(cmd({"grandchild", "30000", "outln", "x", "sleep", "30000"}),
              {.out = proc::pipe, .err = proc::fd(p[1]), .process_group = 0});
  });
  ::close(p[1]);
  REQUIRE(e);
  CHECK(e->code().value() == EIO);
  // The child and its grandchild (same group) held the write end: EOF says both are gone.
  pollfd pfd{p[0], POLLIN, 0};
  CHECK(::poll(&pfd, 1, 10000) == 1);
  char c = 0;
  CHECK(::read(p[0], &c, 1) == 0);
  ::close(p[0]);
  CHECK(Clock::now() - start < 10s);
}

TEST_CASE("fault: a program that vanishes during the PATH search is ENOENT, not EACCES") {
  NoLeak guard;
  Faults f;
  f.fail(Sys::access, ENOENT);  // stat saw the file; it is gone by the time access looks
  auto dir = temp_file("path-dir");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(test::child, dir / "proc-vanishing");
  auto e = thrown<proc::SpawnError>([&] {
    proc::run({"proc-vanishing", "exit", "0"}, {.env_update = {{"PATH", dir.string()}}});
  });
  std::filesystem::remove_all(dir);
  REQUIRE(e);
  CHECK(e->code().value() == ENOENT);
}

TEST_CASE("fault: without a pidfd, a child reaped behind proc's back is never signalled") {
  NoLeak guard;
  Faults f;
  f.fail(Sys::pidfd_open, EMFILE);
  struct sigaction ign {
  }, old{};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGCHLD, &ign, &old);  // the kernel reaps our children itself
  proc::Popen a(cmd({"exit", "0"}), {.process_group = 0});
  for (int i = 0; i < 500 && ::kill(a.pid(), 0) == 0; ++i) std::this_thread::sleep_for(1ms);
  CHECK(::kill(a.pid(), 0) != 0);  // gone
  CHECK_NOTHROW(a.send_signal(SIGTERM));
  CHECK_NOTHROW(a.signal_group(SIGKILL));
  CHECK(rule(Sys::kill).calls.load() == 0);  // it was polled first, and found reaped
  CHECK(a.poll() == 0);
  CHECK(a.wait() == 0);
  ::sigaction(SIGCHLD, &old, nullptr);
}

#endif  // !_WIN32
