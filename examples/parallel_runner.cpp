// A parallel runner in the spirit of `xargs -P`: commands from stdin (one per line, split like a
// shell would), at most N at a time (argv[1], default: the number of CPUs), each result printed
// as it finishes, and a summary at the end. One thread: proc::run_all drives every child.
//
//   printf 'sleep 0.2\nls /\nfalse\n' | parallel_runner 2
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <proc/proc.hpp>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  unsigned jobs = argc > 1 ? static_cast<unsigned>(std::stoul(argv[1])) : 0;
  // [read]
  std::vector<proc::Command> commands;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty() || line[0] == '#') continue;
    commands.emplace_back(proc::split(line), proc::Options{.capture_output = true,
                                                           .timeout = std::chrono::seconds(30)});
  }
  // [read]
  if (commands.empty()) {
    fmt::print(stderr, "usage: commands on stdin, one per line; parallel_runner [jobs]\n");
    return 2;
  }

  // [run_all]
  auto t0 = std::chrono::steady_clock::now();
  auto results = proc::run_all(
      commands, {.jobs = jobs, .on_done = [&](std::size_t i, const proc::JobResult& r) {
                   std::string what = r.ok() ? "ok" : fmt::format("exit {}", r.process.returncode);
                   if (r.error) {
                     try {
                       std::rethrow_exception(r.error);
                     } catch (const std::exception& e) {
                       what = e.what();
                     }
                   }
                   fmt::print("[{}] {} -> {} ({:.1f} ms CPU)\n", i, proc::join(r.process.args),
                              what,
                              std::chrono::duration<double, std::milli>(r.process.usage.user_time +
                                                                        r.process.usage.system_time)
                                  .count());
                 }});
  // [run_all]

  // [summary]
  std::size_t ok = 0;
  for (const auto& r : results) ok += r.ok();
  fmt::print("{} of {} commands succeeded in {:.2f} s\n", ok, results.size(),
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  // [summary]
  return 0;
}
