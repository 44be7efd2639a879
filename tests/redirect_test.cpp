// proc::Redirect: devnull, files, append, borrowed descriptors, to_stdout, pipe ends.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.hpp"

using namespace std::chrono_literals;
using test::cmd;
using test::under_wine;

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

// Issue 13: terminals and tee.

TEST_CASE("redirect: tee to a file: the file and the capture get the same bytes") {
  auto path = std::filesystem::temp_directory_path() / "proc-tee-test.txt";
  auto r = proc::run(cmd({"spew", "300000", "err", "E"}),
                     {.out = proc::tee(proc::file(path)), .err = proc::pipe});
  CHECK(r.out.size() == 300000);
  CHECK(slurp(path) == r.out);
  CHECK(r.err == "E");
  // Appending, for stderr, through communicate.
  proc::Popen p(cmd({"err", "second"}), {.err = proc::tee(proc::append(path))});
  auto [out, err] = p.communicate();
  CHECK(err == "second");
  CHECK(slurp(path) == r.out + "second");
  // A descriptor as the target, through stream_lines.
  auto path2 = std::filesystem::temp_directory_path() / "proc-tee-test-2.txt";
  {
#if defined(_WIN32)
    std::ofstream(path2).close();
    proc::run(cmd({"lines", "3"}), {.out = proc::tee(proc::file(path2))});
#else
    int fd = ::open(path2.string().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    proc::Popen q(cmd({"lines", "3"}), {.out = proc::tee(proc::fd(fd))});
    std::vector<std::string> lines;
    q.stream_lines([&](std::string_view l) { lines.emplace_back(l); });
    ::close(fd);
    CHECK(lines == std::vector<std::string>{"1", "2", "3"});
#endif
  }
  CHECK(slurp(path2) == "1\n2\n3\n");
  std::filesystem::remove(path);
  std::filesystem::remove(path2);
  CHECK_THROWS_AS(proc::tee(proc::pipe), std::invalid_argument);
  CHECK_THROWS_AS(proc::run(cmd({"cat"}), {.in = proc::tee(proc::inherit)}), std::invalid_argument);
}

TEST_CASE("redirect: tee in pipelines and run_all") {
  auto path = std::filesystem::temp_directory_path() / "proc-tee-pipe.txt";
  auto r = proc::run_pipeline({cmd({"lines", "100"}), cmd({"cat"})},
                              {.out = proc::tee(proc::file(path))});
  CHECK(r.out == slurp(path));
  CHECK(r.out.size() == 292);
  auto path_err = std::filesystem::temp_directory_path() / "proc-tee-pipe-err.txt";
  auto e = proc::run_pipeline({cmd({"err", "a"}), cmd({"err", "b"})},
                              {.err = proc::tee(proc::file(path_err))});
  CHECK(e.err.size() == 2);
  CHECK(slurp(path_err) == e.err);
  auto rs =
      proc::run_all({proc::Command(cmd({"outln", "job"}), {.out = proc::tee(proc::file(path))})});
  CHECK(rs[0].process.out == "job\n");
  CHECK(slurp(path) == "job\n");
  std::filesystem::remove(path);
  std::filesystem::remove(path_err);
}

// The pty tests run on Windows too (ConPTY). Their child starts with the op "console": Wine
// leaves a pseudo-console child's NULL standard handles NULL where Windows gives it the
// console's (a no-op on POSIX). Enter is "\r": the console's Enter key, and on POSIX the
// terminal's ICRNL turns it into "\n".
TEST_CASE("redirect: pty streams are terminals, others are not") {
  auto all =
      proc::run(cmd({"console", "isatty"}), {.in = proc::pty, .out = proc::pty, .err = proc::pty});
  CHECK(all.out.find("in=1 out=1 err=1") != std::string::npos);
  CHECK(all.err.empty());  // out and err on the one terminal: everything comes through out
  auto some = proc::run(cmd({"console", "isatty"}),
                        {.in = proc::devnull, .out = proc::pty, .err = proc::pipe});
  CHECK(some.out.find("in=0 out=1 err=0") != std::string::npos);
  auto none = proc::run(cmd({"console", "isatty"}), {.in = proc::devnull, .out = proc::pipe});
  CHECK(none.out == "in=0 out=0 err=0\n");
}

TEST_CASE("redirect: the pty's size, set and resized") {
  auto r = proc::run(cmd({"console", "winsize"}), {.out = proc::pty});
  CHECK(r.out.find("24x80") != std::string::npos);  // the default
  auto big = proc::run(cmd({"console", "winsize"}),
                       {.out = proc::pty, .terminal_size = proc::TerminalSize{50, 132}});
  CHECK(big.out.find("50x132") != std::string::npos);
  proc::Popen p(cmd({"console", "readline", "winsize"}), {.in = proc::pty, .out = proc::pty});
  if (under_wine()) {
    // Wine's ResizePseudoConsole is not implemented (E_NOTIMPL): the error says so.
    CHECK_THROWS_AS(p.resize_terminal(33, 99), std::system_error);
    p.in().write("go\r");
    CHECK(p.wait() == 0);
  } else {
    p.resize_terminal(33, 99);
    p.in().write("go\r");
    std::string all;
    for (std::string_view l : p.out().lines()) all += std::string(l) + "\n";
    CHECK(all.find("33x99") != std::string::npos);
    CHECK(p.wait() == 0);
  }
  proc::Popen q(cmd({"exit", "0"}));
  CHECK_THROWS_AS(q.resize_terminal(1, 1), std::logic_error);
}

TEST_CASE("redirect: a pty's end of stream and returncode, a prompt without newline") {
  proc::Popen p(cmd({"console", "prompt", "Name? "}), {.in = proc::pty, .out = proc::pty});
  std::string seen;
  char buf[256];
  // (A console renders what the child wrote: the trailing space may come as a cursor move.)
  while (seen.find("Name?") == std::string::npos) {
    std::size_t n = p.out().read(buf, 10s);
    REQUIRE(n > 0);
    seen.append(buf, n);
  }
  p.in().write("Ada\r");
  std::string rest = p.out().read_all();  // ends at the child's exit (EIO read as the end)
  CHECK(rest.find("got:Ada") != std::string::npos);
  CHECK(p.wait() == 0);
  auto code = proc::run(cmd({"console", "outln", "x", "exit", "7"}), {.out = proc::pty});
  CHECK(code.returncode == 7);
#if defined(_WIN32)
  CHECK(code.out.find("x\r\n") != std::string::npos);  // among the console's VT sequences
#else
  CHECK(code.out == "x\r\n");  // a terminal turns \n into \r\n
#endif
}

TEST_CASE("redirect: a pty child whose grandchild holds the terminal") {
  auto t0 = std::chrono::steady_clock::now();
  auto r = proc::run(cmd({"console", "grandchild", "300", "outln", "parent done"}),
                     {.out = proc::pty, .timeout = 30s});
  CHECK(r.returncode == 0);
  CHECK(r.out.find("parent done") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < 20s);
}
