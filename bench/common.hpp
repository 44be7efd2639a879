#pragma once
// Shared by the benchmark programs: interleaved timing, medians, paired ratios, result checks,
// and the raw system-call baselines that proc is measured against.
//
// Every program prints, besides its human-readable table, one machine-readable line per
// variant for bench/run_all.sh:
//
//   RESULT|<figure>|<variant>|<median>|<unit>|<ratio to baseline>|<baseline variant>|<target>
//
// Timing method: each repetition ("round") runs every variant once (a batch of operations),
// rotating the order from round to round, so slow drifts of the machine (other processes on a
// shared box) hit all variants alike. A variant's figure is the median over rounds; its ratio
// is the median of the per-round ratios to the baseline measured in the same round (paired).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

extern "C" char** environ;

namespace bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] inline void fail(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: benchmark check failed: %s\n", file, line, what);
  std::exit(2);
}
/// A result check that stays on in release builds: nothing broken may look fast.
#define BENCH_CHECK(cond) ((cond) ? (void)0 : ::bench::fail(__FILE__, __LINE__, #cond))

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Directory of the running program (the helpers sit beside it).
inline std::string self_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string s(buf, static_cast<std::size_t>(n));
  return s.substr(0, s.rfind('/'));
}
inline std::string helper(const char* name) { return self_dir() + "/" + name; }

/// A full path for a program found in PATH (so raw baselines and proc exec the same file).
inline std::string which(const char* name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = p.find(':', start);
    std::string dir = p.substr(start, colon == std::string::npos ? colon : colon - start);
    std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  std::fprintf(stderr, "bench: %s not found in PATH\n", name);
  std::exit(2);
}

/// Command-line option `--name=value` (or the default).
inline long long arg(int argc, char** argv, const char* name, long long def) {
  std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0)
      return std::atoll(argv[i] + prefix.size());
  return def;
}
inline std::string arg_str(int argc, char** argv, const char* name, const char* def) {
  std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
  return def;
}

struct Variant {
  std::string name;
  std::function<void()> op;       // one operation; checks its own result
  int batch = 1;                  // operations per round
  std::vector<double> samples{};  // seconds per operation, one per round
};

/// Keeps only the variants whose name contains --only=TEXT (for profiling one of them).
inline void filter(std::vector<Variant>& vs, int argc, char** argv) {
  std::string only = arg_str(argc, argv, "only", "");
  if (only.empty()) return;
  std::erase_if(vs, [&](const Variant& v) { return v.name.find(only) == std::string::npos; });
  if (vs.empty()) std::exit(2);
}

/// Runs `rounds` rounds over the variants, rotating their order each round.
inline void run_rounds(std::vector<Variant>& vs, int rounds) {
  for (auto& v : vs) v.op();  // warm-up (page cache, lazy binding, first allocations)
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t k = 0; k < vs.size(); ++k) {
      Variant& v = vs[(k + static_cast<std::size_t>(r)) % vs.size()];
      auto t0 = Clock::now();
      for (int i = 0; i < v.batch; ++i) v.op();
      v.samples.push_back(seconds_since(t0) / v.batch);
    }
  }
}

inline const Variant& find(const std::vector<Variant>& vs, const std::string& name) {
  for (const auto& v : vs)
    if (v.name == name) return v;
  std::fprintf(stderr, "bench: no variant %s\n", name.c_str());
  std::exit(2);
}

/// Median of the per-round ratios a/b.
inline double paired_ratio(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (b[i] > 0) r.push_back(a[i] / b[i]);
  return median(r);
}

/// One output row.
inline void emit(const std::string& figure, const std::string& variant, double value,
                 const char* unit, double ratio, const std::string& baseline,
                 const std::string& target) {
  std::printf("  %-34s %12.3f %-6s %7.3fx %s%s\n", variant.c_str(), value, unit, ratio,
              baseline.empty() ? "" : ("vs " + baseline).c_str(),
              target.empty() ? "" : ("  [target " + target + "]").c_str());
  std::printf("RESULT|%s|%s|%.6g|%s|%.4f|%s|%s\n", figure.c_str(), variant.c_str(), value, unit,
              ratio, baseline.c_str(), target.c_str());
  std::fflush(stdout);
}

/// Prints every variant of a figure as a median (scaled to `unit`) and a paired ratio to
/// `baseline`. `targets` maps variant names to a target text such as "<=1.05".
inline void report(const std::string& figure, const std::vector<Variant>& vs,
                   const std::string& baseline, double scale, const char* unit,
                   const std::vector<std::pair<std::string, std::string>>& targets = {}) {
  std::printf("%s (median of %zu rounds)\n", figure.c_str(), vs.front().samples.size());
  const Variant& base = find(vs, baseline);
  for (const auto& v : vs) {
    std::string target;
    for (const auto& [n, t] : targets)
      if (n == v.name) target = t;
    emit(figure, v.name, median(v.samples) * scale, unit, paired_ratio(v.samples, base.samples),
         v.name == baseline ? "" : baseline, target);
  }
}

// ---------------------------------------------------------------------------------------------
// Raw baselines.

/// posix_spawn with nothing but the given stdio redirections (-1: inherit).
inline pid_t raw_spawn(const char* path, char* const* argv, int in = -1, int out = -1,
                       int err = -1) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in >= 0) posix_spawn_file_actions_adddup2(&fa, in, 0);
  if (out >= 0) posix_spawn_file_actions_adddup2(&fa, out, 1);
  if (err >= 0) posix_spawn_file_actions_adddup2(&fa, err, 2);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path, &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  BENCH_CHECK(rc == 0);
  return pid;
}

inline int raw_wait(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) BENCH_CHECK(errno == EINTR);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

inline void raw_pipe(int fds[2]) { BENCH_CHECK(::pipe2(fds, O_CLOEXEC) == 0); }

/// Reads `fd` to EOF into a realloc-grown buffer (the best plain strategy: glibc grows large
/// blocks with mremap, without copying or touching pages twice). Returns the byte count.
inline std::size_t raw_read_all(int fd, char** out = nullptr) {
  std::size_t cap = 1 << 16, used = 0;
  char* b = static_cast<char*>(std::malloc(cap));
  for (;;) {
    if (cap - used < (1 << 16)) {
      cap *= 2;
      b = static_cast<char*>(std::realloc(b, cap));
      BENCH_CHECK(b != nullptr);
    }
    ssize_t r = ::read(fd, b + used, cap - used);
    if (r < 0 && errno == EINTR) continue;
    BENCH_CHECK(r >= 0);
    if (r == 0) break;
    used += static_cast<std::size_t>(r);
  }
  if (out)
    *out = b;
  else
    std::free(b);
  return used;
}

/// Raises RLIMIT_NOFILE to its hard limit (benchmarks only; the library never does this).
inline rlim_t raise_nofile() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

/// Peak resident set of this process, in bytes.
inline double peak_rss_bytes() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0;
}

}  // namespace bench
