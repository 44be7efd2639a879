// 1 GiB both ways through `cat`: Popen::communicate against raw poll() loops.
//
//   bench_communicate [--rounds=5] [--mib=1024]
//
// Raw baselines: one poll() loop over a non-blocking stdin pipe and the stdout pipe, writing
// what the pipe takes and reading into a realloc-grown buffer; once with the default 64 KiB
// pipes, once with both raised to 1 MiB (F_SETPIPE_SZ). proc: Popen({"cat"}, in/out piped)
// .communicate(input). Every variant checks the output size and spot-checks its content.

#include <proc/proc.hpp>

#include "common.hpp"

namespace {

std::string cat;
std::string input;

void check_output(const char* p, std::size_t n) {
  BENCH_CHECK(n == input.size());
  for (std::size_t i = 0; i < n; i += 4093) BENCH_CHECK(p[i] == input[i]);
  BENCH_CHECK(n == 0 || p[n - 1] == input[n - 1]);
}

void raw_loop(int pipe_size) {
  int in[2], out[2];
  bench::raw_pipe(in);
  bench::raw_pipe(out);
  if (pipe_size) {
    ::fcntl(in[1], F_SETPIPE_SZ, pipe_size);
    ::fcntl(out[0], F_SETPIPE_SZ, pipe_size);
  }
  char* argv[] = {cat.data(), nullptr};
  pid_t pid = bench::raw_spawn(cat.c_str(), argv, in[0], out[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  std::size_t pos = 0, cap = 1 << 16, used = 0;
  char* buf = static_cast<char*>(std::malloc(cap));
  int wfd = in[1], rfd = out[0];
  while (rfd >= 0) {
    pollfd fds[2];
    int n = 0;
    fds[n++] = {rfd, POLLIN, 0};
    if (wfd >= 0) fds[n++] = {wfd, POLLOUT, 0};
    BENCH_CHECK(::poll(fds, static_cast<nfds_t>(n), -1) > 0);
    if (n == 2 && fds[1].revents) {
      ssize_t w =
          ::write(wfd, input.data() + pos, std::min<std::size_t>(input.size() - pos, 1 << 20));
      BENCH_CHECK(w > 0 || errno == EAGAIN);
      if (w > 0) pos += static_cast<std::size_t>(w);
      if (pos == input.size()) {
        ::close(wfd);
        wfd = -1;
      }
    }
    if (fds[0].revents) {
      if (cap - used < (1 << 16)) {
        cap *= 2;
        buf = static_cast<char*>(std::realloc(buf, cap));
      }
      ssize_t r = ::read(rfd, buf + used, cap - used);
      BENCH_CHECK(r >= 0);
      if (r == 0) {
        ::close(rfd);
        rfd = -1;
      }
      used += static_cast<std::size_t>(r);
    }
  }
  BENCH_CHECK(bench::raw_wait(pid) == 0);
  check_output(buf, used);
  std::free(buf);
}

void proc_communicate() {
  proc::Popen p({cat}, {.in = proc::pipe, .out = proc::pipe});
  auto r = p.communicate(input);
  BENCH_CHECK(p.wait() == 0);
  check_output(r.out.data(), r.out.size());
}

}  // namespace

int main(int argc, char** argv) {
  cat = bench::which("cat");
  int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 5));
  std::size_t mib = static_cast<std::size_t>(bench::arg(argc, argv, "mib", 1024));
  input.resize(mib << 20);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>('a' + i % 23);
  std::vector<bench::Variant> vs = {
      {"raw poll loop, 64 KiB pipes", [] { raw_loop(0); }, 1, {}},
      {"raw poll loop, 1 MiB pipes", [] { raw_loop(1 << 20); }, 1, {}},
      {"proc communicate", proc_communicate, 1, {}},
  };
  bench::filter(vs, argc, argv);
  bench::run_rounds(vs, rounds);
  bench::report(std::to_string(mib) + " MiB both ways through cat", vs, vs.front().name, 1e3, "ms",
                {{"proc communicate", "<=1.00"}});
  return 0;
}
