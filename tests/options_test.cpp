// The POSIX options: close_fds, pass_fds, sessions and groups, signals, umask, ids, pre_exec,
// kill_on_parent_exit, and descriptor hygiene across threads.
#include "test_support.hpp"

#if !defined(_WIN32)
#  include <fcntl.h>
#  include <signal.h>
#  include <unistd.h>

#  include <algorithm>
#  include <atomic>
#  include <sstream>
#  include <thread>

using namespace std::chrono_literals;
using test::cmd;

static std::string out_of(const std::vector<std::string>& args, proc::Options o = {}) {
  o.out = proc::pipe;
  return proc::run(args, o).out;
}

static std::vector<int> parse_fds(const std::string& line) {
  std::vector<int> fds;
  std::istringstream in(line);
  for (int fd; in >> fd;) fds.push_back(fd);
  return fds;
}

TEST_CASE("options: close_fds (default) leaves the child only 0, 1, 2") {
  int leaked = ::dup(1);  // not close-on-exec, as a careless library or user would leave it
  REQUIRE(leaked > 2);
  CHECK(out_of(cmd({"fds"})) == "\n");
  auto without = parse_fds(out_of(cmd({"fds"}), {.close_fds = false}));
  CHECK(std::find(without.begin(), without.end(), leaked) != without.end());
  ::close(leaked);
}

TEST_CASE("options: pass_fds keeps the listed descriptors, at their numbers") {
  int a = ::fcntl(1, F_DUPFD_CLOEXEC, 40);
  int b = ::fcntl(1, F_DUPFD_CLOEXEC, 50);
  CHECK(parse_fds(out_of(cmd({"fds"}), {.pass_fds = {b, a}})) == std::vector<int>{a, b});
  // Far above: takes the child-code path.
  int c = ::fcntl(1, F_DUPFD_CLOEXEC, 400);
  CHECK(parse_fds(out_of(cmd({"fds"}), {.pass_fds = {c}})) == std::vector<int>{c});
  CHECK_THROWS_WITH(proc::run(cmd({"fds"}), {.pass_fds = {987}}), Catch::Contains("987"));
  ::close(a);
  ::close(b);
  ::close(c);
}

TEST_CASE("options: no child inherits another thread's pipe ends (8 threads at once)") {
  // With close_fds off, only close-on-exec protects a child from pipes another thread is
  // creating at the same moment. Every pipe proc makes is O_CLOEXEC from birth.
  auto baseline = parse_fds(out_of(cmd({"fds"}), {.close_fds = false}));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 40; ++i) {
        proc::Popen p(cmd({"fds"}),
                      {.in = proc::pipe, .out = proc::pipe, .err = proc::pipe, .close_fds = false});
        auto [out, err] = p.communicate();
        if (parse_fds(out) != baseline) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == 0);
}

TEST_CASE("options: a sibling's EOF is never held up by another thread's spawn") {
  // Thread A streams a child's stdout to EOF while thread B spawns children continuously; if B's
  // children inherited A's pipe write end, A would never see EOF.
  std::atomic<bool> stop{false};
  std::thread spawner([&] {
    while (!stop) proc::run(cmd({"sleep", "20"}), {.close_fds = false});
  });
  for (int i = 0; i < 20; ++i) {
    proc::Popen p(cmd({"out", "x"}), {.out = proc::pipe});
    auto start = std::chrono::steady_clock::now();
    CHECK(p.out().read_all() == "x");
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    p.wait();
  }
  stop = true;
  spawner.join();
}

TEST_CASE("options: start_new_session and process_group") {
  proc::Popen s(cmd({"pgid"}), {.out = proc::pipe, .start_new_session = true});
  std::string pid = std::to_string(s.pid());
  auto line = s.communicate().out;
  CHECK(line.find("pgid=" + pid) != std::string::npos);
  CHECK(line.find("sid=" + pid) != std::string::npos);

  proc::Popen g(cmd({"pgid"}), {.out = proc::pipe, .process_group = 0});
  std::string gpid = std::to_string(g.pid());
  auto gline = g.communicate().out;
  CHECK(gline.find("pgid=" + gpid) != std::string::npos);
  CHECK(gline.find("sid=" + gpid) == std::string::npos);
}

TEST_CASE("options: restore_signals resets SIGPIPE and the signal mask, keeps other ignores") {
  struct sigaction ign {
  }, old_pipe{}, old_int{};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old_pipe);
  sigaction(SIGINT, &ign, &old_int);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);

  auto restored = out_of(cmd({"sigstate"}));
  auto kept = out_of(cmd({"sigstate"}), {.restore_signals = false});
  auto via_fork = out_of(cmd({"sigstate"}), {.umask = 022});  // the clone path does the same

  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  sigaction(SIGINT, &old_int, nullptr);

  CHECK(restored == "SIGPIPE=dfl blocked=0 SIGINT=ign SIGUSR1blocked=0\n");
  CHECK(via_fork == restored);
  CHECK(kept == "SIGPIPE=ign blocked=0 SIGINT=ign SIGUSR1blocked=1\n");
}

