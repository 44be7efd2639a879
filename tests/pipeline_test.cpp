// Pipelines, chaining, stream_lines, and timeouts that end the call.
#include <chrono>
#include <filesystem>

#include "test_support.hpp"

using namespace std::chrono_literals;
using test::cmd;
using Clock = std::chrono::steady_clock;

static std::size_t digits_total(long n) {  // bytes of "1\n" .. "n\n"
  std::size_t total = 0;
  for (long i = 1; i <= n; ++i) total += std::to_string(i).size() + 1;
  return total;
}

TEST_CASE("pipeline: three stages move 100 MiB child to child") {
  const std::size_t n = 100u << 20;
  auto r = proc::run_pipeline({cmd({"spew", std::to_string(n)}), cmd({"cat"}), cmd({"count-in"})},
                              {.out = proc::pipe, .check = true});
  CHECK(r.out == std::to_string(n) + "\n");
  CHECK(r.returncodes == std::vector<int>{0, 0, 0});
  CHECK(r.args.size() == 3);
}

TEST_CASE("pipeline: input goes to the first stage, out from the last") {
  auto r = proc::run_pipeline({cmd({"cat"}), cmd({"cat"}), cmd({"count-in"})},
                              {.out = proc::pipe, .input = std::string(123457, 'i')});
  CHECK(r.out == "123457\n");
}

TEST_CASE("pipeline: a failing middle stage, with and without check") {
  auto r = proc::run_pipeline({cmd({"lines", "10"}), cmd({"cat", "exit", "3"}), cmd({"count-in"})},
                              {.out = proc::pipe});
  CHECK(r.returncodes == std::vector<int>{0, 3, 0});
  CHECK(r.returncode() == 3);
  CHECK(r.out == std::to_string(digits_total(10)) + "\n");
  try {
    proc::run_pipeline({cmd({"exit", "2"}), cmd({"cat", "exit", "3"}), cmd({"count-in"})},
                       {.out = proc::pipe, .check = true});
    FAIL("no exception");
  } catch (const proc::CalledProcessError& e) {
    CHECK(e.returncode == 3);  // the rightmost failing stage (pipefail)
    CHECK(e.cmd == cmd({"cat", "exit", "3"}));
    CHECK(std::string(e.what()).find("stage 2 of 3") != std::string::npos);
  }
}

TEST_CASE("pipeline: yes | head -n 1 ends promptly") {
  auto start = Clock::now();
  auto r =
      proc::run_pipeline({cmd({"lines", "1000000000000"}), cmd({"readline"})}, {.out = proc::pipe});
  CHECK(Clock::now() - start < 10s);
  CHECK(r.out == "got:1\n");
  CHECK(r.returncodes[1] == 0);
#if !defined(_WIN32)
  CHECK(r.returncodes[0] == -13);  // SIGPIPE, exactly as in a shell
#endif
}

TEST_CASE("pipeline: err collects every stage's stderr, and to_stdout works inside a chain") {
  auto r = proc::run_pipeline({cmd({"err", "one;", "out", "x"}), cmd({"err", "two;", "cat"})},
                              {.capture_output = true});
  CHECK(r.out == "x");
  CHECK(r.err.size() == 8);
  CHECK(r.err.find("one;") != std::string::npos);
  CHECK(r.err.find("two;") != std::string::npos);
  auto merged = proc::run_pipeline({cmd({"out", "a", "err", "b"}), cmd({"cat"})},
                                   {.out = proc::pipe, .err = proc::to_stdout});
  CHECK(merged.out == "ab");
}

TEST_CASE("pipeline: a timeout ends every stage and keeps the output") {
  auto start = Clock::now();
  try {
    proc::run_pipeline({cmd({"outln", "early", "sleep", "30000"}), cmd({"cat"})},
                       {.out = proc::pipe, .timeout = 300ms});
    FAIL("no timeout");
  } catch (const proc::TimeoutExpired& e) {
    CHECK(e.out == "early\n");
    CHECK(std::string(e.what()).find("timed out after 0.3 seconds") != std::string::npos);
  }
  CHECK(Clock::now() - start < 3s);
#if !defined(_WIN32)
  CHECK_FALSE(test::has_children());
#endif
}

