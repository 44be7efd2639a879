// Stream a long-running child's output line by line, as it is written, and show progress.
//
// The child here is a small shell loop standing in for a build, a download or a test run: it
// reports "progress N/TOTAL" lines on stdout and warnings on stderr, with pauses in between.
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <proc/proc.hpp>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

// A shell loop that takes about half a second: 5 steps, a warning at step 3.
const char* const worker = R"(
  total=5
  for i in $(seq 1 $total); do
    sleep 0.1
    echo "progress $i/$total"
    [ "$i" -eq 3 ] && echo "warning: step $i was slow" >&2
  done
  echo done
)";

// "progress 3/5" -> 60; -1 for any other line.
int percent(std::string_view line) {
  constexpr std::string_view prefix = "progress ";
  if (line.substr(0, prefix.size()) != prefix) return -1;
  line.remove_prefix(prefix.size());
  auto slash = line.find('/');
  if (slash == std::string_view::npos) return -1;
  int done = std::stoi(std::string(line.substr(0, slash)));
  int total = std::stoi(std::string(line.substr(slash + 1)));
  return total > 0 ? done * 100 / total : -1;
}

}  // namespace

int main() {
  // [lines]
  // One stream: read stdout line by line while the child runs. Each line arrives as soon as
  // the child writes it (the shell does not buffer `echo`); stderr is discarded here.
  proc::Popen p({"sh", "-c", worker}, {.out = proc::pipe, .err = proc::devnull});
  auto start = std::chrono::steady_clock::now();
  for (std::string_view line : p.out().lines()) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (int pc = percent(line); pc >= 0)
      fmt::print("[{:>4} ms] {:3}% {:-<20}\n", ms.count(), pc, std::string(pc / 5, '#'));
    else
      fmt::print("[{:>4} ms] {}\n", ms.count(), line);
  }
  int rc = p.wait();
  // [lines]
  if (rc != 0) return 1;

  // [stream_lines]
  // Both streams at once: stream_lines drains stdout and stderr together (neither pipe can
  // fill up and stall the child) and calls back with each line; a timeout bounds the whole run.
  proc::Popen q({"sh", "-c", worker}, {.out = proc::pipe, .err = proc::pipe});
  int lines = 0, warnings = 0;
  int status = q.stream_lines(
      [&](std::string_view line) {
        ++lines;
        if (int pc = percent(line); pc >= 0) fmt::print("\rprogress: {:3}%", pc);
        std::fflush(stdout);
      },
      [&](std::string_view line) {
        ++warnings;
        fmt::print("\n  stderr: {}\n", line);
      },
      10s);
  fmt::print("\n{} lines, {} warnings, {}\n", lines, warnings, proc::ExitStatus(status));
  // [stream_lines]
  return status == 0 && lines == 6 && warnings == 1 ? 0 : 1;
}