TEST_CASE("options: the default spawn is proc's own clone3 child where the kernel has it") {
#  if defined(PROC_HAVE_CLONE3) && !defined(PROC_ASAN)
  CHECK(proc::run(cmd({"exit", "3"})).returncode == 3);
  CHECK(proc::detail::clone3_state().load() == 1);  // it was taken, and worked
  proc::Popen p(cmd({"sleep", "10"}));
  CHECK(p.native_handle() >= 0);  // the pidfd clone3 made
  CHECK(p.wait() == 0);
  // (The restore_signals test above runs on this path too: ignored signals stay ignored.)
#  else
  WARN("no clone3 fast path in this build (sanitizer, or not x86_64 Linux)");
#  endif
}

TEST_CASE("options: umask and pre_exec take the child-code paths") {
  CHECK(out_of(cmd({"umask"}), {.umask = 027}) == "027\n");
  CHECK(out_of(cmd({"umask"}), {.umask = 0}) == "000\n");
  CHECK(out_of(cmd({"umask"}), {.pre_exec = [] { ::umask(0123); }}) == "123\n");
  try {
    proc::run(cmd({"exit", "0"}), {.pre_exec = [] { throw std::runtime_error("no"); }});
    FAIL("no exception");
  } catch (const proc::SpawnError& e) {
    CHECK(std::string(e.what()).find("pre_exec") != std::string::npos);
  }
  // Exec failures on these paths are still a SpawnError with the errno, and no copy of this
  // process is left running.
  try {
    proc::run({"/nonexistent/program"}, {.pre_exec = [] {}});
    FAIL("no exception");
  } catch (const proc::SpawnError& e) {
    CHECK(e.code() == std::errc::no_such_file_or_directory);
  }
  CHECK_FALSE(test::has_children());
}

TEST_CASE("options: user, group and extra_groups (needs root)") {
  if (::geteuid() != 0) {
    WARN("not root: skipped");
    return;
  }
  CHECK(
      out_of(cmd({"ids"}),
             {.user = 65534, .group = 65534, .extra_groups = std::vector<proc::Identity>{65534}}) ==
      "uid=65534 gid=65534 groups=65534\n");
  CHECK(out_of(cmd({"ids"}),
               {.user = "nobody", .group = 65534, .extra_groups = std::vector<proc::Identity>{}})
            .rfind("uid=65534 gid=65534 groups=", 0) == 0);
  CHECK_THROWS_WITH(proc::run(cmd({"ids"}), {.user = "no-such-user-proc"}),
                    Catch::Contains("no-such-user-proc"));
  CHECK_THROWS_AS(proc::Identity(-1), std::invalid_argument);
}

TEST_CASE("options: kill_on_parent_exit fires when the spawning thread exits") {
  // Linux's PR_SET_PDEATHSIG follows the *thread* that spawned the child (documented).
  std::optional<proc::Popen> p;
  std::thread([&] {
    p.emplace(cmd({"wait-signal"}), proc::Options{.kill_on_parent_exit = true});
  }).join();
  auto rc = p->wait_for(10s);
  REQUIRE(rc.has_value());
  CHECK(*rc == -9);
}

TEST_CASE("options: stdio redirected to descriptors that sit on 0, 1, 2 swapped") {
  // out -> our stderr, err -> our stdout: the dup2 order must not clobber one with the other.
  int saved_out = ::dup(1), saved_err = ::dup(2);
  int p_out[2], p_err[2];
  REQUIRE(::pipe(p_out) == 0);
  REQUIRE(::pipe(p_err) == 0);
  ::dup2(p_out[1], 1);
  ::dup2(p_err[1], 2);
  ::close(p_out[1]);
  ::close(p_err[1]);
  int rc =
      proc::run(cmd({"out", "to-out", "err", "to-err"}), {.out = proc::fd(2), .err = proc::fd(1)})
          .returncode;
  ::dup2(saved_out, 1);
  ::dup2(saved_err, 2);
  ::close(saved_out);
  ::close(saved_err);
  char buf[64];
  auto got_on_1 = std::string(buf, static_cast<std::size_t>(::read(p_out[0], buf, sizeof buf)));
  auto got_on_2 = std::string(buf, static_cast<std::size_t>(::read(p_err[0], buf, sizeof buf)));
  ::close(p_out[0]);
  ::close(p_err[0]);
  CHECK(rc == 0);
  CHECK(got_on_1 == "to-err");
  CHECK(got_on_2 == "to-out");
}

TEST_CASE("options: stdio works when the parent's own 0, 1, 2 are closed") {
  for (int closed = 0; closed < 3; ++closed) {
    int saved = ::dup(closed);
    ::close(closed);
    std::string out, err;
    int rc = -1;
    try {
      auto r = proc::run(cmd({"cat", "err", "E"}), {.input = "I", .capture_output = true});
      out = r.out;
      err = r.err;
      rc = r.returncode;
    } catch (...) {
    }
    ::dup2(saved, closed);
    ::close(saved);
    INFO("closed fd " << closed);
    CHECK(rc == 0);
    CHECK(out == "I");
    CHECK(err == "E");
  }
}

