// `seq 10000000 | grep 7 | wc -l`: proc::run_pipeline against three raw posix_spawns wired
// with pipes.
//
//   bench_pipeline [--rounds=7] [--n=10000000]
//
// Every variant checks the count wc prints (the numbers in 1..n with a digit 7) and every
// stage's status.

#include <proc/proc.hpp>

#include "common.hpp"

namespace {

std::string seq, grep, wc, n, expected;

void raw_pipeline() {
  int a[2], b[2], c[2];
  bench::raw_pipe(a);
  bench::raw_pipe(b);
  bench::raw_pipe(c);
  std::string seven = "7", dash_l = "-l";
  char* argv1[] = {seq.data(), n.data(), nullptr};
  char* argv2[] = {grep.data(), seven.data(), nullptr};
  char* argv3[] = {wc.data(), dash_l.data(), nullptr};
  pid_t p1 = bench::raw_spawn(seq.c_str(), argv1, -1, a[1]);
  ::close(a[1]);
  pid_t p2 = bench::raw_spawn(grep.c_str(), argv2, a[0], b[1]);
  ::close(a[0]);
  ::close(b[1]);
  pid_t p3 = bench::raw_spawn(wc.c_str(), argv3, b[0], c[1]);
  ::close(b[0]);
  ::close(c[1]);
  char* out = nullptr;
  std::size_t got = bench::raw_read_all(c[0], &out);
  ::close(c[0]);
  std::string text(out, got);
  std::free(out);
  BENCH_CHECK(bench::raw_wait(p1) == 0 && bench::raw_wait(p2) == 0 && bench::raw_wait(p3) == 0);
  BENCH_CHECK(text == expected);
}

void proc_run_pipeline() {
  auto r = proc::run_pipeline({{seq, n}, {grep, "7"}, {wc, "-l"}}, {.out = proc::pipe});
  BENCH_CHECK(r.returncodes == std::vector<int>({0, 0, 0}));
  BENCH_CHECK(r.out == expected);
}

void proc_command_pipe() {
  auto r = (proc::Command{seq, n} | proc::Command{grep, "7"} | proc::Command{wc, "-l"})
               .run({.out = proc::pipe});
  BENCH_CHECK(r.returncodes == std::vector<int>({0, 0, 0}));
  BENCH_CHECK(r.out == expected);
}

}  // namespace

int main(int argc, char** argv) {
  seq = bench::which("seq");
  grep = bench::which("grep");
  wc = bench::which("wc");
  long long count = bench::arg(argc, argv, "n", 10000000);
  n = std::to_string(count);
  long long with7 = 0;
  for (long long i = 1; i <= count; ++i)
    for (long long k = i; k; k /= 10)
      if (k % 10 == 7) {
        ++with7;
        break;
      }
  expected = std::to_string(with7) + "\n";
  int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 7));
  std::vector<bench::Variant> vs = {
      {"raw 3x posix_spawn", raw_pipeline, 1, {}},
      {"proc run_pipeline", proc_run_pipeline, 1, {}},
      {"proc Command operator-pipe", proc_command_pipe, 1, {}},
  };
  bench::filter(vs, argc, argv);  // --only=NAME, for profiling one variant
  bench::run_rounds(vs, rounds);
  bench::report("pipeline seq " + n + ", grep 7, wc -l", vs, vs.front().name, 1e3, "ms",
                {{"proc run_pipeline", "<=1.02"}, {"proc Command operator-pipe", "<=1.02"}});
  return 0;
}
