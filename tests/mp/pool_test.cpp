// proc::mp::Pool and Future: ordered map, submit, imap_unordered, a worker that dies in the middle
// of a task, timeouts, cancellation, recycling, a broken start, many tiny tasks, and what is left
// afterwards (nothing). This program is its own child (see mp_main.cpp).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <proc/mp.hpp>
#include <ranges>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../test_support.hpp"
#include "windows_support.hpp"

#if !defined(_WIN32)
#  include <dirent.h>
#  include <poll.h>
#  include <signal.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#endif

using namespace std::chrono_literals;
namespace mp = proc::mp;
using Clock = std::chrono::steady_clock;

namespace {

// A program whose start is broken when asked: this static initialiser aborts before main, the way
// a bad configuration or a missing library breaks a real program's start.
[[maybe_unused]] const bool broken_start = [] {
  if (std::getenv("PROC_TEST_BREAK_START")) std::abort();
  return false;
}();

// Asked to, a worker ends on its own 2 s after it started (well after its handshake), idle,
// before any task: a program that dies of its own start-up work after all.
[[maybe_unused]] const bool dies_idle = [] {
  if (std::getenv("PROC_TEST_DIE_IDLE"))
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      std::_Exit(9);
    }).detach();
  return false;
}();

int square(int x) { return x * x; }
// 0 .. n-1 (std::views::iota does not compile with clang 14 over libstdc++ 12).
std::vector<int> upto(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}
int my_pid() { return mp::current_process().pid; }
int nap(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int fail_on_odd(int x) {
  if (x % 2) throw std::invalid_argument("odd: " + std::to_string(x));
  return x;
}
// Writes this worker's pid to `path`, then sleeps: the test kills it from outside.
int pid_then_sleep(std::string path) {
  { std::ofstream(path + ".tmp") << mp::current_process().pid; }
  std::filesystem::rename(path + ".tmp", path);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 0;
}

// Returns `k` once the parent has taken `k` results, which it says by making the file
// "<path>-<k>": the order in which tasks finish is then set by the parent, not by timing.
// Gives up after 60 s.
int after_results(std::pair<std::string, int> at) {
  const auto& [path, k] = at;
  const std::string mark = path + "-" + std::to_string(k);
  (void)test::within(60s, [&] { return std::filesystem::exists(mark); });
  return k;
}

// A fresh path for pid_then_sleep to write to.
std::string pid_path(const std::string& tag) {
  auto path = (std::filesystem::temp_directory_path() /
               ("proc-pool-" + tag + "-" + std::to_string(mp::current_process().pid)))
                  .string();
  std::filesystem::remove(path);
  return path;
}
// The pid pid_then_sleep wrote to `path` once its task runs (0 if it did not within 60 s).
int running_pid(const std::string& path) {
  (void)test::within(60s, [&] { return std::filesystem::exists(path); });
  int pid = 0;
  std::ifstream(path) >> pid;
  std::filesystem::remove(path);
  return pid;
}

#if !defined(_WIN32)
int threads_now() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}
bool sigint_ignored() {
  struct sigaction sa {};
  ::sigaction(SIGINT, nullptr, &sa);
  return sa.sa_handler == SIG_IGN;
}
#else
using test::threads_now;
#endif
using test::handles_now;

// Whether this process is back to `n` threads within 5 s: a thread that was joined may still be
// listed for a moment while the kernel finishes its exit.
[[maybe_unused]] bool threads_back_to(int n) {
  return test::within(5s, [&] { return threads_now() == n; });
}

}  // namespace