// Issue 10: what Python's own test scenarios and an attack suite found.

TEST_CASE("options: user and group never deadlock while another thread changes its ids") {
  if (::geteuid() != 0) {
    WARN("not root: skipped");
    return;
  }
  // glibc's setgid() signals every thread of the calling process and takes its locks; in the
  // CLONE_VM child those would be the parent's. The child must use the raw system calls.
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop) {
      if (::setgid(::getgid()) != 0) break;
    }
  });
  int ok = 0;
  for (int i = 0; i < 50; ++i)
    ok += proc::run(cmd({"exit", "0"}), {.user = ::getuid(),
                                         .group = ::getgid(),
                                         .extra_groups = std::vector<proc::Identity>{}})
              .returncode == 0;
  stop = true;
  churn.join();
  CHECK(ok == 50);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("options: ids that do not fit uid_t and gid_t are invalid_argument") {
  CHECK_THROWS_AS(proc::Identity(std::uint64_t{1} << 32), std::invalid_argument);
  CHECK_THROWS_AS(proc::Identity((std::uint64_t{1} << 32) + 65534), std::invalid_argument);
  CHECK_THROWS_AS(proc::Identity(0xFFFFFFFFu), std::invalid_argument);  // (uid_t)-1: "no change"
  CHECK_THROWS_AS(proc::Identity(-1), std::invalid_argument);
  CHECK_THROWS_WITH(proc::Identity(std::uint64_t{1} << 32), Catch::Contains("4294967296"));
  CHECK(proc::Identity(0xFFFFFFFEu).id() == 0xFFFFFFFEu);
  CHECK(proc::Identity(65534).id() == 65534u);
  CHECK_THROWS_AS(proc::run(cmd({"ids"}), {.user = std::uint64_t{1} << 32}), std::invalid_argument);
}

TEST_CASE("options: pre_exec's environment changes reach the program, close_fds comes after it") {
  auto out = out_of(cmd({"env", "PROC_FROM_PRE_EXEC", "fds"}), {.pre_exec = [] {
                      ::setenv("PROC_FROM_PRE_EXEC", "set in pre_exec", 1);
                      int leak = ::open("/dev/null", O_RDONLY);  // inheritable on purpose
                      (void)leak;
                    }});
  CHECK(out == "set in pre_exec\n\n");
  // With an env of its own the program gets exactly that one.
  auto mine = out_of(cmd({"env", "PROC_FROM_PRE_EXEC"}),
                     {.env = proc::Environment{{"A", "b"}},
                      .pre_exec = [] { ::setenv("PROC_FROM_PRE_EXEC", "x", 1); }});
  CHECK(mine == "<unset>\n");
}

TEST_CASE("options: with shell, executable is the shell and its $0") {
  if (::access("/bin/bash", X_OK) != 0) {
    WARN("no /bin/bash: skipped");
    return;
  }
  CHECK(out_of({"echo \"$0\""}, {.shell = true, .executable = "/bin/bash"}) == "/bin/bash\n");
  // bash started as "bash" (not "sh") is not in POSIX mode.
  CHECK(out_of({"shopt -q -o posix && echo posix || echo bash"},
               {.shell = true, .executable = "/bin/bash"}) == "bash\n");
  CHECK(out_of({"echo \"$0\""}, {.shell = true}) == "/bin/sh\n");
}

TEST_CASE("options: pass_fds forces close_fds") {
  int inheritable = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC: would leak with close_fds
  int passed = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(inheritable >= 0);
  REQUIRE(passed >= 0);
  auto fds = parse_fds(out_of(cmd({"fds"}), {.close_fds = false, .pass_fds = {passed}}));
  ::close(inheritable);
  ::close(passed);
  CHECK(fds == std::vector<int>{passed});
}

TEST_CASE("options: more than 64 pass_fds, some above 256, on every spawn path") {
  std::vector<int> keep;
  for (int i = 0; i < 70; ++i) {
    int target = i < 60 ? 400 + i * 3 : 40 + i;  // gaps between them, most above 256
    int fd = ::fcntl(0, F_DUPFD_CLOEXEC, target);
    REQUIRE(fd >= 0);
    keep.push_back(fd);
  }
  std::sort(keep.begin(), keep.end());
  std::vector<proc::Options> paths{{}, {.umask = 022u}, {.pre_exec = [] {}}};
  for (auto& o : paths) {
    o.pass_fds = keep;
    CHECK(parse_fds(out_of(cmd({"fds"}), o)) == keep);
  }
  test::PreferPosixSpawn twin;  // and posix_spawn, the plain twin of the default path
  proc::Options o{.pass_fds = keep};
  CHECK(parse_fds(out_of(cmd({"fds"}), o)) == keep);
  for (int fd : keep) ::close(fd);
}
#endif
