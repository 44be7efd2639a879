// Talk to a child over a line protocol: write a request to its stdin, read one reply line from
// its stdout, repeat; then close stdin so that it ends.
//
// The child is a tiny Python "calculator server". Note `python3 -u`: a child must not buffer its
// replies, or the parent waits for an answer that sits in the child's buffer. (Plain `sh` with a
// `while read` loop works too; see the second part.)
#include <fmt/core.h>

#include <chrono>
#include <optional>
#include <proc/proc.hpp>
#include <string>

using namespace std::chrono_literals;

namespace {

const char* const server = R"(
import sys
for line in sys.stdin:
    op, a, b = line.split()
    a, b = int(a), int(b)
    result = {"add": a + b, "mul": a * b}.get(op)
    print("error: unknown op" if result is None else f"ok {result}")
)";

}  // namespace

int main() {
  // [session]
  proc::Popen calc({"python3", "-u", "-c", server}, {.in = proc::pipe, .out = proc::pipe});

  // One request, one reply: readline() blocks until the child has answered, and keeps the '\n'.
  auto ask = [&](const std::string& request) {
    calc.in().write(request + "\n");
    std::optional<std::string> reply = calc.out().readline();
    if (!reply) throw std::runtime_error("the server went away");
    fmt::print("> {}\n< {}", request, *reply);
    return *reply;
  };

  bool ok = ask("add 2 3") == "ok 5\n";
  ok = ask("mul 6 7") == "ok 42\n" && ok;
  ok = ask("pow 2 8") == "error: unknown op\n" && ok;

  calc.in().close();  // end of requests: the server's loop sees end of input and exits
  std::optional<int> rc = calc.wait_for(5s);
  if (!rc) rc = calc.stop(1s);  // did not exit in time: SIGTERM, then SIGKILL
  fmt::print("server {}\n", proc::ExitStatus(*rc));
  // [session]
  if (!ok || *rc != 0) return 1;

  // [shell]
  // The same with a shell loop; `read` takes one line at a time, so the dialogue stays in step.
  proc::Popen echo({"sh", "-c", "while read -r line; do echo \"echo: $line\"; done"},
                   {.in = proc::pipe, .out = proc::pipe});
  for (const char* word : {"ping", "pong"}) {
    echo.in().write(std::string(word) + "\n");
    fmt::print("{}", echo.out().readline().value_or("(no reply)\n"));
  }
  echo.in().close();
  // [shell]
  return echo.wait() == 0 ? 0 : 1;
}