TEST_CASE("pool: map returns results in input order, submit and get") {
  mp::Pool pool({.workers = 4});
  std::vector<int> squares = pool.map(mp::fn<&square>, upto(100));
  REQUIRE(squares.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(squares[static_cast<std::size_t>(i)] == i * i);
  mp::Future<int> f = pool.submit(mp::fn<&square>, 12);
  CHECK(f.get() == 144);
  CHECK(f.ready());
  CHECK_THROWS_AS(f.get(), std::logic_error);
  auto s = pool.submit([](std::string a, std::string b) { return a + b; }, std::string("ab"),
                       std::string("cd"));
  CHECK(s.get() == "abcd");
  CHECK(pool.map([](int x) { return x + 1; }, std::vector<int>{}).empty());
}

TEST_CASE("pool: map waits for every task, then throws the first failure in input order") {
  mp::Pool pool({.workers = 2});
  try {
    pool.map(mp::fn<&fail_on_odd>, std::vector<int>{0, 2, 3, 4, 5});
    FAIL("no exception");
  } catch (const mp::RemoteError& e) {
    CHECK(e.message == "odd: 3");
    CHECK(e.type == "std::invalid_argument");
  }
  CHECK(pool.submit(mp::fn<&square>, 3).get() == 9);  // still working
}

namespace {
struct Offset {
  int by = 0;
  std::string operator()(int x) const { return std::to_string(x + by); }
};
void touch_nothing(int) {}
int die_at_500(int x) {
  if (x == 500) std::abort();
  return x;
}
}  // namespace

TEST_CASE("pool: map sends chunks, keeps input order, and fails as Python's chunked map") {
  mp::Pool pool({.workers = 2});
  // 1,000 items on 2 workers: chunks of 125 (Python's default rule), results in input order.
  auto r = pool.map(mp::fn<&square>, upto(1000));
  REQUIRE(r.size() == 1000);
  bool ordered = true;
  for (int i = 0; i < 1000; ++i) ordered = ordered && r[static_cast<std::size_t>(i)] == i * i;
  CHECK(ordered);
  // An explicit chunk size, a function object with fields, void results.
  auto s = pool.map(Offset{10}, upto(7), 3);
  CHECK(s == std::vector<std::string>{"10", "11", "12", "13", "14", "15", "16"});
  pool.map(mp::fn<&touch_nothing>, upto(100), 7);
  // The first failure in input order.
  try {
    pool.map(mp::fn<&fail_on_odd>, upto(100));
    FAIL("no exception");
  } catch (const mp::RemoteError& e) {
    CHECK(e.message == "odd: 1");
  }
  // A worker that dies fails its chunk; the pool goes on.
  CHECK_THROWS_AS(pool.map(mp::fn<&die_at_500>, upto(1000)), mp::WorkerDied);
  CHECK(pool.map(mp::fn<&square>, upto(50)).back() == 49 * 49);
}

TEST_CASE("pool: imap_unordered yields results as they finish") {
  // Task k can finish only after the parent has taken k results: they finish in the order
  // 0, 1, 2, whatever the timing, while they were given as 2, 0, 1. Results in input order
  // would wait for task 2, which waits for them (until its 60 s cap).
  mp::Pool pool({.workers = 3});
  const std::string path = pid_path("imap");
  auto mark = [&](std::size_t n) { return path + "-" + std::to_string(n); };
  auto taken = [&](std::size_t n) { std::ofstream(mark(n)) << n; };
  std::vector<std::pair<std::string, int>> tasks{{path, 2}, {path, 0}, {path, 1}};
  auto clear = [&] {
    for (std::size_t n = 0; n <= tasks.size(); ++n) std::filesystem::remove(mark(n));
  };
  clear();  // a mark left by a killed run with the same pid
  taken(0);
  std::vector<int> order;
  for (int r : pool.imap_unordered(mp::fn<&after_results>, tasks)) {
    order.push_back(r);
    taken(order.size());
  }
  clear();
  CHECK(order == std::vector<int>{0, 1, 2});
}

TEST_CASE("pool: a worker that dies in a task fails exactly that task, and the pool goes on") {
  mp::Pool pool({.workers = 2});
  auto ok1 = pool.submit(mp::fn<&nap>, 300);
  auto dies = pool.submit([] {
    std::abort();
    return 0;
  });
  auto ok2 = pool.submit(mp::fn<&nap>, 100);
  try {
    dies.get();
    FAIL("no exception");
  } catch (const mp::WorkerDied& e) {
#if !defined(_WIN32)
    CHECK(e.returncode == -SIGABRT);
#else
    // The C runtime's abort() exits with 3 on Windows.
    CHECK(e.returncode == 3);
#endif
    CHECK(e.pid > 0);
  }
  CHECK(ok1.get() == 300);
  CHECK(ok2.get() == 100);
  // Killed from outside, mid-task.
  auto path = pid_path("pid");
  auto victim = pool.submit(mp::fn<&pid_then_sleep>, path);
  int pid = running_pid(path);
  REQUIRE(pid > 0);
#if !defined(_WIN32)
  ::kill(pid, SIGKILL);
#else
  REQUIRE(test::kill_pid(pid));  // TerminateProcess, as Task Manager would
#endif
  CHECK_THROWS_AS(victim.get(), mp::WorkerDied);
  // New work still runs, on replacement workers.
  auto after = pool.map(mp::fn<&square>, upto(20));
  CHECK(after[19] == 361);
}

TEST_CASE("pool: a task over task_timeout is TaskTimeout, the pool goes on") {
  mp::Pool pool({.workers = 1, .task_timeout = 300ms});
  auto t0 = Clock::now();
  auto slow = pool.submit(mp::fn<&nap>, 30000);
  CHECK_THROWS_AS(slow.get(), mp::TaskTimeout);
  CHECK(Clock::now() - t0 < 20s);
  CHECK(pool.submit(mp::fn<&nap>, 10).get() == 10);
}

TEST_CASE("pool: Future::wait_for(hours::max()) waits without limit") {
  // The longest timeout there is means no limit: it must neither overflow into "already
  // expired" (a false at once) nor into undefined behaviour.
  mp::Pool pool({.workers = 1});
  auto f = pool.submit(mp::fn<&nap>, 300);
  auto t0 = Clock::now();
  CHECK(f.wait_for(std::chrono::hours::max()));
  CHECK(Clock::now() - t0 >= 200ms);
  CHECK(f.get() == 300);
}

TEST_CASE("pool: cancel a queued task and a running one") {
  mp::Pool pool({.workers = 1});
  auto path = pid_path("cancel");
  auto running = pool.submit(mp::fn<&pid_then_sleep>, path);
  auto queued = pool.submit(mp::fn<&square>, 4);
  CHECK(queued.cancel());
  CHECK_THROWS_AS(queued.get(), mp::TaskCancelled);
  REQUIRE(running_pid(path) > 0);  // it is running now
  auto t0 = Clock::now();
  CHECK(running.cancel());
  CHECK_THROWS_AS(running.get(), mp::TaskCancelled);
  CHECK(Clock::now() - t0 < 20s);
  auto done = pool.submit(mp::fn<&square>, 5);
  CHECK(done.get() == 25);
  CHECK_FALSE(done.cancel());  // finished already
}

TEST_CASE("pool: max_tasks_per_worker replaces workers") {
  mp::Pool pool({.workers = 1, .max_tasks_per_worker = 2});
  std::set<int> pids;
  for (int i = 0; i < 6; ++i) pids.insert(pool.submit(mp::fn<&my_pid>).get());
  CHECK(pids.size() == 3);
}

TEST_CASE("pool: workers that cannot start end the pool with PoolBroken, not a respawn loop") {
  auto t0 = Clock::now();
  try {
    mp::Pool pool(
        {.workers = 2, .worker = {.daemon = true, .env_update = {{"PROC_TEST_BREAK_START", "1"}}}});
    FAIL("no exception");
  } catch (const mp::PoolBroken& e) {
    CHECK_THAT(e.what(), Catch::Contains("cannot start"));
  }
  CHECK(Clock::now() - t0 < 30s);
  CHECK(test::no_children_within(5s));
}

TEST_CASE("pool: a worker that dies idle before its first task breaks the pool, no respawn loop") {
  auto t0 = Clock::now();
  std::string what;
  {
    mp::Pool pool(
        {.workers = 2, .worker = {.daemon = true, .env_update = {{"PROC_TEST_DIE_IDLE", "1"}}}});
    for (;;) {
      REQUIRE(Clock::now() - t0 < 60s);
      try {
        int v = pool.submit(mp::fn<&square>, 3).get();  // before the workers die
        CHECK(v == 9);
      } catch (const mp::WorkerDied&) {
        // died in this very task: replaced, and the replacement dies idle in turn
      } catch (const mp::PoolBroken& e) {
        what = e.what();
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  CHECK_THAT(what, Catch::Contains("before running any task"));
  CHECK(test::no_children_within(5s));
}

TEST_CASE("pool: close, join, terminate, misuse is logic_error") {
  mp::Pool pool({.workers = 2});
  auto a = pool.submit(mp::fn<&nap>, 200);
  CHECK_THROWS_AS(pool.join(), std::logic_error);  // not closed yet
  pool.close();
  CHECK_THROWS_AS(pool.submit(mp::fn<&square>, 1), std::logic_error);
  pool.join();  // the queued task ran first
  CHECK(a.get() == 200);

  mp::Pool other({.workers = 1});
  auto long_one = other.submit(mp::fn<&nap>, 30000);
  auto waiting = other.submit(mp::fn<&square>, 2);
  auto t0 = Clock::now();
  other.terminate();
  CHECK(Clock::now() - t0 < 10s);
  CHECK_THROWS_AS(long_one.get(), mp::PoolBroken);
  CHECK_THROWS_AS(waiting.get(), mp::PoolBroken);
  CHECK(test::no_children_within(5s));
}

TEST_CASE("pool: 10,000 tiny tasks leave no descriptor, thread or zombie behind", "[serial]") {
  const int fds = handles_now();
  [[maybe_unused]] const int threads = threads_now();
  {
    mp::Pool pool({.workers = 2});
    auto r = pool.map(mp::fn<&square>, upto(10000));
    CHECK(r[9999] == 9999 * 9999);
#if !defined(_WIN32)
    CHECK(pool.submit([] { return sigint_ignored(); }).get());  // workers leave Ctrl+C to us
#endif
    // (Windows keeps the "ignore Ctrl+C" flag that SetConsoleCtrlHandler(nullptr, TRUE) sets
    // where no documented call reads it back.)
  }
  CHECK(handles_now() == fds);
#if defined(__has_feature)
#  if !__has_feature(thread_sanitizer)  // TSan starts a thread of its own, on demand
  CHECK(threads_back_to(threads));
#  endif
#else
  CHECK(threads_back_to(threads));
#endif
  CHECK(test::no_children_within(5s));
}

TEST_CASE("pool: the parent killed: every worker is gone soon after") {
  auto [a, b] = mp::connection_pair<std::vector<int>>();
  auto parent = mp::spawn(
      [](mp::Connection<std::vector<int>> c) {
        mp::Pool pool({.workers = 3});
        // One task per worker, all at once, so that each reports its own pid.
        std::vector<mp::Future<int>> fs;
        for (int i = 0; i < 3; ++i)
          fs.push_back(pool.submit([] {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            return mp::current_process().pid;
          }));
        std::vector<int> pids;
        for (auto& f : fs) pids.push_back(f.get());
        c.send(pids);
        std::this_thread::sleep_for(std::chrono::seconds(120));
      },
      std::move(b));
  std::vector<int> pids = a.recv();
  REQUIRE(pids.size() == 3);
#if !defined(_WIN32)
  std::vector<int> pidfds;
  for (int pid : pids) pidfds.push_back(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  parent.kill();
  CHECK_THROWS_AS(parent.join(), mp::ProcessDied);
  for (int fd : pidfds) {
    REQUIRE(fd >= 0);
    pollfd p{fd, POLLIN, 0};
    CHECK(::poll(&p, 1, 10000) == 1);
    ::close(fd);
  }
#else
  std::vector<HANDLE> workers;
  for (int pid : pids) workers.push_back(test::open_process(pid));
  parent.kill();
  CHECK_THROWS_AS(parent.join(), mp::ProcessDied);
  for (HANDLE w : workers) {
    REQUIRE(w != nullptr);
    CHECK(test::exits_within(w, 10s));
    ::CloseHandle(w);
  }
#endif
}

#if defined(_WIN32)
TEST_CASE("pool: more than 61 workers on Windows", "[serial]") {
  mp::Pool pool({.workers = 64});
  auto r = pool.map(mp::fn<&square>, upto(256));
  CHECK(r[255] == 255 * 255);
}
#endif
