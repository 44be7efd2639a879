// A child that dies with its parent (`kill_on_parent_exit`, multiprocessing's `daemon`).
//
// To show it, this program starts a copy of itself as an "intermediate" process. The
// intermediate starts a long `sleep` and exits at once, without waiting for it. The sleep
// inherits the intermediate's stdout, a pipe that we read: the pipe reaches end-of-file only
// when every process holding it is gone, so how long that takes tells whether the sleep
// outlived its parent.
//
// Linux: PR_SET_PDEATHSIG (SIGKILL), which fires when the *thread* that started the child ends,
// so start such children from a thread that lives as long as the process (here: main).
// Windows: a job object closed with the parent. macOS has no equivalent: std::system_error.
#include <fmt/core.h>

#include <chrono>
#include <optional>
#include <proc/proc.hpp>
#include <string>
#include <string_view>
#include <system_error>

using namespace std::chrono_literals;

namespace {

constexpr int unsupported = 3;

// The intermediate: start `sleep SECONDS` (with or without kill_on_parent_exit) and exit.
int intermediate(bool kill_on_parent_exit, const char* seconds) {
  try {
    // [daemon]
    // The sleep is killed when this process exits; on_destroy = detach lets ~Popen return
    // without waiting for it.
    proc::Popen worker({"sleep", seconds}, {.kill_on_parent_exit = kill_on_parent_exit,
                                            .on_destroy = proc::OnDestroy::detach});
    // [daemon]
    fmt::print("intermediate started `sleep {}` (pid {}) and exits\n", seconds, worker.pid());
    return 0;
  } catch (const std::system_error& e) {
    fmt::print("kill_on_parent_exit is not supported here: {}\n", e.what());
    return unsupported;
  }
}

// Runs the intermediate with its stdout piped to us. Returns how many milliseconds passed until
// that pipe closed, or nullopt if it was still open after `patience`.
std::optional<long long> run_intermediate(const char* self, const char* mode, const char* seconds,
                                          proc::Duration patience) {
  auto start = std::chrono::steady_clock::now();
  proc::Popen p({self, "--intermediate", mode, seconds}, {.out = proc::pipe});
  try {
    std::string said = p.communicate({}, patience).out;  // returns at end-of-file
    fmt::print("  {}", said);
    if (p.wait() == unsupported) return 0;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  } catch (const proc::TimeoutExpired& e) {
    fmt::print("  {}", e.out);
    p.wait();  // the intermediate itself exited long ago; only its sleep holds the pipe
    return std::nullopt;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string_view(argv[1]) == "--intermediate")
    return intermediate(std::string_view(argv[2]) == "daemon", argv[3]);

  // Without the option the sleep outlives the intermediate: the pipe stays open (until the
  // one-second sleep ends by itself).
  fmt::print("without kill_on_parent_exit:\n");
  std::optional<long long> plain = run_intermediate(argv[0], "plain", "1", 300ms);
  fmt::print("  pipe open after 300 ms: {}\n", plain ? "no" : "yes, the sleep survived");

  // With it, the sleep is killed as soon as the intermediate exits.
  fmt::print("with kill_on_parent_exit:\n");
  std::optional<long long> daemon = run_intermediate(argv[0], "daemon", "30", 5s);
  if (daemon)
    fmt::print("  pipe closed after {} ms: `sleep 30` died with its parent\n", *daemon);
  else
    fmt::print("  pipe still open after 5 s: the sleep survived its parent\n");
  return !plain && daemon ? 0 : 1;
}
