// Pipelines: `seq 100 | grep 7 | wc -l` without a shell, three ways.
//
// Each stage's stdout is connected straight to the next stage's stdin by a pipe, as a shell
// does it: the data never passes through this process.
#include <fmt/core.h>

#include <proc/proc.hpp>
#include <string>
#include <string_view>

int main() {
  // [run_pipeline]
  // Run and wait for all stages. `out` goes to the last stage, `in`/`input` to the first; every
  // stage gets a returncode, and `check` throws for the rightmost failing one (pipefail).
  proc::PipelineResult r = proc::run_pipeline({{"seq", "100"}, {"grep", "7"}, {"wc", "-l"}},
                                              {.out = proc::pipe, .check = true});
  fmt::print("{} numbers up to 100 contain a 7 (returncodes {}, {}, {})\n", std::stoi(r.out),
             r.returncodes[0], r.returncodes[1], r.returncodes[2]);
  // [run_pipeline]
  if (std::stoi(r.out) != 19) return 1;

  // [input]
  // `input` feeds the first stage; a piped `err` collects every stage's stderr.
  auto sorted = proc::run_pipeline({{"sort"}, {"uniq", "-c"}, {"sort", "-rn"}},
                                   {.input = "b\na\nb\nc\nb\na\n", .capture_output = true});
  fmt::print("most frequent first:\n{}", sorted.out);
  // [input]

  // [pipefail]
  // A failing stage is reported even when the last stage succeeds (bash's `set -o pipefail`).
  try {
    proc::run_pipeline({{"sh", "-c", "echo partial; exit 3"}, {"cat"}},
                       {.out = proc::devnull, .check = true});
    return 1;  // not reached
  } catch (const proc::CalledProcessError& e) {
    fmt::print("caught: {}\n", e.what());  // names stage 1 of 2
  }
  // [pipefail]

  // [commands]
  // Command | Command builds a proc::Pipeline. Each stage may carry its own options (cwd, env,
  // ...); the options given to run() are the pipeline's ends and policy.
  proc::Pipeline greet = proc::Command({"sh", "-c", "echo \"$WORD\"; echo other"},
                                       {.env_update = {{"WORD", "hello"}}}) |
                         proc::Command{"grep", "hello"};
  std::string found = greet.run({.out = proc::pipe, .check = true}).out;
  fmt::print("stage 1 had WORD=hello: {}", found);
  // [commands]
  if (found != "hello\n") return 1;

  // [popen_chain]
  // The same by hand with Popen: take_out() moves the first child's stdout pipe into the second
  // child's stdin. Once `wc` has started, this process holds no copy of that pipe, so the two
  // children see end-of-file and SIGPIPE exactly as in a shell.
  proc::Popen producer({"seq", "100"}, {.out = proc::pipe});
  proc::Popen consumer({"wc", "-l"}, {.in = producer.take_out(), .out = proc::pipe});
  std::string count = consumer.communicate().out;
  producer.wait();
  fmt::print("seq 100 | wc -l: {}", count);
  // [popen_chain]
  if (std::stoi(count) != 100) return 1;

  // [sigpipe]
  // A consumer that stops reading early ends the producer with SIGPIPE, as in a shell. The
  // returncode says so (-13), and with .check = true that stage would count as failed.
  auto head = proc::run_pipeline({{"yes"}, {"head", "-2"}}, {.out = proc::pipe});
  fmt::print("yes | head -2: {:?}, returncodes {} and {}\n", head.out, head.returncodes[0],
             head.returncodes[1]);
  // [sigpipe]

  // [start_pipeline]
  // start_pipeline returns the running stages, to stream the last one's output as it comes.
  // Dropping a RunningPipeline early is safe: it closes every stage's pipes before waiting.
  proc::RunningPipeline stages =
      proc::start_pipeline({{"seq", "1000"}, {"grep", "^9.9$"}}, {.out = proc::pipe});
  for (std::string_view line : stages.back().out().lines()) fmt::print("match: {}\n", line);
  int failures = 0;
  for (int rc : stages.wait()) failures += rc != 0;
  // [start_pipeline]
  return failures == 0 ? 0 : 1;
}
