// spawn+wait of a static no-op child, on each of proc's spawn paths and their raw baselines,
// from a small parent and from parents with 2 GiB and 8 GiB resident (touched, 4 KiB pages).
//
//   bench_spawn [--rounds=7] [--batch=200] [--sizes=0,2048,8192] (MiB resident)
//
// Raw baselines: posix_spawn + waitpid; vfork + execve + waitpid; fork + execve + waitpid.
// proc: Popen+wait and run() on the posix_spawn path; `.umask` (clone(CLONE_VM|CLONE_VFORK)
// path); `.pre_exec` (fork path, for comparison); run() with stdout captured vs raw
// posix_spawn with a pipe read to EOF.
//
// The resident sizes are interleaved within each round: the memory is touched up to the size,
// and given back with MADV_DONTNEED before the next round, so a slow drift of a shared machine
// hits every size alike. The big-parent figure is the ratio of a path at N MiB to the same
// path at 0 MiB in the same round.

#include <sys/mman.h>
#include <unistd.h>

#include <proc/proc.hpp>

#include "common.hpp"

namespace {

std::string noop;
char* noop_argv[2];

void raw_posix_spawn() {
  BENCH_CHECK(bench::raw_wait(bench::raw_spawn(noop.c_str(), noop_argv)) == 0);
}

// By name: bench_noop's directory is put last in PATH, so the search walks every entry.
void raw_spawnp() {
  char name[] = "bench_noop";
  char* argv[] = {name, nullptr};
  pid_t pid = -1;
  BENCH_CHECK(::posix_spawnp(&pid, name, nullptr, nullptr, argv, environ) == 0);
  BENCH_CHECK(bench::raw_wait(pid) == 0);
}
void proc_by_name() {
  proc::Popen p({"bench_noop"});
  BENCH_CHECK(p.wait() == 0);
}

void raw_vfork() {
  pid_t pid = ::vfork();
  if (pid == 0) {
    ::execve(noop_argv[0], noop_argv, environ);
    ::_exit(127);
  }
  BENCH_CHECK(pid > 0);
  BENCH_CHECK(bench::raw_wait(pid) == 0);
}

void raw_fork() {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execve(noop_argv[0], noop_argv, environ);
    ::_exit(127);
  }
  BENCH_CHECK(pid > 0);
  BENCH_CHECK(bench::raw_wait(pid) == 0);
}

void raw_pipe_capture() {
  int fds[2];
  bench::raw_pipe(fds);
  pid_t pid = bench::raw_spawn(noop.c_str(), noop_argv, -1, fds[1]);
  ::close(fds[1]);
  char buf[4096];
  BENCH_CHECK(::read(fds[0], buf, sizeof buf) == 0);
  ::close(fds[0]);
  BENCH_CHECK(bench::raw_wait(pid) == 0);
}

void proc_popen() {
  proc::Popen p({noop});
  BENCH_CHECK(p.wait() == 0);
}
void proc_run() { BENCH_CHECK(proc::run({noop}).returncode == 0); }
void proc_umask() {
  proc::Popen p({noop}, {.umask = 022});
  BENCH_CHECK(p.wait() == 0);
}
void proc_pre_exec() {
  proc::Popen p({noop}, {.pre_exec = [] {}});
  BENCH_CHECK(p.wait() == 0);
}
void proc_capture() {
  auto r = proc::run({noop}, {.out = proc::pipe});
  BENCH_CHECK(r.returncode == 0 && r.out.empty());
}

// The parent's resident memory: one mapping touched up to the wanted size.
struct Resident {
  char* base = nullptr;
  std::size_t cap = 0, touched = 0;
  explicit Resident(std::size_t max) : cap(max) {
    if (!max) return;
    void* p = ::mmap(nullptr, max, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    BENCH_CHECK(p != MAP_FAILED);
    base = static_cast<char*>(p);
    ::madvise(base, max, MADV_NOHUGEPAGE);  // ordinary 4 KiB pages, as a malloc heap has
  }
  void set(std::size_t bytes) {
    if (bytes > touched) {
      for (std::size_t off = touched; off < bytes; off += 4096) base[off] = 1;
    } else if (bytes < touched) {
      ::madvise(base + bytes, touched - bytes, MADV_DONTNEED);
    }
    touched = bytes;
  }
};

}  // namespace

