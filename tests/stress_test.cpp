// Stress: many threads spawning at once, descriptor exhaustion, children killed mid-write, a
// parent signal handler interrupting every blocking call, thousands of sequential runs, and the
// standard descriptors closed or swapped in the parent. Each case is bounded in time; the counts
// shrink under the sanitizers (or by PROC_STRESS_SCALE=N, which divides them by N).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

#if !defined(_WIN32)
#  include <fcntl.h>
#  if defined(__GLIBC__)
#    include <malloc.h>
#  endif
#  include <signal.h>
#  include <sys/resource.h>
#  include <sys/time.h>
#  include <unistd.h>

#  if defined(__SANITIZE_THREAD__)
#    define PROC_TEST_TSAN 1
#  elif defined(__has_feature)
#    if __has_feature(thread_sanitizer)
#      define PROC_TEST_TSAN 1
#    endif
#  endif
#  if defined(PROC_TEST_TSAN) || defined(__SANITIZE_ADDRESS__)
#    define PROC_TEST_SANITIZED 1
#  elif defined(__has_feature)
#    if __has_feature(address_sanitizer)
#      define PROC_TEST_SANITIZED 1
#    endif
#  endif

using namespace std::chrono_literals;
using test::cmd;
using Clock = std::chrono::steady_clock;

namespace {

// `n` divided by the scale for this build: 1 natively, 4 under a sanitizer (8 under TSan), or
// PROC_STRESS_SCALE when set.
int scaled(int n) {
  int div = 1;
#  if defined(PROC_TEST_TSAN)
  div = 8;
#  elif defined(PROC_TEST_SANITIZED)
  div = 4;
#  endif
  if (const char* e = std::getenv("PROC_STRESS_SCALE")) div = std::max(1, std::atoi(e));
  return std::max(1, n / div);
}

std::string pattern(std::size_t n, std::size_t from = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (from + i) % 26);
  return s;
}

// Failures seen on worker threads (Catch2 assertions are for the main thread only).
struct Failures {
  std::atomic<int> count{0};
  std::mutex m;
  std::string first;
  void add(const std::string& what) {
    if (count.fetch_add(1) == 0) {
      std::lock_guard lock(m);
      first = what;
    }
  }
};

// The three ways a child is started.
struct SpawnPathCase {
  const char* name;
  proc::Options options;
  bool posix_spawn = false;  // take posix_spawn, the plain twin of the default clone3 child
};
std::vector<SpawnPathCase> spawn_paths() {
  return {{"default (clone3)", {}},
          {"posix_spawn", {}, true},
          {"clone", {.umask = 022u}},
          {"fork", {.pre_exec = [] {}}}};
}

// Saves the parent's 0, 1, 2 (which are ctest's pipes) and puts them back on destruction, so a
// test can close or replace them. Nothing may be printed while they are away.
class StdioSaver {
 public:
  StdioSaver() {
    for (int i = 0; i < 3; ++i) saved_[i] = ::fcntl(i, F_DUPFD_CLOEXEC, 10);
  }
  StdioSaver(const StdioSaver&) = delete;
  StdioSaver& operator=(const StdioSaver&) = delete;
  ~StdioSaver() {
    for (int i = 0; i < 3; ++i) {
      if (saved_[i] >= 0) {
        ::dup2(saved_[i], i);
        ::close(saved_[i]);
      } else {
        ::close(i);
      }
    }
  }

 private:
  int saved_[3] = {-1, -1, -1};
};

// For a child built with a sanitizer (the helper is, in sanitizer builds): leave SIGSEGV,
// SIGBUS, SIGFPE, SIGILL and SIGABRT to their default action instead of the sanitizer's report
// and abort, so the child dies of the very signal it was sent.
std::vector<std::pair<std::string, std::optional<std::string>>> plain_signals() {
  const std::string flags =
      "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0";
  std::vector<std::pair<std::string, std::optional<std::string>>> env;
  for (const char* name : {"ASAN_OPTIONS", "TSAN_OPTIONS", "UBSAN_OPTIONS"}) {
    const char* old = std::getenv(name);
    env.emplace_back(name, old && *old ? std::string(old) + ":" + flags : flags);
  }
  return env;
}

}  // namespace