TEST_CASE("pipeline: Command objects joined with |, with their own options") {
  auto dir = std::filesystem::canonical(std::filesystem::temp_directory_path());
  auto r = (proc::Command(cmd({"pwd"}), {.cwd = dir}) | proc::Command(cmd({"cat"})))
               .run({.out = proc::pipe});
  CHECK(r.out.substr(0, r.out.find_last_not_of("\r\n") + 1) == dir.string());
  proc::Pipeline p{proc::Command(cmd({"lines", "5"}))};
  p |= proc::Command(cmd({"cat"}));
  p |= proc::Command(cmd({"count-in"}));
  CHECK(p.stages().size() == 3);
  CHECK(p.run({.out = proc::pipe}).out == std::to_string(digits_total(5)) + "\n");
}

TEST_CASE("pipeline: a started pipeline streams its last stage") {
  auto stages = proc::start_pipeline({cmd({"lines", "1000"}), cmd({"cat"})}, {.out = proc::pipe});
  REQUIRE(stages.size() == 2);
  long n = 0;
  for (auto line : stages.back().out().lines()) {
    ++n;
    if (line != std::to_string(n)) break;
  }
  CHECK(n == 1000);
  for (auto& s : stages) CHECK(s.wait() == 0);
  CHECK_THROWS_AS(proc::start_pipeline({cmd({"cat"})}, {.input = "x"}), std::invalid_argument);
  CHECK_THROWS_AS(proc::run_pipeline(std::vector<std::vector<std::string>>{}),
                  std::invalid_argument);
}

TEST_CASE("stream_lines: both streams flooding at once, each in order") {
  const long n = 1200000;  // about 10 MiB on each stream
  proc::Popen p(cmd({"lines-both", std::to_string(n)}), {.out = proc::pipe, .err = proc::pipe});
  long next_out = 1, next_err = 1;
  bool out_ok = true, err_ok = true;
  int rc = p.stream_lines(
      [&](std::string_view line) { out_ok = out_ok && line == "o" + std::to_string(next_out++); },
      [&](std::string_view line) { err_ok = err_ok && line == "e" + std::to_string(next_err++); });
  CHECK(rc == 0);
  CHECK(out_ok);
  CHECK(err_ok);
  CHECK(next_out == n + 1);
  CHECK(next_err == n + 1);
}

TEST_CASE("stream_lines: a final partial line, a null callback, a timeout that resumes") {
  proc::Popen p(cmd({"out", "a\nb", "err", "e1\ne2"}), {.out = proc::pipe, .err = proc::pipe});
  std::vector<std::string> got;
  p.stream_lines([&](std::string_view l) { got.emplace_back(l); });
  CHECK(got == std::vector<std::string>{"a", "b"});

  proc::Popen slow(cmd({"out", "par", "sleep", "300", "outln", "tial", "outln", "next"}),
                   {.out = proc::pipe});
  std::vector<std::string> lines;
  auto on = [&](std::string_view l) { lines.emplace_back(l); };
  CHECK_THROWS_AS(slow.stream_lines(on, {}, 50ms), proc::TimeoutExpired);
  CHECK(lines.empty());
  CHECK(slow.stream_lines(on) == 0);
  CHECK(lines == std::vector<std::string>{"partial", "next"});
}

TEST_CASE("stream_lines: a line longer than the limit arrives in pieces") {
  const std::size_t big = (8u << 20) + 5;
  proc::Popen p(cmd({"spew", std::to_string(big), "outln", "", "outln", "end"}),
                {.out = proc::pipe});
  std::vector<std::size_t> sizes;
  p.stream_lines([&](std::string_view l) { sizes.push_back(l.size()); });
  CHECK(sizes == std::vector<std::size_t>{8u << 20, 5, 3});
}

