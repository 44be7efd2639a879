// The quick start: run a command, capture output, stream lines, feed input.
#include <cstdio>
#include <proc/proc.hpp>
#include <string>

int main() {
  // [run]
  // Run a command; stdio is inherited unless redirected.
  proc::CompletedProcess r = proc::run({"echo", "hello from a child"});
  std::printf("echo exited with %d\n", r.returncode);
  // [run]

  // [check_output]
  // Capture stdout; a non-zero exit throws proc::CalledProcessError.
  std::string kernel = proc::check_output({"uname", "-s"});
  std::printf("kernel: %s", kernel.c_str());
  // [check_output]

  // [stream]
  // Stream a child's output line by line as it is written.
  proc::Popen p({"seq", "3"}, {.out = proc::pipe});
  for (std::string_view line : p.out().lines())
    std::printf("line: %.*s\n", static_cast<int>(line.size()), line.data());
  std::printf("seq exited with %d\n", p.wait());
  // [stream]

  // [input]
  // Feed input and capture both streams.
  auto sorted = proc::run({"sort"}, {.input = "pear\napple\nfig\n", .capture_output = true});
  std::printf("sorted:\n%s", sorted.out.c_str());
  // [input]

  // [errors]
  try {
    proc::run({"false"}, {.check = true});
  } catch (const proc::CalledProcessError& e) {
    std::printf("caught: %s\n", e.what());
  }
  // [errors]
  return 0;
}
