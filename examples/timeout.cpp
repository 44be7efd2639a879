// Timeouts: a run-style helper kills a child that takes too long and still hands back what
// the child wrote before that; Popen can wait with a deadline and decide what to do itself.
#include <fmt/core.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <proc/proc.hpp>
#include <string>

using namespace std::chrono_literals;

namespace {
long long elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}
}  // namespace

int main() {
  // [run_timeout]
  // The child prints two lines at once, then hangs. After 300 ms proc kills it (its whole
  // process group when it leads one), reaps it, and throws TimeoutExpired with the partial
  // output: nothing written before the deadline is lost.
  try {
    proc::run({"sh", "-c", "echo step 1; echo step 2; exec sleep 30"},
              {.capture_output = true, .timeout = 300ms});
    return 1;  // not reached
  } catch (const proc::TimeoutExpired& e) {
    fmt::print("caught: {}\n", e.what());
    fmt::print("partial output ({} after {} ms):\n{}", e.out.size() == 14 ? "all of it" : "some",
               std::chrono::duration_cast<std::chrono::milliseconds>(e.timeout).count(), e.out);
    if (e.out != "step 1\nstep 2\n") return 1;
  }
  // [run_timeout]

  // [grandchild]
  // A grandchild that inherited stdout cannot keep the call waiting: after killing the child,
  // proc reads the pipes only for a short grace (250 ms) and then gives up on them.
  auto start = std::chrono::steady_clock::now();
  try {
    proc::run({"sh", "-c", "sleep 2 & echo started; wait"},
              {.out = proc::pipe, .err = proc::devnull, .timeout = 200ms});
  } catch (const proc::TimeoutExpired& e) {
    fmt::print("gave up after {} ms with {:?}; the orphaned sleep ends by itself\n",
               elapsed_ms(start), e.out);
  }
  // [grandchild]

  // [group]
  // Better: start the child in a new session (its own process group). On timeout proc then
  // kills the whole group, grandchildren included.
  start = std::chrono::steady_clock::now();
  try {
    proc::run({"sh", "-c", "sleep 30 & echo started; wait"},
              {.out = proc::pipe, .timeout = 200ms, .start_new_session = true});
  } catch (const proc::TimeoutExpired& e) {
    fmt::print("group killed after {} ms with {:?}\n", elapsed_ms(start), e.out);
  }
  // [group]

  // [grace]
  // A grace lets the child clean up: at the timeout proc sends SIGTERM (to the group when the
  // child leads one), waits up to kill_grace, and only then sends SIGKILL. This child removes
  // its lock file on SIGTERM; without a grace it would be killed at once and leave it behind.
  // (The timeout is long enough for a loaded machine to have the shell set up its trap.)
  auto lock = std::filesystem::temp_directory_path() / "proc-example-grace.lock";
  std::string script =
      "trap 'echo cleaning up; rm -f \"$0\"; exit 143' TERM; touch \"$0\";"
      "echo working; while :; do sleep 0.05; done";
  start = std::chrono::steady_clock::now();
  try {
    proc::run({"sh", "-c", script, lock.string()},
              {.out = proc::pipe, .timeout = 1s, .kill_grace = 2s});
  } catch (const proc::TimeoutExpired& e) {
    fmt::print("after {} ms: {:?}, lock file {}\n", elapsed_ms(start), e.out,
               std::filesystem::exists(lock) ? "left behind" : "removed");
    if (!e.out.ends_with("cleaning up\n") || std::filesystem::exists(lock)) return 1;
  }
  // [grace]

  // [wait_for]
  // With Popen the deadline is yours to handle: wait_for returns nullopt while the child runs.
  proc::Popen p({"sleep", "30"});
  std::optional<int> rc = p.wait_for(100ms);
  fmt::print("after 100 ms: {}\n", rc ? "finished" : "still running");
  int status = p.stop(1s);  // SIGTERM, up to 1 s to exit, then SIGKILL
  fmt::print("stopped: {}\n", proc::ExitStatus(status));
  // [wait_for]
  if (rc || status == 0) return 1;

  // [communicate]
  // communicate() with a timeout leaves the child running; a second call carries on and
  // returns the whole output, as Python's does.
  proc::Popen slow({"sh", "-c", "echo first; sleep 0.5; echo second"}, {.out = proc::pipe});
  std::string out;
  try {
    out = slow.communicate({}, 100ms).out;
  } catch (const proc::TimeoutExpired& e) {
    fmt::print("not done yet, so far {:?}\n", e.out);
    out = slow.communicate().out;  // no timeout this time
  }
  fmt::print("whole output: {:?}\n", out);
  // [communicate]
  return out == "first\nsecond\n" ? 0 : 1;
}
