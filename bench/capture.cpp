// Capturing a child's stdout: time and peak memory, proc against the best raw read.
//
//   bench_capture [--rounds=5] [--sizes=1,16,128,1024] (MiB of output)
//
// The child (bench_child spew N) writes N bytes. Raw baseline: a pipe raised to 1 MiB
// (F_SETPIPE_SZ) read straight into a realloc-grown buffer (glibc grows large blocks with
// mremap: no copy, each page touched once). proc: check_output, run(.out = pipe), and
// Popen::out().read_all(). Each sample runs in a fresh process (this program re-executed with
// --one), so the peak resident set (ru_maxrss) is that variant's own; the memory figure is
// (peak - resident before the capture) / output size.

#include <proc/proc.hpp>

#include "common.hpp"

namespace {

std::string child;

std::size_t count_newlines_ok(const char* p, std::size_t n) {
  // Spot-check the content (the pattern is 63 'x' and '\n'), every 4 KiB.
  for (std::size_t i = 0; i + 64 <= n; i += 4096)
    if (p[i] != 'x' || p[i + 63] != '\n') return 0;
  return 1;
}

double one(const std::string& variant, std::size_t bytes) {
  std::string n = std::to_string(bytes);
  std::vector<std::string> args{child, "spew", n};
  auto t0 = bench::Clock::now();
  if (variant == "raw read, 1 MiB pipe") {
    int fds[2];
    bench::raw_pipe(fds);
    ::fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
    char* argv[] = {args[0].data(), args[1].data(), args[2].data(), nullptr};
    pid_t pid = bench::raw_spawn(child.c_str(), argv, -1, fds[1]);
    ::close(fds[1]);
    char* data = nullptr;
    std::size_t got = bench::raw_read_all(fds[0], &data);
    ::close(fds[0]);
    BENCH_CHECK(bench::raw_wait(pid) == 0);
    double dt = bench::seconds_since(t0);
    BENCH_CHECK(got == bytes && count_newlines_ok(data, got));
    std::free(data);
    return dt;
  }
  std::string out;
  if (variant == "proc check_output") {
    out = proc::check_output(args);
  } else if (variant == "proc run .out=pipe") {
    auto r = proc::run(args, {.out = proc::pipe});
    BENCH_CHECK(r.returncode == 0);
    out = std::move(r.out);
  } else if (variant == "proc Popen read_all") {
    proc::Popen p(args, {.out = proc::pipe});
    out = p.out().read_all();
    BENCH_CHECK(p.wait() == 0);
  } else {
    bench::fail(__FILE__, __LINE__, "unknown variant");
  }
  double dt = bench::seconds_since(t0);
  BENCH_CHECK(out.size() == bytes && count_newlines_ok(out.data(), out.size()));
  return dt;
}

struct Sample {
  double seconds, peak, before;
};

// Runs one variant in a fresh copy of this program.
Sample fresh(const std::string& variant, std::size_t bytes) {
  std::string self = bench::self_dir() + "/bench_capture";
  std::string a1 = "--one=" + variant, a2 = "--bytes=" + std::to_string(bytes);
  char* argv[] = {self.data(), a1.data(), a2.data(), nullptr};
  int fds[2];
  bench::raw_pipe(fds);
  pid_t pid = bench::raw_spawn(self.c_str(), argv, -1, fds[1]);
  ::close(fds[1]);
  char* text = nullptr;
  std::size_t n = bench::raw_read_all(fds[0], &text);
  ::close(fds[0]);
  BENCH_CHECK(bench::raw_wait(pid) == 0);
  Sample s{};
  std::string line(text, n);
  std::free(text);
  BENCH_CHECK(std::sscanf(line.c_str(), "%lf %lf %lf", &s.seconds, &s.peak, &s.before) == 3);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  child = bench::helper("bench_child");
  std::string one_variant = bench::arg_str(argc, argv, "one", "");
  if (!one_variant.empty()) {
    auto bytes = static_cast<std::size_t>(bench::arg(argc, argv, "bytes", 0));
    double before = bench::peak_rss_bytes();
    double dt = one(one_variant, bytes);
    std::printf("%.9f %.0f %.0f\n", dt, bench::peak_rss_bytes(), before);
    return 0;
  }

  int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 5));
  std::string sizes_arg = bench::arg_str(argc, argv, "sizes", "1,16,128,1024");
  const char* names[] = {"raw read, 1 MiB pipe", "proc check_output", "proc run .out=pipe",
                         "proc Popen read_all"};
  for (std::size_t pos = 0; pos < sizes_arg.size();) {
    std::size_t comma = sizes_arg.find(',', pos);
    if (comma == std::string::npos) comma = sizes_arg.size();
    std::size_t mib = std::stoull(sizes_arg.substr(pos, comma - pos));
    pos = comma + 1;
    std::size_t bytes = mib << 20;
    std::vector<bench::Variant> time_v, mem_v;
    for (const char* name : names) {
      time_v.push_back({name, {}, 1, {}});
      mem_v.push_back({name, {}, 1, {}});
    }
    for (int r = 0; r < rounds; ++r)
      for (std::size_t k = 0; k < time_v.size(); ++k) {
        std::size_t i = (k + static_cast<std::size_t>(r)) % time_v.size();
        Sample s = fresh(time_v[i].name, bytes);
        time_v[i].samples.push_back(s.seconds);
        mem_v[i].samples.push_back((s.peak - s.before) / static_cast<double>(bytes));
      }
    std::string fig = "capture " + std::to_string(mib) + " MiB";
    bool main_size = mib == 1024;
    std::vector<std::pair<std::string, std::string>> t;
    if (main_size)
      for (std::size_t i = 1; i < std::size(names); ++i) t.emplace_back(names[i], "<=1.05");
    bench::report(fig + ": time", time_v, names[0], 1e3, "ms", t);
    // Memory: the ratio column is peak growth / output size (not a ratio to the raw read).
    std::printf("%s: peak memory growth / output size (median of %d fresh processes)\n",
                fig.c_str(), rounds);
    for (const auto& v : mem_v) {
      double m = bench::median(v.samples);
      bench::emit(fig + ": peak memory", v.name, m * static_cast<double>(bytes) / 1048576.0, "MiB",
                  m, "output size", main_size && v.name != names[0] ? "<=1.05" : "");
    }
  }
  return 0;
}
