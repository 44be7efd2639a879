// Many children at once (SPEC §9, §11):
//
//   - run_all of N `bench_noop`s at jobs = 2, against N sequential raw posix_spawn+waitpid / 2
//     (target <= 1.10x), a thread per child (two at a time, each proc::run), raw posix_spawn
//     with two waiting threads, and raw posix_spawn from one thread's ppoll loop over pidfds
//     (run_all's own shape, by hand);
//   - wait_any over 100 running children, one of which has exited, against a raw ppoll over
//     their pidfds and a waitid of the ready one.
//
//   bench_run_all [--rounds=7] [--n=1000] [--children=100] [--calls=2000]

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <proc/proc.hpp>
#include <semaphore>
#include <thread>
#include <vector>

#include "common.hpp"

int main(int argc, char** argv) {
  const int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 7));
  const int n = static_cast<int>(bench::arg(argc, argv, "n", 1000));
  const int children = static_cast<int>(bench::arg(argc, argv, "children", 100));
  const int calls = static_cast<int>(bench::arg(argc, argv, "calls", 2000));
  std::string noop = bench::helper("bench_noop");
  char* noop_argv[2] = {noop.data(), nullptr};

  {
    std::vector<proc::Command> cmds(static_cast<std::size_t>(n),
                                    proc::Command(std::vector<std::string>{noop}));
    std::vector<bench::Variant> vs{
        {"sequential raw posix_spawn+waitpid / 2",
         [&] {
           for (int i = 0; i < n; ++i)
             BENCH_CHECK(bench::raw_wait(bench::raw_spawn(noop.c_str(), noop_argv)) == 0);
         },
         1},
        {"run_all(jobs = 2)",
         [&] {
           auto rs = proc::run_all(cmds, {.jobs = 2});
           for (auto& r : rs) BENCH_CHECK(r.ok());
         },
         1},
        {"a thread per child, 2 at a time (proc::run)",
         [&] {
           std::counting_semaphore<2> slots(2);
           std::vector<std::thread> ts;
           std::atomic<int> bad{0};
           ts.reserve(static_cast<std::size_t>(n));
           for (int i = 0; i < n; ++i) {
             slots.acquire();
             ts.emplace_back([&] {
               if (proc::run({noop}).returncode != 0) ++bad;
               slots.release();
             });
           }
           for (auto& t : ts) t.join();
           BENCH_CHECK(bad == 0);
         },
         1},
        {"raw one-thread loop: posix_spawn, ppoll over 2 pidfds",
         // What run_all does, by hand: one thread keeps 2 children running and sleeps in one
         // ppoll over their pidfds. The cost of one thread starting every child in turn.
         [&] {
           int started = 0, done = 0;
           pollfd fds[2];
           pid_t pids[2];
           auto start = [&](int k) {
             pids[k] = bench::raw_spawn(noop.c_str(), noop_argv);
             fds[k] = {static_cast<int>(::syscall(SYS_pidfd_open, pids[k], 0)), POLLIN, 0};
             BENCH_CHECK(fds[k].fd >= 0);
             ++started;
           };
           for (int k = 0; k < 2 && started < n; ++k) start(k);
           while (done < n) {
             BENCH_CHECK(::ppoll(fds, 2, nullptr, nullptr) >= 1);
             for (int k = 0; k < 2; ++k) {
               if (fds[k].fd < 0 || !fds[k].revents) continue;
               BENCH_CHECK(bench::raw_wait(pids[k]) == 0);
               ::close(fds[k].fd);
               fds[k] = {-1, 0, 0};
               ++done;
               if (started < n) start(k);
             }
           }
         },
         1},
        {"raw posix_spawn, 2 threads",
         [&] {
           std::atomic<int> next{0};
           auto worker = [&] {
             while (next.fetch_add(1) < n)
               BENCH_CHECK(bench::raw_wait(bench::raw_spawn(noop.c_str(), noop_argv)) == 0);
           };
           std::thread a(worker), b(worker);
           a.join();
           b.join();
         },
         1},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    // The sequential baseline ran n spawns one after another: halve it (2 jobs' worth of work
    // at once on 2 cores is the ideal), then every figure is per child.
    for (auto& v : vs) {
      double scale = v.name.rfind("sequential", 0) == 0 ? 0.5 : 1.0;
      for (auto& s : v.samples) s = s * scale / n;
    }
    bench::report("run_all of many no-op children", vs, "sequential raw posix_spawn+waitpid / 2",
                  1e6, "us/child", {{"run_all(jobs = 2)", "<=1.10"}});
  }

  {
    // 100 children that sleep, one that has exited (unreaped until the call reaps it, then a
    // fresh one takes its place, so every call finds exactly one).
    std::vector<proc::Popen> kids;
    kids.reserve(static_cast<std::size_t>(children));
    for (int i = 0; i < children; ++i)
      kids.emplace_back(std::vector<std::string>{bench::helper("bench_child"), "stamp", "600000"},
                        proc::Options{.on_destroy = proc::OnDestroy::kill});
    std::vector<int> pidfds;
    for (auto& k : kids) pidfds.push_back(static_cast<int>(::syscall(SYS_pidfd_open, k.pid(), 0)));
    // The exited one: each variant reaps a fresh `bench_noop` placed last.
    std::vector<bench::Variant> vs{
        {"raw ppoll over the pidfds + waitid",
         [&] {
           pid_t pid = bench::raw_spawn(noop.c_str(), noop_argv);
           int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
           std::vector<pollfd> fds;
           for (int f : pidfds) fds.push_back({f, POLLIN, 0});
           fds.push_back({fd, POLLIN, 0});
           BENCH_CHECK(::ppoll(fds.data(), fds.size(), nullptr, nullptr) >= 1);
           std::size_t ready = 0;
           while (!fds[ready].revents) ++ready;
           BENCH_CHECK(ready == fds.size() - 1);
           siginfo_t si{};
           BENCH_CHECK(::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED) == 0);
           ::close(fd);
         },
         calls / 10},
        {"wait_any over the Popens",
         [&] {
           kids.emplace_back(std::vector<std::string>{noop});
           auto i = proc::wait_any(kids);
           BENCH_CHECK(i && *i == kids.size() - 1);
           kids.pop_back();
         },
         calls / 10},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("wait_any over 100 children", vs, "raw ppoll over the pidfds + waitid", 1e6,
                  "us");
    for (int f : pidfds) ::close(f);
  }
  return 0;
}
