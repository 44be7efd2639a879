// Signals and process groups: terminate, kill and stop a child; signal a whole process group
// so that grandchildren go too; read how a child ended with proc::ExitStatus.
#include <fmt/core.h>

#include <proc/proc.hpp>

#if defined(_WIN32)
int main() {
  fmt::print("Windows has no signals: terminate() and kill() both end a child with exit 1.\n");
  return 0;
}
#else
#  include <signal.h>  // SIGUSR1, SIGKILL, SIGINT

#  include <chrono>
#  include <optional>
#  include <string>

using namespace std::chrono_literals;

int main() {
  // [terminate]
  // terminate() sends SIGTERM, kill() SIGKILL, send_signal() anything; the returncode of a child
  // ended by signal N is -N, as in Python.
  proc::Popen sleeper({"sleep", "30"});
  sleeper.terminate();
  int rc = sleeper.wait();
  fmt::print("returncode {}: {}\n", rc, proc::ExitStatus(rc));  // -15: killed by SIGTERM
  // [terminate]
  if (rc != -15) return 1;

  // [send_signal]
  // A child that handles a signal decides for itself what it means: this one reports SIGUSR1
  // and exits with 0.
  proc::Popen handler({"sh", "-c",
                       "trap 'echo got USR1; exit 0' USR1; echo ready; "
                       "while :; do sleep 0.05; done"},
                      {.out = proc::pipe});
  handler.out().readline();  // "ready\n": the trap is installed
  handler.send_signal(SIGUSR1);
  fmt::print("{}", handler.out().readline().value_or("(nothing)\n"));
  fmt::print("handler {}\n", proc::ExitStatus(handler.wait()));  // exited with 0
  // [send_signal]

  // [stop]
  // stop(grace): SIGTERM, up to `grace` to exit, then SIGKILL. This child ignores SIGTERM.
  proc::Popen stubborn({"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"},
                       {.out = proc::pipe});
  stubborn.out().readline();
  auto start = std::chrono::steady_clock::now();
  proc::ExitStatus stopped(stubborn.stop(300ms));
  fmt::print("stubborn child {} after {} ms\n", stopped,
             std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - start)
                 .count());  // killed by SIGKILL after ~300 ms
  // [stop]
  if (stopped.signal() != SIGKILL) return 1;

  // [group]
  // A child started in a new session leads its own process group; signal_group() and
  // stop_group() reach every process in it, grandchildren included. The grandchildren here
  // hold our stdout pipe, so read_all() returning shows they are gone too.
  proc::Popen tree({"sh", "-c", "sleep 30 & sleep 30 & echo started; wait"},
                   {.out = proc::pipe, .start_new_session = true});
  tree.out().readline();  // "started\n"
  proc::ExitStatus tree_status(tree.stop_group(1s));
  std::string rest = tree.out().read_all();  // end-of-file: no process holds the pipe any more
  fmt::print("tree {}, pipe closed with {} bytes left\n", tree_status, rest.size());
  // [group]
  if (!tree_status.signaled()) return 1;

  // [status]
  // ExitStatus turns a returncode into a value with accessors and a text.
  for (int code : {0, 3, -SIGINT, -SIGKILL}) {
    proc::ExitStatus s(code);
    fmt::print("{:>4}: {:<18} exited={} code={} signal={}\n", code, proc::to_string(s), s.exited(),
               s.code().value_or(-1), s.signal().value_or(0));
  }
  // [status]
  return 0;
}
#endif
