// 1,000 children alive at once, each with stdout piped, all drained and reaped.
//
//   bench_many [--children=1000] [--rounds=3] [--bytes=100000]
//
// Each child (bench_child gate N) writes N bytes (more than a pipe holds, so it blocks) and
// then reads its stdin, a pipe shared by all of them, until EOF. When all are started the
// parent checks that every one is still running, closes the gate, drains every stdout to EOF
// and reaps every child. RLIMIT_NOFILE is raised here (the library never touches it). Raw
// baseline: pipe2 + posix_spawn, read to EOF, waitpid.

#include <proc/proc.hpp>

#include "common.hpp"

namespace {

std::string child;
int children = 1000;
std::size_t bytes = 100000;

void raw_many() {
  int gate[2];
  bench::raw_pipe(gate);
  std::string op = "gate", n = std::to_string(bytes);
  char* argv[] = {child.data(), op.data(), n.data(), nullptr};
  std::vector<pid_t> pids;
  std::vector<int> outs;
  for (int i = 0; i < children; ++i) {
    int fds[2];
    bench::raw_pipe(fds);
    pids.push_back(bench::raw_spawn(child.c_str(), argv, gate[0], fds[1]));
    ::close(fds[1]);
    outs.push_back(fds[0]);
  }
  for (pid_t pid : pids) {
    siginfo_t si{};
    BENCH_CHECK(::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0);
    BENCH_CHECK(si.si_pid == 0);  // still running
  }
  ::close(gate[0]);
  ::close(gate[1]);
  for (int fd : outs) {
    BENCH_CHECK(bench::raw_read_all(fd) == bytes);
    ::close(fd);
  }
  for (pid_t pid : pids) BENCH_CHECK(bench::raw_wait(pid) == 0);
}

void proc_many() {
  int gate[2];
  bench::raw_pipe(gate);
  std::vector<proc::Popen> ps;
  ps.reserve(static_cast<std::size_t>(children));
  std::string n = std::to_string(bytes);
  for (int i = 0; i < children; ++i)
    ps.emplace_back(std::vector<std::string>{child, "gate", n},
                    proc::Options{.in = proc::fd(gate[0]), .out = proc::pipe});
  for (auto& p : ps) BENCH_CHECK(!p.poll());  // all alive at once
  ::close(gate[0]);
  ::close(gate[1]);
  for (auto& p : ps) BENCH_CHECK(p.out().read_all().size() == bytes);
  for (auto& p : ps) BENCH_CHECK(p.wait() == 0);
}

}  // namespace

int main(int argc, char** argv) {
  child = bench::helper("bench_child");
  children = static_cast<int>(bench::arg(argc, argv, "children", 1000));
  bytes = static_cast<std::size_t>(bench::arg(argc, argv, "bytes", 100000));
  int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 3));
  rlim_t limit = bench::raise_nofile();
  BENCH_CHECK(limit >= static_cast<rlim_t>(3 * children + 64));
  std::vector<bench::Variant> vs = {
      {"raw pipe2+posix_spawn", raw_many, 1, {}},
      {"proc Popen", proc_many, 1, {}},
  };
  bench::filter(vs, argc, argv);  // --only=NAME, for profiling one variant
  bench::run_rounds(vs, rounds);
  for (auto& v : vs)
    for (double& s : v.samples) s /= children;
  bench::report(std::to_string(children) + " children alive at once, stdout piped", vs,
                vs.front().name, 1e6, "us/child", {{"proc Popen", "all reaped"}});
  return 0;
}
