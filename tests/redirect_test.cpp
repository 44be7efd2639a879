// proc::Redirect: devnull, files, append, borrowed descriptors, to_stdout, pipe ends.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.hpp"

using test::cmd;

static std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

static std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("proc-redirect-" + name + "-" + std::to_string(std::rand()));
}

TEST_CASE("redirect: devnull for each stream") {
  auto r = proc::run(cmd({"count-in", "out", "x", "err", "y"}),
                     {.in = proc::devnull, .out = proc::pipe, .err = proc::devnull});
  CHECK(r.out == "0\nx");
  CHECK(r.err.empty());
}

TEST_CASE("redirect: file truncates, append appends, file as input") {
  auto path = temp_file("out");
  proc::run(cmd({"out", "first"}), {.out = proc::file(path)});
  proc::run(cmd({"out", "second"}), {.out = proc::file(path)});
  CHECK(slurp(path) == "second");
  proc::run(cmd({"out", "+more", "err", "+err"}),
            {.out = proc::append(path), .err = proc::append(path)});
  CHECK(slurp(path) == "second+more+err");
  auto r = proc::run(cmd({"cat"}), {.in = proc::file(path), .out = proc::pipe});
  CHECK(r.out == "second+more+err");
  std::filesystem::remove(path);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.in = proc::file("/nonexistent/input")}),
                  std::system_error);
}

TEST_CASE("redirect: to_stdout merges stderr into stdout in order") {
  auto r = proc::run(cmd({"out", "1", "err", "2", "out", "3", "err", "4"}),
                     {.out = proc::pipe, .err = proc::to_stdout});
  CHECK(r.out == "1234");
  CHECK(r.err.empty());
  auto path = temp_file("merged");
  proc::run(cmd({"out", "a", "err", "b"}), {.out = proc::file(path), .err = proc::to_stdout});
  CHECK(slurp(path) == "ab");
  std::filesystem::remove(path);
}

TEST_CASE("redirect: a PipeEnd is consumed by the first child started with it") {
  proc::Popen producer(cmd({"out", "payload"}), {.out = proc::pipe});
  proc::Options opts{.in = producer.take_out(), .out = proc::pipe};
  proc::Options copy = opts;  // shares the pipe end
  auto r = proc::run(cmd({"cat"}), opts);
  CHECK(r.out == "payload");
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), copy), std::invalid_argument);
  producer.wait();
}

#if !defined(_WIN32)
#  include <unistd.h>
TEST_CASE("redirect: a borrowed descriptor is used and not closed") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  proc::run(cmd({"out", "via-fd"}), {.out = proc::fd(fds[1])});
  CHECK(::fcntl(fds[1], F_GETFD) != -1);  // still ours, still open
  ::close(fds[1]);
  char buf[32];
  auto n = ::read(fds[0], buf, sizeof buf);
  CHECK(std::string(buf, static_cast<std::size_t>(n)) == "via-fd");
  ::close(fds[0]);
  CHECK_THROWS_WITH(proc::run(cmd({"out", "x"}), {.out = proc::fd(999)}), Catch::Contains("999"));
}
#endif

TEST_CASE("redirect: a PipeEnd holding bytes that readline() read ahead is refused") {
  proc::Popen producer(cmd({"out", "first\nsecond\nthird\n"}), {.out = proc::pipe});
  REQUIRE(producer.out().readline() == "first\n");
  // The rest sits in the PipeEnd's read-ahead: a child given the raw pipe would never see it.
  try {
    proc::Redirect r(producer.take_out());
    FAIL("no exception");
  } catch (const std::logic_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("read ahead"));
  }
  producer.wait();
  // An end that holds nothing back is fine, even after reading from it.
  proc::Popen p2(cmd({"outln", "a", "sleep", "100", "outln", "b"}), {.out = proc::pipe});
  REQUIRE(p2.out().readline() == "a\n");
  auto r = proc::run(cmd({"cat"}), {.in = p2.take_out(), .out = proc::pipe});
  CHECK(r.out == "b\n");
  CHECK(p2.wait() == 0);
}
