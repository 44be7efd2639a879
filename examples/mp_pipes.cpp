// proc::mp::connection_pair (Python's Pipe()): child to parent, parent to child, both ways.
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <proc/mp.hpp>
#include <string>
#include <vector>

namespace mp = proc::mp;

int main() {
  mp::init();

  // [child_to_parent]
  // The child sends, the parent receives.
  auto [parent_end, child_end] = mp::connection_pair<std::vector<int>>();
  auto p = mp::spawn(
      [](mp::Connection<std::vector<int>> c) {
        c.send({42, 7, 1});
      },
      std::move(child_end));
  fmt::print("parent received {}\n", parent_end.recv());
  p.join();
  // [child_to_parent]

  // [parent_to_child]
  // One way: the first end receives, the second sends. The child's end learns that the
  // parent's is gone (ChannelClosed, Python's EOFError) once it has every message.
  auto [rx, tx] = mp::connection_pair<std::string>(false);
  auto q = mp::spawn(
      [](mp::Connection<std::string> in) {
        std::size_t total = 0;
        try {
          for (;;) total += in.recv().size();
        } catch (const mp::ChannelClosed&) {
        }
        return total;
      },
      std::move(rx));
  for (const char* word : {"spam", "eggs", "ham"}) tx.send(word);
  tx.close();
  fmt::print("the child counted {} characters\n", q.join());
  // [parent_to_child]

  // [both_ways]
  // Duplex: requests and replies on one connection.
  auto [a, b] = mp::connection_pair<std::string>();
  auto server = mp::spawn(
      [](mp::Connection<std::string> c) {
        for (std::string req = c.recv(); req != "quit"; req = c.recv()) c.send("echo: " + req);
      },
      std::move(b));
  a.send("hello");
  fmt::print("{}\n", a.recv());
  a.send("world");
  fmt::print("{}\n", a.recv());
  a.send("quit");
  server.join();
  // [both_ways]
  return 0;
}
