// Spawning from two threads at once: the rate against one thread (no global lock held across
// the spawn should give close to 2x on 2 cores).
//
//   bench_threads [--rounds=7] [--spawns=300]
//
// Each variant spawns and waits for the static no-op child `spawns` times per thread; the
// figure is spawns per second. The ratio of the 2-thread rate to the 1-thread rate is paired
// per round. The raw posix_spawn pair shows what the kernel and machine allow.

#include <proc/proc.hpp>
#include <thread>

#include "common.hpp"

namespace {

std::string noop;
int spawns = 300;

void raw_one() {
  char* argv[] = {noop.data(), nullptr};
  BENCH_CHECK(bench::raw_wait(bench::raw_spawn(noop.c_str(), argv)) == 0);
}
void proc_one() {
  proc::Popen p({noop});
  BENCH_CHECK(p.wait() == 0);
}

// Seconds per spawn (aggregate over all threads).
double run(int threads, void (*op)()) {
  auto t0 = bench::Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([op] {
      for (int i = 0; i < spawns; ++i) op();
    });
  for (auto& t : ts) t.join();
  return bench::seconds_since(t0) / (threads * spawns);
}

}  // namespace

int main(int argc, char** argv) {
  noop = bench::helper("bench_noop");
  spawns = static_cast<int>(bench::arg(argc, argv, "spawns", 300));
  int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 7));
  std::vector<bench::Variant> vs = {
      {"raw 1 thread", [] {}, 1, {}},
      {"raw 2 threads", [] {}, 1, {}},
      {"proc 1 thread", [] {}, 1, {}},
      {"proc 2 threads", [] {}, 1, {}},
  };
  struct Cfg {
    int threads;
    void (*op)();
  } cfg[] = {{1, raw_one}, {2, raw_one}, {1, proc_one}, {2, proc_one}};
  run(1, proc_one);
  for (int r = 0; r < rounds; ++r)
    for (std::size_t k = 0; k < vs.size(); ++k) {
      std::size_t i = (k + static_cast<std::size_t>(r)) % vs.size();
      vs[i].samples.push_back(run(cfg[i].threads, cfg[i].op));
    }
  std::printf("spawn rate, 1 vs 2 threads (median of %d rounds; %d spawns per thread)\n", rounds,
              spawns);
  for (const auto& v : vs)
    bench::emit("spawn rate", v.name, 1.0 / bench::median(v.samples), "/s", 1.0, "", "");
  // Scaling: rate(2 threads) / rate(1 thread) = time per spawn(1) / time per spawn(2).
  bench::emit("2-thread scaling", "raw posix_spawn", 1.0 / bench::median(vs[1].samples), "/s",
              bench::paired_ratio(vs[0].samples, vs[1].samples), "1 thread", "");
  bench::emit("2-thread scaling", "proc Popen+wait", 1.0 / bench::median(vs[3].samples), "/s",
              bench::paired_ratio(vs[2].samples, vs[3].samples), "1 thread", ">=1.8");
  return 0;
}
