// proc::mp::Process: the tutorial's first programs (Python's multiprocessing.Process) in C++.
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <proc/mp.hpp>
#include <string>
#include <thread>

using namespace std::chrono_literals;
namespace mp = proc::mp;

// [target]
// A plain function as the target: Process(target=info, args=("hello",)) in Python.
void info(std::string title) {
  fmt::print("{}: process {} (pid {}), parent pid {}\n", title, mp::current_process().name,
             mp::current_process().pid, mp::parent_pid());
  std::fflush(stdout);  // before the next process writes to the same terminal or pipe
}
// [target]

// [subclass]
// "Subclass Process and override run()": a function object whose fields travel with it.
struct Countdown {
  int from = 3;
  std::string label;
  int operator()() const {
    for (int i = from; i > 0; --i) fmt::print("{} {}\n", label, i);
    return from;
  }
};
// [subclass]

int main() {
  // [init]
  mp::init();  // first statement of main: in a child it runs the target and exits
  // [init]

  // [start_join]
  info("main line");
  mp::Process p(mp::fn<&info>, std::string("function f"));
  p.start();
  p.join();
  // [start_join]

  // [run_method]
  auto c = mp::spawn(Countdown{3, "countdown"});
  fmt::print("the countdown returned {}\n", c.join());
  // [run_method]

  // [terminate]
  // terminate() and is_alive(), as in Python's docs.
  auto sleeper = mp::spawn([] { std::this_thread::sleep_for(std::chrono::seconds(60)); });
  fmt::print("before terminate: alive {}\n", sleeper.is_alive());
  sleeper.terminate();
  try {
    sleeper.join();
  } catch (const mp::ProcessDied& e) {
    fmt::print("after terminate: alive {}, exitcode {}\n", sleeper.is_alive(), *sleeper.exitcode());
  }
  // [terminate]

  // [daemon]
  // A daemon child ends with its parent, however the parent ends: here the parent is a child
  // process that starts a daemon and then dies at once of SIGKILL (Windows: TerminateProcess).
  auto parent = mp::spawn([] {
    mp::Process d({.name = "the-daemon", .daemon = true},
                  [] { std::this_thread::sleep_for(std::chrono::seconds(60)); });
    d.start();
    std::this_thread::sleep_for(std::chrono::seconds(60));
  });
  std::this_thread::sleep_for(500ms);
  parent.kill();  // ~Process of the daemon never runs; the daemon goes anyway
  try {
    parent.join();
  } catch (const mp::ProcessDied&) {
    fmt::print("parent killed; its daemon goes with it\n");
  }
  // [daemon]
  return 0;
}