TEST_CASE("stress: 16 threads x 200 spawns with pipes and communicate") {
  const int threads = 16;
  const int per_thread = scaled(200);
  const int fds = test::open_fd_count();
  Failures failures;
  std::atomic<int> done{0};
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const std::string tag = "thread" + std::to_string(t);
      for (int i = 0; i < per_thread; ++i) {
        try {
          const std::string input = tag + ":" + pattern(static_cast<std::size_t>(i * 37 % 5000));
          if (i % 4 == 3) {
            auto r = proc::run(cmd({"cat", "err", tag}),
                               {.input = input, .capture_output = true, .timeout = 60s});
            if (r.returncode != 0 || r.out != input || r.err != tag)
              failures.add(tag + ": run gave rc " + std::to_string(r.returncode));
          } else {
            proc::Options o{.in = proc::pipe, .out = proc::pipe, .err = proc::pipe};
            if (i % 4 == 1) o.umask = 022u;  // the clone(CLONE_VM|CLONE_VFORK) path
            proc::Popen p(cmd({"cat", "err", tag}), o);
            auto [out, err] = p.communicate(input);
            int rc = p.wait();
            if (rc != 0 || out != input || err != tag)
              failures.add(tag + ": communicate gave rc " + std::to_string(rc) + ", " +
                           std::to_string(out.size()) + " bytes");
          }
          done.fetch_add(1);
        } catch (const std::exception& e) {
          failures.add(tag + ": " + e.what());
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  auto took = std::chrono::duration<double>(Clock::now() - start).count();
  INFO(done.load() << " spawns in " << took << " s; first failure: " << failures.first);
  CHECK(failures.count.load() == 0);
  CHECK(done.load() == threads * per_thread);
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("stress: kill, terminate and poll from other threads while one waits or communicates") {
  const int pairs = 8;
  const int rounds = scaled(40);
  const int fds = test::open_fd_count();
  Failures failures;
  std::vector<std::thread> pool;
  for (int t = 0; t < pairs; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        try {
          proc::Popen p(cmd({"outln", "ready", "sleep", "30000"}),
                        {.in = proc::pipe, .out = proc::pipe, .on_destroy = proc::OnDestroy::kill});
          const int sig = (i + t) % 2 ? SIGKILL : SIGTERM;
          std::thread signaller([&] {
            for (int k = 0; k < (i % 5); ++k) {
              if (p.poll() || p.returncode()) failures.add("a sleeping child reported a status");
              std::this_thread::yield();
            }
            p.send_signal(sig);
            p.send_signal(sig);  // harmless twice, and after the exit
            (void)p.poll();
          });
          int rc;
          switch (i % 3) {
            case 0:
              rc = p.wait();
              break;
            case 1:
              rc = p.wait_for(60s).value_or(-1000);
              break;
            default: {
              auto [out, err] = p.communicate({}, 60s);
              if (out != "ready\n" && !out.empty()) failures.add("communicate lost the output");
              rc = p.wait();
            }
          }
          signaller.join();
          if (rc != -sig) failures.add("waited status " + std::to_string(rc));
          p.kill();  // on an exited, reaped child: nothing happens
          if (p.returncode() != -sig) failures.add("returncode changed after the wait");
        } catch (const std::exception& e) {
          failures.add(e.what());
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  INFO("first failure: " << failures.first);
  CHECK(failures.count.load() == 0);
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("stress: spawning at RLIMIT_NOFILE exhaustion is a clear error, then full recovery") {
  const int baseline = test::open_fd_count();
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  int highest = 0;
  for (int fd = 0; fd < 1024; ++fd)
    if (::fcntl(fd, F_GETFD) != -1) highest = fd;
  // UBSan checks the target of a virtual call with a pipe, which fails at EMFILE (a false
  // "invalid vptr" report): let it see the same error path once while descriptors are free, so
  // the check is cached.
  try {
    proc::run(cmd({"cat"}), {.out = proc::file("/nonexistent/proc-stress")});
  } catch (const proc::SpawnError& e) {
    CHECK(e.code().value() == ENOENT);
    CHECK_THAT(e.what(), Catch::Contains("/nonexistent/proc-stress"));
  }
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(highest + 64);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);

  std::vector<int> filler;
  for (;;) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    filler.push_back(fd);
  }
  const int fill_errno = errno;

  // At the limit: a spawn that needs a pipe fails with EMFILE and leaves nothing behind.
  int pipe_error = 0;
  std::string pipe_what, pipe_program;
  try {
    proc::run(cmd({"cat"}), {.input = "x", .capture_output = true});
  } catch (const proc::SpawnError& e) {
    pipe_error = e.code().value();
    pipe_what = e.what();
    pipe_program = e.program;
  }
  // One that needs no descriptor may start (waiting falls back to waitid without a pidfd).
  int plain_rc = -1000, plain_error = 0;
  try {
    plain_rc = proc::run(cmd({"exit", "3"})).returncode;
  } catch (const proc::SpawnError& e) {
    plain_error = e.code().value();
  }
  const bool children_at_limit = test::has_children();

  // Two descriptors free: enough for one pipe; the pidfd cannot be had.
  ::close(filler.back());
  filler.pop_back();
  ::close(filler.back());
  filler.pop_back();
  std::string partial_out;
  int partial_rc = -1000;
  try {
    auto r = proc::run(cmd({"outln", "partial"}), {.out = proc::pipe});
    partial_out = r.out;
    partial_rc = r.returncode;
  } catch (const std::exception& e) {
    partial_out = e.what();
  }

  for (int fd : filler) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);

  CHECK(fill_errno == EMFILE);
  CHECK(filler.size() > 10);
  CHECK(pipe_error == EMFILE);
  CHECK_THAT(pipe_what, Catch::Contains("pipe") && Catch::Contains(test::child));
  CHECK(pipe_program == test::child);
  INFO("a spawn without pipes at the limit: returncode " << plain_rc << ", errno " << plain_error);
  CHECK((plain_rc == 3 || plain_error == EMFILE));
  CHECK_FALSE(children_at_limit);
  CHECK(partial_rc == 0);
  CHECK(partial_out == "partial\n");

  // Full recovery.
  auto r = proc::run(cmd({"cat", "err", "E"}), {.input = "back", .capture_output = true});
  CHECK(r.out == "back");
  CHECK(r.err == "E");
  CHECK(test::open_fd_count() == baseline);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("stress: children killed by each common signal mid-write report -N") {
  const int fds = test::open_fd_count();
  const int signals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGILL,  SIGABRT, SIGFPE,  SIGKILL,
                         SIGSEGV, SIGPIPE, SIGALRM, SIGTERM, SIGUSR1, SIGUSR2, SIGBUS};
  // No core files, whatever the environment allows.
  rlimit old_core{};
  ::getrlimit(RLIMIT_CORE, &old_core);
  rlimit no_core = old_core;
  no_core.rlim_cur = 0;
  ::setrlimit(RLIMIT_CORE, &no_core);
  for (int sig : signals) {
    INFO(proc::detail::signal_name(sig));
    // A signal this process ignores would stay ignored in the child (as exec keeps SIG_IGN).
    struct sigaction dfl {
    }, old{};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(sig, nullptr, &old);
    bool ignored = !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN;
    if (ignored) ::sigaction(sig, &dfl, nullptr);

    // The child writes an endless stream; we read some, then signal it while it writes.
    proc::Popen p(cmd({"spew", "100000000000"}),
                  {.out = proc::pipe, .env_update = plain_signals()});
    if (ignored) ::sigaction(sig, &old, nullptr);
    std::string head(100000, '\0');
    std::size_t got = 0;
    while (got < head.size()) {
      std::size_t n = p.out().read(std::span(head.data() + got, head.size() - got));
      if (n == 0) break;
      got += n;
    }
    CHECK(got == head.size());
    CHECK(head == pattern(head.size()));
    p.send_signal(sig);
    std::string rest = p.out().read_all();
    CHECK(rest == pattern(rest.size(), got));
    CHECK(p.wait() == -sig);

    // And while we write to it (it never reads, so the pipe is full): the parent gets no
    // SIGPIPE, and communicate ends quietly.
    proc::Popen q(cmd({"sleep", "30000"}), {.in = proc::pipe, .env_update = plain_signals()});
    std::thread killer([&] {
      std::this_thread::sleep_for(20ms);
      q.send_signal(sig);
    });
    q.communicate(std::string(4 << 20, 'x'));
    killer.join();
    CHECK(q.wait() == -sig);

    auto r = proc::run(cmd({"raise", std::to_string(sig)}), {.env_update = plain_signals()});
    CHECK(r.returncode == -sig);
    try {
      r.check_returncode();
      FAIL_CHECK("no exception");
    } catch (const proc::CalledProcessError& e) {
      CHECK(e.returncode == -sig);
      CHECK_THAT(e.what(), Catch::Contains("died with " + proc::detail::signal_name(sig)));
    }
  }
  ::setrlimit(RLIMIT_CORE, &old_core);
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

namespace {
std::atomic<int> alarms{0};
extern "C" void count_alarm(int) { alarms.fetch_add(1); }
}  // namespace

TEST_CASE("stress: a parent signal handler without SA_RESTART interrupting every wait") {
  const int fds = test::open_fd_count();
  struct sigaction sa {
  }, old_sa{};
  sa.sa_handler = count_alarm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocking calls fail with EINTR
  REQUIRE(::sigaction(SIGALRM, &sa, &old_sa) == 0);
  itimerval every{{0, 500}, {0, 500}}, off{}, old_timer{};
  REQUIRE(::setitimer(ITIMER_REAL, &every, &old_timer) == 0);
  alarms = 0;

  std::string failure;
  auto fail = [&](const std::string& what) {
    if (failure.empty()) failure = what;
  };
  try {
    const std::string big = pattern(4 << 20);
    auto r = proc::run(cmd({"cat", "spew-err", "100000"}), {.input = big, .capture_output = true});
    if (r.out != big || r.err != pattern(100000)) fail("communicate lost data");

    proc::Popen a(cmd({"sleep", "150", "exit", "9"}));
    if (a.wait() != 9) fail("wait() gave the wrong status");

    proc::Popen b(cmd({"sleep", "30000"}), {.on_destroy = proc::OnDestroy::kill});
    auto t0 = Clock::now();
    if (b.wait_for(100ms)) fail("wait_for returned a status for a running child");
    auto waited = Clock::now() - t0;
    if (waited < 100ms || waited > 3s) fail("wait_for took the wrong time");

    proc::Popen c(cmd({"outln", "partial", "sleep", "30000"}),
                  {.out = proc::pipe, .on_destroy = proc::OnDestroy::kill});
    t0 = Clock::now();
    try {
      c.communicate({}, 150ms);
      fail("communicate did not time out");
    } catch (const proc::TimeoutExpired& e) {
      if (e.out != "partial\n") fail("TimeoutExpired lost the partial output");
    }
    waited = Clock::now() - t0;
    if (waited < 150ms || waited > 3s) fail("communicate's timeout took the wrong time");

    t0 = Clock::now();
    try {
      proc::run(cmd({"sleep", "30000"}), {.timeout = 150ms});
      fail("run did not time out");
    } catch (const proc::TimeoutExpired&) {
    }
    if (Clock::now() - t0 > 3s) fail("run's timeout took too long");

    proc::Popen d(cmd({"lines", "3000"}), {.out = proc::pipe});
    int n = 0;
    for (std::string_view line : d.out().lines())
      if (line != std::to_string(++n)) fail("lines() lost a line");
    if (n != 3000 || d.wait() != 0) fail("lines() ended early");

    proc::Popen e(cmd({"lines-both", "2000"}), {.out = proc::pipe, .err = proc::pipe});
    int outs = 0, errs = 0;
    e.stream_lines([&](std::string_view) { ++outs; }, [&](std::string_view) { ++errs; });
    if (outs != 2000 || errs != 2000) fail("stream_lines lost lines");

    for (const auto& path : spawn_paths()) {
      std::optional<test::PreferPosixSpawn> twin;
      if (path.posix_spawn) twin.emplace();
      for (int i = 0; i < 20; ++i)
        if (proc::run(cmd({"exit", "4"}), path.options).returncode != 4)
          fail(std::string("a spawn on the ") + path.name + " path gave the wrong status");
    }

    std::string expect;
    for (int i = 1; i <= 500; ++i) expect += std::to_string(i) + "\n";
    auto pr = proc::run_pipeline({cmd({"lines", "500"}), cmd({"cat"})}, {.out = proc::pipe});
    if (pr.out != expect || pr.returncodes != std::vector<int>{0, 0})
      fail("the pipeline gave the wrong result");
  } catch (const std::exception& e) {
    fail(std::string("exception: ") + e.what());
  }
  ::setitimer(ITIMER_REAL, &off, nullptr);
  ::sigaction(SIGALRM, &old_sa, nullptr);
  INFO(alarms.load() << " signals delivered");
  CHECK(failure == "");
  CHECK(alarms.load() > 20);
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("stress: 10,000 sequential runs leave descriptors and children unchanged") {
  // /bin/true rather than our helper: a sanitizer-built helper takes ~30 ms to start.
  const std::vector<std::string> t{"true"};
  const int runs = scaled(10000);
  const int fds = test::open_fd_count();
  int wrong_status = 0, fd_drift = 0, child_left = 0;
  auto start = Clock::now();
  for (int i = 0; i < runs; ++i) {
    int rc;
    switch (i % 10) {
      case 0:
        rc = proc::run(t, {.capture_output = true}).returncode;
        break;
      case 1:
        rc = proc::run(t, {.umask = 022u}).returncode;  // clone path
        break;
      case 2:
        rc = proc::run(t, {.in = proc::devnull, .out = proc::devnull}).returncode;
        break;
      default:
        rc = proc::run(t).returncode;
    }
    if (rc != 0) ++wrong_status;
    if (i % 1000 == 999) {
      if (test::open_fd_count() != fds) ++fd_drift;
      if (test::has_children()) ++child_left;
    }
  }
  auto took = std::chrono::duration<double>(Clock::now() - start).count();
  INFO(runs << " runs in " << took << " s");
  CHECK(wrong_status == 0);
  CHECK(fd_drift == 0);
  CHECK(child_left == 0);
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("stress: the parent's 0, 1, 2 closed, every combination, on every spawn path") {
  const int fds = test::open_fd_count();
  for (int mask = 1; mask < 8; ++mask) {
    for (const auto& path : spawn_paths()) {
      std::optional<test::PreferPosixSpawn> twin;
      if (path.posix_spawn) twin.emplace();
      std::string out, err, stdio, error;
      int rc = -1000;
      {
        StdioSaver saver;
        for (int i = 0; i < 3; ++i)
          if (mask & (1 << i)) ::close(i);
        try {
          proc::Options o = path.options;
          o.input = "I";
          o.capture_output = true;
          auto r = proc::run(cmd({"cat", "err", "E"}), o);
          out = r.out;
          err = r.err;
          rc = r.returncode;
          // Only stdout is redirected: the child inherits 0 and 2 as the parent has them.
          proc::Options p = path.options;
          p.out = proc::pipe;
          stdio = proc::run(cmd({"check-stdio"}), p).out;
        } catch (const std::exception& e) {
          error = e.what();
        }
      }
      INFO("closed mask " << mask << ", " << path.name << " path");
      CHECK(error == "");
      CHECK(rc == 0);
      CHECK(out == "I");
      CHECK(err == "E");
      std::string expect = std::string("0=") + (mask & 1 ? "closed" : "open") +
                           " 1=open 2=" + (mask & 4 ? "closed" : "open") + "\n";
      CHECK(stdio == expect);
    }
  }
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

TEST_CASE("stress: the parent's 0, 1, 2 swapped, every permutation, on every spawn path") {
  namespace fs = std::filesystem;
  const int fds = test::open_fd_count();
  const fs::path dir =
      fs::temp_directory_path() / ("proc-stress-swap-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::array<int, 3> perm{0, 1, 2};
  do {
    for (const auto& path : spawn_paths()) {
      std::optional<test::PreferPosixSpawn> twin;
      if (path.posix_spawn) twin.emplace();
      // Three files sit on our 0, 1, 2; the child's stdin/stdout/stderr are fd(perm[k]).
      std::array<std::string, 3> contents;
      std::string error;
      int rc = -1000;
      {
        StdioSaver saver;
        for (int i = 0; i < 3; ++i) {
          int f = ::open((dir / std::to_string(i)).c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
          if (f != i) {
            ::dup2(f, i);
            ::close(f);
          }
        }
        if (::write(perm[0], "IN", 2) != 2) error = "write";
        ::lseek(perm[0], 0, SEEK_SET);
        try {
          proc::Options o = path.options;
          o.in = proc::fd(perm[0]);
          o.out = proc::fd(perm[1]);
          o.err = proc::fd(perm[2]);
          rc = proc::run(cmd({"cat", "err", "E"}), o).returncode;
        } catch (const std::exception& e) {
          error = e.what();
        }
        for (int i = 0; i < 3; ++i) {
          char buf[16];
          ssize_t n = ::pread(i, buf, sizeof buf, 0);
          contents[static_cast<std::size_t>(i)].assign(buf,
                                                       n > 0 ? static_cast<std::size_t>(n) : 0);
        }
      }
      INFO("in/out/err = fd " << perm[0] << "/" << perm[1] << "/" << perm[2] << ", " << path.name
                              << " path");
      CHECK(error == "");
      CHECK(rc == 0);
      CHECK(contents[static_cast<std::size_t>(perm[0])] == "IN");
      CHECK(contents[static_cast<std::size_t>(perm[1])] == "IN");
      CHECK(contents[static_cast<std::size_t>(perm[2])] == "E");
    }
  } while (std::next_permutation(perm.begin(), perm.end()));
  fs::remove_all(dir);
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
}

// Issue 10: what Python's own test scenarios and an attack suite found.

TEST_CASE("stress: the first detach at descriptor exhaustion still gets its child reaped") {
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  // UBSan checks a new thread's vtable with a pipe the first time it sees the type, which fails
  // at EMFILE (a false "invalid vptr" report): let it see the reaper thread's type first.
  std::thread(proc::detail::Reaper::Loop{nullptr}).join();
  { proc::Popen warm(cmd({"exit", "0"})); }  // and a Popen's own types
  proc::Popen p(cmd({"sleep", "300"}));      // started while descriptors are free: it has a pidfd
  int highest = 0;
  for (int fd = 0; fd < 4096; ++fd)
    if (::fcntl(fd, F_GETFD) != -1) highest = fd;
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(highest + 8);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::vector<int> filler;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
  // OnDestroy::detach, now: the reaper starts without descriptors for its wake-up pipe.
  proc::detail::PopenAccess::detach(p);
  for (int fd : filler) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  CHECK(proc::detail::Reaper::instance().pending() <= 1);
  CHECK(test::no_children_within(10s));  // exited after 300 ms, and reaped: no zombie
  CHECK(proc::detail::Reaper::instance().pending() == 0);
}

TEST_CASE("stress: threads capturing big outputs at once (clean under ThreadSanitizer)") {
#  if defined(PROC_TEST_TSAN)
  // No page regions under TSan: mremap'd memory would leave its shadow stale.
#    if defined(PROC_HAVE_PAGE_REGION)
  FAIL("page regions are on under ThreadSanitizer");
#    endif
#  endif
  const int threads = 6;
  std::atomic<int> good{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        std::size_t n = (std::size_t{1} << 20) + static_cast<std::size_t>(t * 4099 + i);
        auto r = proc::run(cmd({"spew", std::to_string(n)}), {.out = proc::pipe});
        if (r.out.size() == n && r.out[n - 1] == static_cast<char>('a' + (n - 1) % 26)) ++good;
      }
    });
  for (auto& th : pool) th.join();
  CHECK(good == threads * 3);
}

TEST_CASE("stress: big captures ending in several threads at once keep each other's memory") {
  // A big capture's pages are moved into its result string, which leaves a hole in its page
  // region; another thread's new region may be mapped into that hole at once. The first thread
  // must not then unmap it along with the rest of its region (it did: another capture's region
  // vanished under it, and its next grow failed with EFAULT, a std::bad_alloc).
#  if defined(__GLIBC__)
  // A fixed mmap threshold: glibc's dynamic one would rise past 1 MiB at the first free, and the
  // strings would come from the heap, whose blocks do not line up with the regions' pages.
  ::mallopt(M_MMAP_THRESHOLD, 256 << 10);
#  endif
  const int threads = 8, rounds = 500;
  std::atomic<int> good{0}, failed{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::string chunk(std::size_t{1} << 16, 'a');
      for (int i = 0; i < rounds; ++i) {
        try {
          proc::detail::ByteStore store;
          std::size_t n = 0, want = (std::size_t{1} << 20) + static_cast<std::size_t>(t * 4099);
          while (n < want) {
            std::size_t k = std::min(chunk.size(), want - n);
            chunk[0] = static_cast<char>('a' + (n / chunk.size()) % 26);
            store.append(std::string_view(chunk).substr(0, k));
            n += k;
          }
          std::string s = store.take();
          bool ok = s.size() == want && s[want - 1] == 'a';
          for (std::size_t at = 0; ok && at < want; at += chunk.size())
            ok = s[at] == static_cast<char>('a' + (at / chunk.size()) % 26);
          ++(ok ? good : failed);
        } catch (const std::bad_alloc&) {
          ++failed;
        }
      }
    });
  for (auto& th : pool) th.join();
  CHECK(failed == 0);
  CHECK(good == threads * rounds);
}

#endif  // !_WIN32
