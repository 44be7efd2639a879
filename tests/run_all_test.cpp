// proc::run_all: order, the concurrency limit (seen from the children), on_done, failures that
// stay in their own job, fail_fast, an exception from on_done, and 1,000 jobs with nothing left
// behind. And wait_any, resource usage, native_handle for event loops.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

#if defined(_WIN32)
#  include <windows.h>
#endif

using namespace std::chrono_literals;
using test::cmd;
using test::under_wine;
using Clock = std::chrono::steady_clock;

namespace {
proc::Command command(std::initializer_list<std::string> args, proc::Options o = {}) {
  return proc::Command(cmd(args), std::move(o));
}
std::filesystem::path scratch_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() /
           ("proc-run-all-" + name + "-" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::filesystem::create_directories(d);
  return d;
}
}  // namespace

TEST_CASE("run_all: results come back in input order, each with its own options") {
  std::vector<proc::Command> cs;
  for (int i = 0; i < 12; ++i)
    cs.push_back(command({"sleep", std::to_string((12 - i) * 10), "outln", std::to_string(i),
                          "exit", std::to_string(i % 4)},
                         {.capture_output = true}));
  cs.push_back(command({"cat"}, {.input = "through stdin", .capture_output = true}));
  auto rs = proc::run_all(cs, {.jobs = 4});
  REQUIRE(rs.size() == 13);
  for (int i = 0; i < 12; ++i) {
    CHECK(rs[static_cast<std::size_t>(i)].process.out == std::to_string(i) + "\n");
    CHECK(rs[static_cast<std::size_t>(i)].process.returncode == i % 4);
    CHECK(rs[static_cast<std::size_t>(i)].ok() == (i % 4 == 0));
    CHECK_FALSE(rs[static_cast<std::size_t>(i)].error);  // a non-zero exit is data, not an error
  }
  CHECK(rs[12].process.out == "through stdin");
  CHECK(rs[12].process.args == cmd({"cat"}));
  CHECK(proc::run_all({}).empty());
}

TEST_CASE("run_all: never more than `jobs` children at once (counted by the children)") {
  auto dir = scratch_dir("concur");
  std::vector<proc::Command> cs;
  for (int i = 0; i < 16; ++i)
    cs.push_back(command({"concur", dir.string(), "150"}, {.out = proc::pipe}));
  auto rs = proc::run_all(cs, {.jobs = 3});
  int most = 0;
  for (auto& r : rs) {
    REQUIRE(r.ok());
    most = std::max(most, std::stoi(r.process.out));
  }
  CHECK(most <= 3);
  CHECK(most >= 2);  // and it did run them side by side
  std::filesystem::remove_all(dir);
}

TEST_CASE("run_all: on_done sees each result as it finishes, on the calling thread") {
  std::vector<std::size_t> order;
  auto caller = std::this_thread::get_id();
  bool same_thread = true;
  auto rs = proc::run_all(
      {command({"sleep", "300"}), command({"sleep", "10"}), command({"sleep", "150"})},
      {.jobs = 3, .on_done = [&](std::size_t i, const proc::JobResult& r) {
         same_thread = same_thread && std::this_thread::get_id() == caller;
         CHECK(r.ok());
         order.push_back(i);
       }});
  CHECK(order == std::vector<std::size_t>{1, 2, 0});
  CHECK(same_thread);
}

TEST_CASE("run_all: a missing program, a timeout and a check failure stay in their own job") {
  auto t0 = Clock::now();
  auto rs = proc::run_all(
      {command({"outln", "fine"}, {.capture_output = true}),
       proc::Command({"proc-no-such-program-xyz"}),
       command({"outln", "partial", "sleep", "30000"}, {.out = proc::pipe, .timeout = 300ms}),
       command({"err", "bad", "exit", "5"}, {.capture_output = true, .check = true}),
       command({"outln", "also fine"}, {.capture_output = true})},
      {.jobs = 2});
  CHECK(Clock::now() - t0 < 20s);
  CHECK(rs[0].ok());
  CHECK(rs[0].process.out == "fine\n");
  CHECK_THROWS_AS(std::rethrow_exception(rs[1].error), proc::SpawnError);
  try {
    std::rethrow_exception(rs[2].error);
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out == "partial\n");
    CHECK(rs[2].process.out == "partial\n");
  }
  try {
    std::rethrow_exception(rs[3].error);
  } catch (const proc::CalledProcessError& e) {
    CHECK(e.returncode == 5);
    CHECK(e.err == "bad");
  }
  CHECK(rs[4].ok());
#if !defined(_WIN32)
  CHECK_FALSE(test::has_children());
#endif
}

