// Iterating the lines of `seq N`: proc's PipeEnd::lines() against a raw read loop.
//
//   bench_lines [--rounds=7] [--counts=100000,1000000,10000000]
//
// Raw baseline: read() 64 KiB at a time and memchr for '\n', each line a string_view (a line
// split across reads is carried over). Others: PipeEnd::lines(), Popen::stream_lines(),
// PipeEnd::readline(), and getline(3) on fdopen() for reference. Every variant checks the
// line count and the total length of the lines.

#include <proc/proc.hpp>

#include "common.hpp"

namespace {

std::string seq;
std::size_t count = 0;
std::size_t expected_chars = 0;

struct Tally {
  std::size_t lines = 0, chars = 0;
  void add(std::string_view l) {
    ++lines;
    chars += l.size();
  }
  void check() const { BENCH_CHECK(lines == count && chars == expected_chars); }
};

// Starts `seq count` with raw calls; its stdout is the returned pipe's read end `fds[0]`.
pid_t raw_start_seq(int (&fds)[2]) {
  bench::raw_pipe(fds);
  std::string n = std::to_string(count);
  char* argv[] = {seq.data(), n.data(), nullptr};
  pid_t pid = bench::raw_spawn(seq.c_str(), argv, -1, fds[1]);
  ::close(fds[1]);
  return pid;
}

void raw_memchr() {
  int fds[2];
  pid_t pid = raw_start_seq(fds);
  Tally t;
  static char buf[2 * 65536];
  std::size_t have = 0;
  for (;;) {
    ssize_t r = ::read(fds[0], buf + have, 65536);
    if (r < 0 && errno == EINTR) continue;
    BENCH_CHECK(r >= 0);
    if (r == 0) break;
    std::size_t end = have + static_cast<std::size_t>(r), begin = 0;
    while (const void* nl = std::memchr(buf + begin, '\n', end - begin)) {
      std::size_t at = static_cast<std::size_t>(static_cast<const char*>(nl) - buf);
      t.add(std::string_view(buf + begin, at - begin));
      begin = at + 1;
    }
    have = end - begin;
    std::memmove(buf, buf + begin, have);
  }
  if (have) t.add(std::string_view(buf, have));
  ::close(fds[0]);
  BENCH_CHECK(bench::raw_wait(pid) == 0);
  t.check();
}

void raw_getline() {
  int fds[2];
  pid_t pid = raw_start_seq(fds);
  FILE* f = ::fdopen(fds[0], "r");
  char* line = nullptr;
  std::size_t cap = 0;
  Tally t;
  ssize_t len;
  while ((len = ::getline(&line, &cap, f)) > 0)
    t.add(std::string_view(line, static_cast<std::size_t>(len) - (line[len - 1] == '\n')));
  std::free(line);
  std::fclose(f);
  BENCH_CHECK(bench::raw_wait(pid) == 0);
  t.check();
}

void proc_lines() {
  proc::Popen p({seq, std::to_string(count)}, {.out = proc::pipe});
  Tally t;
  for (std::string_view l : p.out().lines()) t.add(l);
  BENCH_CHECK(p.wait() == 0);
  t.check();
}

void proc_stream_lines() {
  proc::Popen p({seq, std::to_string(count)}, {.out = proc::pipe});
  Tally t;
  BENCH_CHECK(p.stream_lines([&](std::string_view l) { t.add(l); }) == 0);
  t.check();
}

void proc_readline() {
  proc::Popen p({seq, std::to_string(count)}, {.out = proc::pipe});
  Tally t;
  while (auto l = p.out().readline()) t.add(std::string_view(*l).substr(0, l->size() - 1));
  BENCH_CHECK(p.wait() == 0);
  t.check();
}

}  // namespace

int main(int argc, char** argv) {
  seq = bench::which("seq");
  int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 7));
  std::string counts = bench::arg_str(argc, argv, "counts", "100000,1000000,10000000");
  for (std::size_t pos = 0; pos < counts.size();) {
    std::size_t comma = counts.find(',', pos);
    if (comma == std::string::npos) comma = counts.size();
    count = std::stoull(counts.substr(pos, comma - pos));
    pos = comma + 1;
    expected_chars = 0;
    for (std::size_t digits = 1, lo = 1; lo <= count; ++digits, lo *= 10)
      expected_chars += digits * (std::min(count, lo * 10 - 1) - lo + 1);

    int batch = count >= 10000000 ? 1 : static_cast<int>(10000000 / count / 2);
    std::vector<bench::Variant> vs = {
        {"raw read 64 KiB + memchr", raw_memchr, batch, {}},
        {"raw getline(3)", raw_getline, batch, {}},
        {"proc lines()", proc_lines, batch, {}},
        {"proc stream_lines", proc_stream_lines, batch, {}},
        {"proc readline", proc_readline, batch, {}},
    };
    bench::filter(vs, argc, argv);  // --only=NAME, for profiling one variant
    bench::run_rounds(vs, rounds);
    for (auto& v : vs)
      for (double& s : v.samples) s /= static_cast<double>(count);  // per line
    bench::report("lines of seq " + std::to_string(count), vs, vs.front().name, 1e9, "ns/line",
                  count == 10000000
                      ? std::vector<std::pair<std::string, std::string>>{{"proc lines()", "<=1.25"}}
                      : std::vector<std::pair<std::string, std::string>>{});
  }
  return 0;
}