int main(int argc, char** argv) {
  noop = bench::helper("bench_noop");
  noop_argv[0] = noop.data();
  noop_argv[1] = nullptr;
  const char* path = std::getenv("PATH");
  std::string new_path = std::string(path ? path : "/usr/bin:/bin") + ":" + bench::self_dir();
  ::setenv("PATH", new_path.c_str(), 1);
  int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 7));
  int batch = static_cast<int>(bench::arg(argc, argv, "batch", 200));
  std::string sizes_arg = bench::arg_str(argc, argv, "sizes", "0,2048,8192");
  std::vector<std::size_t> sizes;
  for (std::size_t pos = 0; pos < sizes_arg.size();) {
    std::size_t comma = sizes_arg.find(',', pos);
    if (comma == std::string::npos) comma = sizes_arg.size();
    sizes.push_back(std::stoull(sizes_arg.substr(pos, comma - pos)) << 20);
    pos = comma + 1;
  }
  Resident mem(*std::max_element(sizes.begin(), sizes.end()));

  struct Path {
    const char* name;
    void (*op)();
    bool fork_like;  // cost grows with the parent: fewer operations per round when big
  };
  const Path paths[] = {
      {"raw posix_spawn+waitpid", raw_posix_spawn, false},
      {"raw vfork+execve", raw_vfork, false},
      {"raw fork+execve", raw_fork, true},
      {"raw posix_spawnp (PATH search)", raw_spawnp, false},
      {"raw posix_spawn+pipe", raw_pipe_capture, false},
      {"proc Popen+wait", proc_popen, false},
      {"proc run", proc_run, false},
      {"proc Popen by name (PATH search)", proc_by_name, false},
      {"proc clone_vfork (.umask)", proc_umask, false},
      {"proc fork (.pre_exec)", proc_pre_exec, true},
      {"proc run .out=pipe", proc_capture, false},
  };
  // samples[size][path]
  std::vector<std::vector<bench::Variant>> per_size(sizes.size());
  for (std::size_t s = 0; s < sizes.size(); ++s)
    for (const auto& p : paths) {
      int b = batch;
      if (p.fork_like && sizes[s] >= (1ull << 30)) b = std::max(3, batch / 40);
      per_size[s].push_back({p.name, p.op, b, {}});
    }

  for (const auto& p : paths) p.op();  // warm-up
  // The fork-based paths go last in each round, followed by a pause: after a fork of a big
  // parent the kernel keeps freeing the copied page tables for a while, which would otherwise
  // slow down whichever variant came next.
  std::vector<std::size_t> order, forks;
  for (std::size_t i = 0; i < std::size(paths); ++i)
    (paths[i].fork_like ? forks : order).push_back(i);
  // Within a round the vfork-like variants are interleaved operation by operation (each one
  // timed on its own), and a round's sample is the median operation time: a burst of load from
  // elsewhere on the machine then hits every variant alike and moves no median.
  std::vector<std::vector<double>> times(std::size(paths));
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t s = 0; s < sizes.size(); ++s) {
      mem.set(sizes[s]);
      auto& vs = per_size[s];
      for (auto& t : times) t.clear();
      for (int k = 0; k < batch; ++k)
        for (std::size_t j = 0; j < order.size(); ++j) {
          std::size_t i = order[(j + static_cast<std::size_t>(k + r)) % order.size()];
          auto t0 = bench::Clock::now();
          vs[i].op();
          times[i].push_back(bench::seconds_since(t0));
        }
      for (std::size_t i : forks)
        for (int k = 0; k < vs[i].batch; ++k) {
          auto t0 = bench::Clock::now();
          vs[i].op();
          times[i].push_back(bench::seconds_since(t0));
        }
      for (std::size_t i = 0; i < vs.size(); ++i) vs[i].samples.push_back(bench::median(times[i]));
      if (sizes[s]) ::usleep(300000);
    }
    mem.set(0);
  }

  for (std::size_t s = 0; s < sizes.size(); ++s) {
    std::string fig = "spawn+wait, parent " + std::to_string(sizes[s] >> 20) + " MiB resident";
    bench::report(
        fig, per_size[s], "raw posix_spawn+waitpid", 1e6, "us",
        s == 0 ? std::vector<std::pair<std::string, std::string>>{{"proc Popen+wait", "<=1.05"},
                                                                  {"proc run", "<=1.05"},
                                                                  {"proc clone_vfork (.umask)",
                                                                   "<=1.05"}}
               : std::vector<std::pair<std::string, std::string>>{});
    if (s == 0) {
      // The capture figure is against the raw spawn that also reads a pipe.
      std::printf("spawn+wait with stdout captured (median of %d rounds)\n", rounds);
      const auto& base = bench::find(per_size[0], "raw posix_spawn+pipe");
      const auto& v = bench::find(per_size[0], "proc run .out=pipe");
      bench::emit("spawn+wait, one capture pipe", "proc run .out=pipe",
                  bench::median(v.samples) * 1e6, "us",
                  bench::paired_ratio(v.samples, base.samples), "raw posix_spawn+pipe", "<=1.10");
      const auto& bp = bench::find(per_size[0], "raw posix_spawnp (PATH search)");
      const auto& vp = bench::find(per_size[0], "proc Popen by name (PATH search)");
      bench::emit("spawn+wait, program found through PATH", vp.name,
                  bench::median(vp.samples) * 1e6, "us",
                  bench::paired_ratio(vp.samples, bp.samples), bp.name, "");
    } else {
      std::printf("growth with the parent's size: %zu MiB vs 0 MiB, same path, same round\n",
                  sizes[s] >> 20);
      for (std::size_t i = 0; i < per_size[s].size(); ++i) {
        const auto& big = per_size[s][i];
        const auto& small = per_size[0][i];
        bool target = big.name.rfind("proc", 0) == 0 && big.name != "proc fork (.pre_exec)";
        bench::emit("big parent " + std::to_string(sizes[s] >> 30) + " GiB / small", big.name,
                    bench::median(big.samples) * 1e6, "us",
                    bench::paired_ratio(big.samples, small.samples), "same path at 0 MiB",
                    target ? "<=1.05" : "");
      }
    }
  }
  return 0;
}
