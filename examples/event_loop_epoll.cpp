// Your own event loop over proc's children: one epoll set holding each child's stdout pipe and
// its exit handle (Popen::native_handle(), a pidfd), so lines and exits are handled as they
// happen, in one thread, without proc's own loop. Linux only (epoll, pidfd).
#include <fmt/core.h>

#include <cstdio>
#include <map>
#include <proc/proc.hpp>
#include <string>
#include <vector>

#if defined(__linux__)
#  include <sys/epoll.h>
#  include <unistd.h>

int main() {
  // [epoll]
  std::vector<proc::Popen> kids;
  for (const char* script : {"for i in 1 2 3; do echo a$i; sleep 0.1; done",
                             "echo b1; sleep 0.25; echo b2; exit 4", "sleep 0.15; echo c1"})
    kids.emplace_back(std::vector<std::string>{"sh", "-c", script},
                      proc::Options{.out = proc::pipe});

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  // Tag each registration: child index * 2 (+0 its stdout, +1 its exit).
  for (std::size_t i = 0; i < kids.size(); ++i) {
    epoll_event out{EPOLLIN, {.u64 = i * 2}}, exit{EPOLLIN, {.u64 = i * 2 + 1}};
    ::epoll_ctl(ep, EPOLL_CTL_ADD, kids[i].out().native_handle(), &out);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, kids[i].native_handle(), &exit);
  }
  std::map<std::size_t, std::string> partial;
  std::size_t running = kids.size(), open_outputs = kids.size();
  while (running > 0 || open_outputs > 0) {
    epoll_event ev[8];
    int n = ::epoll_wait(ep, ev, 8, -1);
    for (int k = 0; k < n; ++k) {
      std::size_t i = ev[k].data.u64 / 2;
      proc::Popen& p = kids[i];
      if (ev[k].data.u64 % 2 == 1) {  // the child exited: reap it
        fmt::print("child {} exited: {}\n", i, proc::ExitStatus(p.wait()));
        ::epoll_ctl(ep, EPOLL_CTL_DEL, p.native_handle(), nullptr);
        --running;
        continue;
      }
      char buf[4096];
      std::size_t got = p.out().read(buf);  // readable: does not block
      if (got == 0) {
        ::epoll_ctl(ep, EPOLL_CTL_DEL, p.out().native_handle(), nullptr);
        p.out().close();
        --open_outputs;
        continue;
      }
      partial[i].append(buf, got);
      for (auto nl = partial[i].find('\n'); nl != std::string::npos; nl = partial[i].find('\n')) {
        fmt::print("child {} says {}\n", i, partial[i].substr(0, nl));
        partial[i].erase(0, nl + 1);
      }
    }
  }
  ::close(ep);
  // [epoll]
  return 0;
}
#else
int main() {
  std::printf("event_loop_epoll: epoll and pidfds are Linux's; nothing to show here\n");
  return 0;
}
#endif
