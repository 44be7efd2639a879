// Runs a small pipeline and formats the result, built from proc's source tree.
#include <fmt/core.h>

#include <proc/proc.hpp>
#include <string>

int main() {
  auto r = proc::run_pipeline({{"printf", "b\\na\\nb\\n"}, {"sort", "-u"}},
                              {.out = proc::pipe, .check = true});
  std::string text = fmt::format("{}", r);
  fmt::print("{}\n", text);
  const std::string expected = "PipelineResult(args='" + proc::join({"printf", "b\\na\\nb\\n"}) +
                               " | sort -u', returncodes=[0, 0], out=4 bytes, err=0 bytes)";
  return text == expected && r.out == "a\nb\n" ? 0 : 1;
}