#if !defined(_WIN32)
TEST_CASE("stop_group ends grandchildren too") {
  proc::Popen p(cmd({"grandchild", "30000", "outln", "ready", "sleep", "30000"}),
                {.out = proc::pipe, .start_new_session = true});
  REQUIRE(p.out().readline() == "ready\n");
  auto start = Clock::now();
  CHECK(p.stop_group(2s) == -15);
  // The grandchild held stdout; it is gone, so EOF comes at once.
  CHECK(p.out().read_all().empty());
  CHECK(Clock::now() - start < 5s);
}
#endif

// Issue 10: what Python's own test scenarios and an attack suite found.

TEST_CASE("pipeline: a started pipeline dropped early does not hang") {
  auto start = Clock::now();
  {
    // An endless producer into cat into our pipe: ~RunningPipeline must close every stage's
    // pipes before it waits, or `spew` (blocked on cat, blocked on us) never ends.
    auto st =
        proc::start_pipeline({cmd({"lines", "1000000000000"}), cmd({"cat"})}, {.out = proc::pipe});
    REQUIRE(st.back().out().readline().has_value());
  }
  CHECK(Clock::now() - start < 20s);
  start = Clock::now();
  try {
    auto st = (proc::Command(cmd({"lines", "1000000000000"})) | proc::Command(cmd({"cat"})))
                  .start({.out = proc::pipe});
    REQUIRE(st.front().pid() > 0);
    throw std::runtime_error("unwinding");
  } catch (const std::runtime_error&) {
  }
  CHECK(Clock::now() - start < 20s);
#if !defined(_WIN32)
  CHECK_FALSE(test::has_children());
#endif
}

TEST_CASE("pipeline: RunningPipeline is a range of the stages with wait()") {
  auto st =
      proc::start_pipeline({cmd({"outln", "x", "exit", "3"}), cmd({"cat"})}, {.out = proc::pipe});
  CHECK(st.size() == 2);
  CHECK(st[0].pid() == st.front().pid());
  CHECK(st[1].pid() == st.back().pid());
  int n = 0;
  for (proc::Popen& p : st) n += p.pid() > 0;
  CHECK(n == 2);
  CHECK(st.back().out().read_all() == "x\n");
  CHECK(st.wait() == std::vector<int>{3, 0});
  CHECK_THROWS_AS(st[2], std::out_of_range);
}

TEST_CASE("pipeline: in = proc::pipe without input is invalid_argument") {
  CHECK_THROWS_WITH(proc::run_pipeline({cmd({"cat"}), cmd({"cat"})}, {.in = proc::pipe}),
                    Catch::Contains("in = proc::pipe"));
}

TEST_CASE("pipeline: a stage's own err = proc::pipe is read into PipelineResult::err") {
  // Over 64 KiB of stderr: unread, the stage would block forever.
  auto r = (proc::Command(cmd({"spew-err", "200000", "outln", "done"}), {.err = proc::pipe}) |
            proc::Command(cmd({"cat"})))
               .run({.out = proc::pipe, .timeout = 60s});
  CHECK(r.out == "done\n");
  CHECK(r.err.size() == 200000);
  CHECK(r.returncodes == std::vector<int>{0, 0});
}

TEST_CASE("stream_lines: resumed after a callback threw, no line is glued or lost") {
  proc::Popen p(cmd({"out", "abc\nd\ne\nf\n"}), {.out = proc::pipe});
  std::vector<std::string> got;
  bool thrown = false;
  auto on = [&](std::string_view l) {
    got.emplace_back(l);
    if (l == "d" && !thrown) {
      thrown = true;
      throw std::runtime_error("callback");
    }
  };
  CHECK_THROWS_AS(p.stream_lines(on), std::runtime_error);
  CHECK(p.stream_lines(on) == 0);
  CHECK(got == std::vector<std::string>{"abc", "d", "e", "f"});
}