TEST_CASE("run_all: fail_fast stops the running jobs and starts no more") {
  auto t0 = Clock::now();
  auto rs = proc::run_all({command({"sleep", "30000"}), command({"exit", "3"}),
                           command({"sleep", "30000"}), command({"outln", "never"})},
                          {.jobs = 2, .fail_fast = true});
  CHECK(Clock::now() - t0 < 20s);
  CHECK_FALSE(rs[1].ok());
  CHECK(rs[1].process.returncode == 3);
  REQUIRE(rs[0].error);  // stopped
  CHECK_THROWS_WITH(std::rethrow_exception(rs[0].error), Catch::Contains("fail_fast"));
  REQUIRE(rs[2].error);  // never started
  CHECK_THROWS_WITH(std::rethrow_exception(rs[2].error), Catch::Contains("not started"));
  REQUIRE(rs[3].error);
#if !defined(_WIN32)
  CHECK_FALSE(test::has_children());
#endif
}

TEST_CASE("run_all: an exception from on_done stops every running job and propagates") {
  auto t0 = Clock::now();
  CHECK_THROWS_WITH(
      proc::run_all(
          {command({"exit", "0"}), command({"sleep", "30000"}), command({"sleep", "30000"})},
          {.jobs = 3,
           .on_done = [](std::size_t,
                         const proc::JobResult&) { throw std::runtime_error("from on_done"); }}),
      "from on_done");
  CHECK(Clock::now() - t0 < 20s);
#if !defined(_WIN32)
  CHECK(test::no_children_within(5s));
#endif
}

TEST_CASE("run_all: 1,000 jobs leave no descriptor or zombie behind") {
  int n = 1000;
#if defined(_WIN32)
  n = 200;  // Wine starts processes slowly
#endif
#if !defined(_WIN32)
  const int fds = test::open_fd_count();
#endif
  std::vector<proc::Command> cs;
  for (int i = 0; i < n; ++i) cs.push_back(command({"exit", "0"}, {.capture_output = i % 2 == 0}));
  auto rs = proc::run_all(cs, {.jobs = 8});
  CHECK(std::all_of(rs.begin(), rs.end(), [](const proc::JobResult& r) { return r.ok(); }));
#if !defined(_WIN32)
  CHECK(test::open_fd_count() == fds);
  CHECK_FALSE(test::has_children());
#endif
}

TEST_CASE("wait_any: the first child to exit, the timeout, many children, an empty range") {
  std::vector<proc::Popen> kids;
  for (int ms : {600, 400, 100, 800}) kids.emplace_back(cmd({"sleep", std::to_string(ms)}));
  CHECK(proc::wait_any(kids, 10s) == 2);
  CHECK(kids[2].returncode() == 0);       // reaped
  CHECK(proc::wait_any(kids, 10s) == 2);  // it still counts, until you take it out
  std::vector<proc::Popen*> rest{&kids[0], &kids[1], &kids[3]};
  CHECK(proc::wait_any(rest, 10s) == 1);
  auto t0 = Clock::now();
  std::vector<proc::Popen*> slow{&kids[3]};
  CHECK_FALSE(proc::wait_any(slow, 50ms).has_value());
  CHECK(Clock::now() - t0 >= 45ms);
  CHECK_THROWS_AS(proc::wait_any(std::span<proc::Popen>()), std::invalid_argument);
  for (auto& k : kids) k.wait();

  for (int count : {100, 200}) {
    std::vector<proc::Popen> many;
    many.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i)
      many.emplace_back(cmd({"sleep", std::to_string(i == count - 7 ? 50 : 30000)}),
                        proc::Options{.on_destroy = proc::OnDestroy::kill});
    CHECK(proc::wait_any(many, 30s) == static_cast<std::size_t>(count - 7));
  }
}

// Wine's GetProcessTimes and GetProcessMemoryInfo for another process report next to nothing
// (about 30 ms of CPU, a peak working set of 0), whatever the child did: under Wine the figures
// themselves cannot be checked, only that they are there (docs/windows.md).
TEST_CASE("resource usage: CPU time of a busy child, peak memory of a big one") {
  const bool exact = !under_wine();
  auto busy = proc::run(cmd({"burn", "300"}));
  if (exact) CHECK(busy.usage.user_time + busy.usage.system_time >= 250ms);
  proc::Popen big(cmd({"alloc", "50"}));
  CHECK_FALSE(big.resource_usage().has_value());  // not reaped yet
  big.wait();
  REQUIRE(big.resource_usage().has_value());
  if (exact) CHECK(big.resource_usage()->max_rss >= (std::size_t{50} << 20));
  auto small = proc::run(cmd({"exit", "0"}));
  CHECK(small.usage.max_rss < (std::size_t{50} << 20));
}
