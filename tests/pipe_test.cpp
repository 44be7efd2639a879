// proc::PipeEnd: read, read_all, readline, lines, write, close.
#include <array>
#include <chrono>

#include "test_support.hpp"

using namespace std::chrono_literals;
using test::cmd;

TEST_CASE("pipe: readline keeps the newline, and a last line without one is still a line") {
  proc::Popen p(cmd({"out", "one\ntwo\nlast"}), {.out = proc::pipe});
  CHECK(p.out().readline() == "one\n");
  CHECK(p.out().readline() == "two\n");
  CHECK(p.out().readline() == "last");
  CHECK_FALSE(p.out().readline().has_value());
  CHECK_FALSE(p.out().readline().has_value());
  p.wait();
}

TEST_CASE("pipe: lines() yields views without the newline, empty lines included") {
  proc::Popen p(cmd({"out", "a\n\nb\r\nc"}), {.out = proc::pipe});
  std::vector<std::string> lines;
  for (std::string_view line : p.out().lines()) lines.emplace_back(line);
  CHECK(lines == std::vector<std::string>{"a", "", "b\r", "c"});
  p.wait();
}

TEST_CASE("pipe: lines() over many lines and a line longer than the buffer") {
  proc::Popen p(cmd({"lines", "200000"}), {.out = proc::pipe});
  long expected = 1, count = 0;
  bool in_order = true;
  for (std::string_view line : p.out().lines()) {
    in_order = in_order && line == std::to_string(expected);
    ++expected;
    ++count;
  }
  CHECK(in_order);
  CHECK(count == 200000);
  p.wait();

  // A line longer than the 64 KiB read buffer, made by the child (a Windows command line is
  // limited to 32767 characters).
  const std::size_t long_size = 120000;
  proc::Popen q(cmd({"spew", std::to_string(long_size), "outln", "", "outln", "short"}),
                {.out = proc::pipe});
  std::vector<std::string> got;
  for (auto line : q.out().lines()) got.emplace_back(line);
  REQUIRE(got.size() == 2);
  CHECK(got[0].size() == long_size);
  CHECK(got[0].substr(0, 4) == "abcd");
  CHECK(got[1] == "short");
  q.wait();
}

TEST_CASE("pipe: read and read_all return what readline read ahead first") {
  proc::Popen p(cmd({"out", "head\nbody-bytes\ntail"}), {.out = proc::pipe});
  CHECK(p.out().readline() == "head\n");
  std::array<char, 4> buf{};
  std::size_t n = p.out().read(buf);
  CHECK(std::string(buf.data(), n) == "body");
  CHECK(p.out().read_all() == "-bytes\ntail");
  CHECK(p.out().read(buf) == 0);
  p.wait();

  proc::Popen q(cmd({"out", "x\nrest"}), {.out = proc::pipe});
  CHECK(q.out().readline() == "x\n");
  auto [out, err] = q.communicate();
  CHECK(out == "rest");
}

TEST_CASE("pipe: read_all of a large stream") {
  proc::Popen p(cmd({"spew", std::to_string(20 << 20)}), {.out = proc::pipe});
  std::string all = p.out().read_all();
  CHECK(all.size() == std::size_t(20 << 20));
  CHECK(all.substr(0, 3) == "abc");
  CHECK(all.back() == static_cast<char>('a' + ((20 << 20) - 1) % 26));
  p.wait();
}

TEST_CASE("pipe: close is idempotent, and a closed end throws logic_error on use") {
  proc::Popen p(cmd({"cat"}), {.in = proc::pipe, .out = proc::pipe});
  p.in().write("data");
  p.in().close();
  p.in().close();
  CHECK_FALSE(p.in().is_open());
  CHECK_THROWS_AS(p.in().write("more"), std::logic_error);
  CHECK(p.out().read_all() == "data");
  p.wait();
  proc::PipeEnd empty;
  CHECK_FALSE(empty);
  std::array<char, 1> b{};
  CHECK_THROWS_AS(empty.read(b), std::logic_error);
}

TEST_CASE("pipe: native_handle is usable with the OS, release gives it up") {
  proc::Popen p(cmd({"out", "z"}), {.out = proc::pipe});
  auto h = p.out().native_handle();
  CHECK(h != proc::PipeEnd().native_handle());
  proc::PipeEnd owned(p.out().release());
  CHECK_FALSE(p.out().is_open());
  CHECK(owned.native_handle() == h);
  CHECK(owned.read_all() == "z");
  p.wait();
}

// Issue 13: reads with a deadline.

TEST_CASE("pipe: readline(Duration) times out, then completes the same line") {
  proc::Popen p(cmd({"out", "hal", "sleep", "400", "outln", "f line", "outln", "next"}),
                {.out = proc::pipe});
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(p.out().readline(50ms), proc::TimeoutExpired);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(p.out().readline(20s) == "half line\n");  // the bytes of the first try were kept
  CHECK(p.out().readline(20s) == "next\n");
  CHECK(p.out().readline(20s) == std::nullopt);  // end of stream still reads as nullopt
  CHECK(p.wait() == 0);
}

TEST_CASE("pipe: read(span, Duration) times out, returns 0 at the end") {
  proc::Popen p(cmd({"sleep", "300", "out", "late"}), {.out = proc::pipe});
  char buf[16];
  CHECK_THROWS_AS(p.out().read(buf, 30ms), proc::TimeoutExpired);
  std::string got;
  for (std::size_t n; (n = p.out().read(buf, 20s)) > 0;) got.append(buf, n);
  CHECK(got == "late");
  CHECK(p.wait() == 0);
}
