// Runs a child and formats the result: proc's headers, fmt and threads all came from the
// installed package.
#include <fmt/core.h>

#include <proc/proc.hpp>
#include <string>

int main() {
  auto r = proc::run({"sh", "-c", "echo consumer"}, {.capture_output = true, .check = true});
  std::string text = fmt::format("{}", r);
  fmt::print("{}\n{}\n", text, proc::ExitStatus(r.returncode));
  const std::string expected =
      "CompletedProcess(args='sh -c 'echo consumer'', returncode=0, out=9 bytes, err=0 bytes)";
  return text == expected && r.out == "consumer\n" ? 0 : 1;
}