TEST_CASE("stream_lines: after a timeout, read_all and communicate still get the partial line") {
  proc::Popen a(cmd({"out", "par", "sleep", "300", "outln", "tial"}), {.out = proc::pipe});
  CHECK_THROWS_AS(a.stream_lines([](std::string_view) {}, {}, 50ms), proc::TimeoutExpired);
  CHECK(a.out().read_all() == "partial\n");
  CHECK(a.wait() == 0);

  proc::Popen b(cmd({"out", "par", "sleep", "300", "outln", "tial"}), {.out = proc::pipe});
  CHECK_THROWS_AS(b.stream_lines([](std::string_view) {}, {}, 50ms), proc::TimeoutExpired);
  CHECK(b.communicate().out == "partial\n");

  proc::Popen c(cmd({"out", "par", "sleep", "300", "outln", "tial"}), {.out = proc::pipe});
  CHECK_THROWS_AS(c.stream_lines([](std::string_view) {}, {}, 50ms), proc::TimeoutExpired);
  CHECK(c.out().readline() == "partial\n");
  CHECK(c.wait() == 0);
}

TEST_CASE("stream_lines: a line of exactly the limit, its newline in a later read, is one line") {
  const std::size_t limit = 8u << 20;
  proc::Popen p(cmd({"spew", std::to_string(limit), "sleep", "100", "outln", "", "outln", "x"}),
                {.out = proc::pipe});
  std::vector<std::size_t> sizes;
  p.stream_lines([&](std::string_view l) { sizes.push_back(l.size()); });
  CHECK(sizes == std::vector<std::size_t>{limit, 1});
  // Twice the limit found whole: two pieces, no empty third.
  proc::Popen q(cmd({"spew", std::to_string(2 * limit), "outln", ""}), {.out = proc::pipe});
  sizes.clear();
  q.stream_lines([&](std::string_view l) { sizes.push_back(l.size()); });
  CHECK(sizes == std::vector<std::size_t>{limit, limit});
}

TEST_CASE("stream_lines: input written in the same loop, 10 MiB through cat, lines in order") {
  std::string input;
  const int n = 1000000;  // ~6.9 MB of lines, plus padding to 10 MiB
  for (int i = 1; i <= n; ++i) input += std::to_string(i) + "\n";
  std::string pad(std::size_t{10} << 20, 'p');
  pad.back() = '\n';
  input += pad;
  proc::Popen p(cmd({"cat"}), {.in = proc::pipe, .out = proc::pipe});
  long next = 1;
  bool ordered = true;
  std::size_t padded = 0;
  int rc = p.stream_lines(
      [&](std::string_view l) {
        if (next <= n) {
          ordered = ordered && l == std::to_string(next);
          ++next;
        } else {
          padded += l.size();
        }
      },
      {}, 60s, input);
  CHECK(rc == 0);
  CHECK(ordered);
  CHECK(next == n + 1);
  CHECK(padded == pad.size() - 1);
  CHECK_THROWS_AS(proc::Popen(cmd({"cat"}), {.out = proc::pipe}).stream_lines({}, {}, {}, "x"),
                  std::logic_error);
}

TEST_CASE("stream_lines: input that a timeout interrupts is resumed where it stopped") {
  proc::Popen p(cmd({"readline", "sleep", "300", "cat"}), {.in = proc::pipe, .out = proc::pipe});
  std::string input = "first\n";
  input += std::string(std::size_t{4} << 20, 'z');  // more than the pipe holds while it sleeps
  std::size_t total = 0;
  auto on = [&](std::string_view l) { total += l.size() + 1; };
  CHECK_THROWS_AS(p.stream_lines(on, {}, 100ms, input), proc::TimeoutExpired);
  CHECK(p.stream_lines(on, {}, 60s) == 0);  // no input: the rest of the first one goes on
  // "got:first\n" and the 4 MiB of z's (as one line without newline at the end)
  CHECK(total == std::string("got:first\n").size() + (std::size_t{4} << 20) + 1);
}
