// A build step whose output is shown live and also kept: proc::tee(target) captures a stream
// like proc::pipe and copies every chunk to target (the parent's own stream, a file or a
// descriptor) as it arrives. Here stdout is shown live on our own stdout and kept; stderr is
// kept and written to a log file as it comes.
#include <fmt/core.h>

#include <filesystem>
#include <fstream>
#include <proc/proc.hpp>
#include <sstream>
#include <string>

int main() {
  auto log = std::filesystem::temp_directory_path() / "proc-example-build.log";
  // [tee]
  // A pretend build: progress on stdout, a warning on stderr, then success.
  const char* step =
      "for f in parse.c eval.c main.c; do echo \"compiling $f\"; sleep 0.05; done;"
      "echo 'eval.c: warning: unused variable' >&2; echo linked";
  auto r = proc::run(
      {"sh", "-c", step},
      {.out = proc::tee(proc::inherit), .err = proc::tee(proc::file(log)), .check = true});
  // [tee]
  std::ifstream in(log);
  std::stringstream file;
  file << in.rdbuf();
  fmt::print("kept {} bytes of stdout and {} of stderr (the log has {})\n", r.out.size(),
             r.err.size(), file.str().size());
  std::filesystem::remove(log);
  bool ok = r.err == file.str() && r.out.ends_with("linked\n") &&
            r.err == "eval.c: warning: unused variable\n";

  // [tee_limit]
  // An untrusted program gets a cap: past max_output bytes of one stream the child is stopped
  // and OutputLimitExceeded carries what was kept (the cap's worth).
  try {
    proc::run({"sh", "-c", "yes spam"}, {.out = proc::pipe, .max_output = 64 * 1024});
    ok = false;  // not reached: yes never ends by itself
  } catch (const proc::OutputLimitExceeded& e) {
    fmt::print("stopped: {} (kept {} bytes)\n", e.what(), e.out.size());
    ok = ok && e.out.size() == 64 * 1024;
  }
  // [tee_limit]
  return ok ? 0 : 1;
}
