// proc's children in a standalone asio event loop (Debian: libasio-dev): async reads of a
// child's stdout and an async wait on its exit handle (Popen::native_handle(), a pidfd), on one
// io_context. Built only where asio's headers are found.
#include <fmt/core.h>

#include <asio.hpp>
#include <cstdio>
#include <proc/proc.hpp>
#include <string>

#if defined(__linux__)
#  include <unistd.h>

int main() {
  // [asio]
  asio::io_context io;
  proc::Popen child({"sh", "-c", "echo one; sleep 0.2; echo two; exit 5"}, {.out = proc::pipe});
  // asio's descriptors own what they hold: give them duplicates, proc keeps its own.
  asio::posix::stream_descriptor out(io, ::dup(child.out().native_handle()));
  asio::posix::stream_descriptor exited(io, ::dup(child.native_handle()));

  std::string buffer;
  std::function<void()> read_more = [&] {
    asio::async_read_until(out, asio::dynamic_buffer(buffer), '\n',
                           [&](std::error_code ec, std::size_t n) {
                             if (ec) return;  // end of stream
                             fmt::print("line: {}", buffer.substr(0, n));
                             buffer.erase(0, n);
                             read_more();
                           });
  };
  read_more();
  exited.async_wait(asio::posix::stream_descriptor::wait_read, [&](std::error_code) {
    fmt::print("the child exited: {}\n", proc::ExitStatus(child.wait()));
  });
  io.run();
  // [asio]
  return 0;
}
#else
int main() { std::printf("asio_loop: the pidfd part is Linux's\n"); }
#endif
