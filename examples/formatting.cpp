// {fmt} output of proc's results: CompletedProcess, PipelineResult, ExitStatus, and command
// lines shell-quoted with proc::quoted. All formatters come with <proc/proc.hpp>.
#include <fmt/core.h>

#include <proc/proc.hpp>
#include <string>
#include <vector>

int main() {
  // [completed]
  auto r = proc::run({"sh", "-c", "echo hi; exit 2"}, {.capture_output = true});
  fmt::print("{}\n", r);
  // CompletedProcess(args='sh -c 'echo hi; exit 2'', returncode=2, out=3 bytes, err=0 bytes)
  // [completed]
  if (fmt::format("{}", r) !=
      "CompletedProcess(args='sh -c 'echo hi; exit 2'', returncode=2, out=3 bytes, err=0 bytes)")
    return 1;

  // [status]
  // ExitStatus: a returncode as a value, with a readable text.
  proc::ExitStatus status(r.returncode);
  fmt::print("{}\n", status);  // exited with 2
  if (status.exited() && !status.success()) fmt::print("exit code {}\n", *status.code());

  proc::Popen p({"sleep", "10"});
  p.kill();
  proc::ExitStatus killed(p.wait());
  fmt::print("{} (signal {})\n", killed, *killed.signal());  // killed by SIGKILL (signal 9)
  // [status]
  if (fmt::format("{}", status) != "exited with 2" ||
      fmt::format("{}", killed) != "killed by SIGKILL")
    return 1;

  // [quoted]
  // A command line that can be pasted into a shell: every argument quoted as needed.
  std::vector<std::string> args{"grep", "-r", "it's here", "src dir/"};
  fmt::print("$ {}\n", proc::quoted(args));  // $ grep -r 'it'"'"'s here' 'src dir/'
  // [quoted]
  if (fmt::format("{}", proc::quoted(args)) != "grep -r 'it'\"'\"'s here' 'src dir/'") return 1;

  // [pipeline]
  auto pr = proc::run_pipeline({{"seq", "100"}, {"grep", "7"}, {"wc", "-l"}}, {.out = proc::pipe});
  fmt::print("{}\n", pr);
  // PipelineResult(args='seq 100 | grep 7 | wc -l', returncodes=[0, 0, 0], out=3 bytes,
  // err=0 bytes)
  // [pipeline]

  // [log]
  // Typical use: one log line per command, whatever its outcome.
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"true"}, {"sh", "-c", "exit 7"}, {"sh", "-c", "kill -TERM $$"}}) {
    int rc = proc::call(cmd);
    fmt::print("{:<28} -> {}\n", fmt::format("{}", proc::quoted(cmd)), proc::ExitStatus(rc));
  }
  // true                         -> exited with 0
  // sh -c 'exit 7'               -> exited with 7
  // sh -c 'kill -TERM $$'        -> killed by SIGTERM
  // [log]
  return pr.returncode() == 0 ? 0 : 1;
}
