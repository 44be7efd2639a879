// proc::mp::Connection, connection_pair and wait: messages between processes, every size, peers
// that close, exit or die (mid-message too), hostile bytes, timeouts, and many connections. This
// program is its own child (see mp_main.cpp).
#include <chrono>
#include <cstring>
#include <map>
#include <proc/mp.hpp>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "../test_support.hpp"

#if !defined(_WIN32)
#  include <signal.h>
#  include <sys/mman.h>
#  include <unistd.h>
#endif

using namespace std::chrono_literals;
namespace mp = proc::mp;
using Clock = std::chrono::steady_clock;

namespace {

bool sanitized() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#  endif
#endif
  return false;
}

std::string pattern(std::size_t n, unsigned seed = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

using Message = std::variant<int, std::string, std::vector<double>>;

}  // namespace

TEST_CASE(
    "connection: child to parent, parent to child, both ways (Python's three Pipe() examples)") {
  {  // child -> parent
    auto [parent, child] = mp::connection_pair<std::vector<int>>();
    auto p = mp::spawn(
        [](mp::Connection<std::vector<int>> c) {
          c.send({42, 7});
        },
        std::move(child));
    CHECK(parent.recv() == std::vector<int>{42, 7});
    p.join();
  }
  {  // parent -> child, one-way: the first end receives, the second sends
    auto [rx, tx] = mp::connection_pair<std::string>(false);
    CHECK(rx.readable());
    CHECK_FALSE(rx.writable());
    CHECK(tx.writable());
    CHECK_FALSE(tx.readable());
    auto p = mp::spawn([](mp::Connection<std::string> c) { return c.recv() + "!"; }, std::move(rx));
    tx.send("ping");
    CHECK(p.join() == "ping!");
    CHECK_THROWS_AS(tx.recv(), std::logic_error);
  }
  {  // both ways
    auto [a, b] = mp::connection_pair<Message>();
    auto p = mp::spawn(
        [](mp::Connection<Message> c) {
          for (;;) {
            Message m = c.recv();
            if (auto* i = std::get_if<int>(&m)) {
              if (*i < 0) return;
              c.send(*i * 2);
            } else if (auto* s = std::get_if<std::string>(&m)) {
              c.send(*s + *s);
            } else {
              auto v = std::get<std::vector<double>>(m);
              c.send(static_cast<int>(v.size()));
            }
          }
        },
        std::move(b));
    a.send(21);
    CHECK(std::get<int>(a.recv()) == 42);
    a.send(std::string("ab"));
    CHECK(std::get<std::string>(a.recv()) == "abab");
    a.send(std::vector<double>{1, 2, 3});
    CHECK(std::get<int>(a.recv()) == 3);
    a.send(-1);
    p.join();
    CHECK_THROWS_AS(a.recv(), mp::ChannelClosed);
  }
}

TEST_CASE("connection: messages of every size, each threshold of the framing and codec +-1") {
  std::vector<std::size_t> sizes = {0, 1, 2, 7, 8, 9, 15, 16, 17, 4095, 4096, 4097};
  for (std::size_t t : {mp::detail::small_frame, mp::Writer::view_threshold, std::size_t{1} << 20})
    for (std::size_t d : {t - 17, t - 16, t - 9, t - 8, t - 1, t, t + 1})
      sizes.push_back(d);  // a frame's body is 8 (tag) + 8 (length) + the string
  // The receive buffer kept between messages (keep_limit, 16 MiB) and the room reserved at once
  // for a frame (reserve_limit, 64 MiB): frames of the limit -1, +0, +1, and strings of it.
  for (std::size_t t : {mp::detail::keep_limit, mp::detail::reserve_limit})
    for (std::size_t d : {t - 17, t - 16, t - 15, t - 1, t, t + 1}) sizes.push_back(d);
  auto [a, b] = mp::connection_pair<std::string>();
  auto echo = mp::spawn(
      [](mp::Connection<std::string> c) {
        std::size_t n = 0;
        try {
          for (;;) {
            c.send(c.recv());
            ++n;
          }
        } catch (const mp::ChannelClosed&) {
        }
        return n;
      },
      std::move(b));
  for (std::size_t n : sizes) {
    INFO("size " << n);
    std::string s = pattern(n, static_cast<unsigned>(n));
    a.send(s);
    std::string back = a.recv();
    CHECK(back.size() == n);
    CHECK(back == s);
  }
  // Raw bytes too, both ways round the echo (send_bytes frames go through recv as encodings).
  a.close();
  CHECK(echo.join() == sizes.size());
  auto cd = mp::connection_pair<int>();
  auto& c = cd.first;
  auto& d = cd.second;
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, mp::detail::small_frame,
                        mp::detail::small_frame + 1, std::size_t{3} << 20}) {
    std::string s = pattern(n);
    std::thread t([&] { c.send_bytes(s); });
    CHECK(d.recv_bytes() == s);
    t.join();
  }
}

TEST_CASE("connection: recv_bytes_into, a buffer too small keeps the message") {
  auto ab = mp::connection_pair<int>();
  auto& a = ab.first;
  auto& b = ab.second;
  a.send_bytes("hello world");
  a.send_bytes("");
  char small[4];
  CHECK_THROWS_AS(b.recv_bytes_into(small), std::length_error);
  char buf[64];
  std::size_t n = b.recv_bytes_into(buf);
  CHECK(std::string(buf, n) == "hello world");
  CHECK(b.recv_bytes_into(buf) == 0);
  std::string big = pattern(200000);
  std::thread t([&] { a.send_bytes(big); });
  std::vector<char> out(big.size());
  CHECK(b.recv_bytes_into(out) == big.size());
  CHECK(std::memcmp(out.data(), big.data(), big.size()) == 0);
  t.join();
}

TEST_CASE("connection: a peer that exits after N messages: N received, then ChannelClosed") {
  auto [a, b] = mp::connection_pair<int>();
  auto p = mp::spawn(
      [](mp::Connection<int> c, int n) {
        for (int i = 0; i < n; ++i) c.send(i);
      },
      std::move(b), 100);
  p.join();  // gone before we read a thing (100 small messages fit in the socket's buffer)
  for (int i = 0; i < 100; ++i) REQUIRE(a.recv() == i);
  CHECK_THROWS_AS(a.recv(), mp::ChannelClosed);
  CHECK_THROWS_AS(a.recv(), mp::ChannelClosed);
  // And a peer that closes its end without exiting.
  auto [x, y] = mp::connection_pair<int>();
  y.send(5);
  y.close();
  CHECK(x.recv() == 5);
  CHECK_THROWS_AS(x.recv(), mp::ChannelClosed);
}

TEST_CASE("connection: a peer killed in the middle of a message is PeerDiedMidMessage") {
  auto [a, b] = mp::connection_pair<std::string>();
  auto p = mp::spawn(
      [](mp::Connection<std::string> c) {
        c.send(std::string(std::size_t{256} << 20, 'm'));  // blocks: nobody reads it all
      },
      std::move(b));
  REQUIRE(a.poll(60s));                // the message has begun
  std::this_thread::sleep_for(100ms);  // and fills the socket
  p.kill();
  CHECK_THROWS_AS(p.join(), mp::ProcessDied);
  CHECK_THROWS_AS(a.recv(), mp::PeerDiedMidMessage);
  CHECK_THROWS_AS(a.recv(), mp::ChannelClosed);  // nothing after it
}

TEST_CASE("connection: send to a peer that is gone is ChannelClosed, never SIGPIPE") {
  auto [a, b] = mp::connection_pair<std::string>();
  auto p = mp::spawn([](mp::Connection<std::string> c) { c.close(); }, std::move(b));
  p.join();
  CHECK_THROWS_AS(a.send(std::string(1 << 20, 'x')), mp::ChannelClosed);
  CHECK_THROWS_AS(a.send("y"), mp::ChannelClosed);
  CHECK_THROWS_AS(a.send_bytes("z"), mp::ChannelClosed);
}

TEST_CASE("connection: hostile and wrong bytes are SerializationError, the stream stays usable") {
  auto [a, b] = mp::connection_pair<std::map<std::string, int>>();
  a.send_bytes("\x01\x02\x03");                               // too short for a tag
  std::string forged = mp::to_bytes(std::vector<int>{1, 2});  // another type's message
  a.send_bytes(forged);
  // A length field of 2^60 inside a message of the right type.
  std::string huge = mp::to_bytes(std::map<std::string, int>{{"k", 1}});
  std::uint64_t count = std::uint64_t{1} << 60;
  std::memcpy(huge.data() + 8, &count, sizeof count);
  a.send_bytes(huge);
  a.send({{"ok", 1}});
  CHECK_THROWS_AS(b.recv(), mp::SerializationError);
  CHECK_THROWS_AS(b.recv(), mp::SerializationError);
  CHECK_THROWS_AS(b.recv(), mp::SerializationError);
  CHECK(b.recv() == std::map<std::string, int>{{"ok", 1}});
  // A frame header that announces 2^60 bytes, then the writer goes: nothing that size is
  // allocated, and the reader learns it at once.
  auto cd = mp::connection_pair<int>();
  auto& c = cd.first;
  auto& d = cd.second;
  std::uint64_t len = std::uint64_t{1} << 60;
  std::string header(reinterpret_cast<const char*>(&len), sizeof len);
  std::thread t([&] {
  // Write a raw frame header through the handle, as a hostile peer would.
#if !defined(_WIN32)
    (void)::write(c.native_handle(), header.data(), header.size());
    (void)::write(c.native_handle(), "abc", 3);
#else
    // Windows: the ends are overlapped pipe handles; write through the back end's call.
    mp::detail::Chunk raw[2] = {{header.data(), header.size()}, {"abc", 3}};
    (void)mp::detail::write_chunks(c.native_handle(), raw);
#endif
    c.close();
  });
  t.join();
  CHECK_THROWS_AS(d.recv(), mp::PeerDiedMidMessage);
}

TEST_CASE("connection: poll and recv_for time out, and a late message still arrives whole") {
  auto [a, b] = mp::connection_pair<std::string>();
  auto t0 = Clock::now();
  CHECK_FALSE(a.poll());
  CHECK_FALSE(a.poll(50ms));
  CHECK(Clock::now() - t0 >= 45ms);
  CHECK_FALSE(a.recv_for(50ms).has_value());
  auto p = mp::spawn(
      [](mp::Connection<std::string> c) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        c.send("late");
      },
      std::move(b));
  CHECK_FALSE(a.recv_for(10ms).has_value());
  CHECK(a.poll(60s));
  CHECK(a.recv_for(60s) == "late");
  p.join();
  CHECK(a.poll(1s));  // the end is "ready" too: recv would not block
  CHECK_THROWS_AS(a.recv(), mp::ChannelClosed);
}

TEST_CASE("connection: a message that arrives in pieces across recv_for deadlines is kept") {
  auto [a, b] = mp::connection_pair<std::string>();
  std::string msg = mp::to_bytes(std::string(100000, 'p'));
  std::uint64_t len = msg.size();
  std::string frame(reinterpret_cast<const char*>(&len), sizeof len);
  frame += msg;
  std::thread writer([&, h = b.native_handle()] {
    for (std::size_t at = 0; at < frame.size(); at += 30000) {
      const std::size_t n = std::min<std::size_t>(30000, frame.size() - at);
#if !defined(_WIN32)
      (void)::write(h, frame.data() + at, n);
#else
      mp::detail::Chunk piece[1] = {{frame.data() + at, n}};  // an overlapped pipe end
      (void)mp::detail::write_chunks(h, piece);
#endif
      std::this_thread::sleep_for(30ms);
    }
  });
  int timeouts = 0;
  std::optional<std::string> got;
  while (!(got = a.recv_for(10ms))) ++timeouts;
  writer.join();
  CHECK(*got == std::string(100000, 'p'));
  CHECK(timeouts > 0);
}

TEST_CASE("connection: wait over 100 connections returns exactly the ready ones") {
  std::vector<mp::Connection<int>> ours, theirs;
  for (int i = 0; i < 100; ++i) {
    auto [x, y] = mp::connection_pair<int>();
    ours.push_back(std::move(x));
    theirs.push_back(std::move(y));
  }
  CHECK(mp::wait(ours, 20ms).empty());
  for (int i : {3, 50, 99}) theirs[static_cast<std::size_t>(i)].send(i);
  auto ready = mp::wait(ours, 10s);
  CHECK(ready == std::vector<std::size_t>{3, 50, 99});
  for (std::size_t i : ready) CHECK(ours[i].recv() == static_cast<int>(i));
  std::vector<mp::Connection<int>*> some{&ours[1], &ours[2]};
  theirs[2].send(2);
  CHECK(mp::wait(std::span<mp::Connection<int>* const>(some), 10s) == std::vector<std::size_t>{1});
  // Across processes: each child answers after a delay of its own.
  std::vector<mp::Process<void>> kids;
  for (int i = 0; i < 4; ++i)
    kids.push_back(mp::spawn(
        [](mp::Connection<int> c, int ms) {
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
          c.send(ms);
        },
        std::move(theirs[static_cast<std::size_t>(10 + i)]), 100 * (i + 1)));
  std::vector<int> order;
  while (order.size() < 4) {
    for (std::size_t i : mp::wait(ours, 30s)) {
      if (i >= 10 && i < 14 && ours[i].poll()) {
        try {
          order.push_back(ours[i].recv());
        } catch (const mp::ChannelClosed&) {
        }
      }
    }
  }
  CHECK(order == std::vector<int>{100, 200, 300, 400});
  for (auto& k : kids) k.join();
}

TEST_CASE("connection: a message of more than 4 GiB", "[serial]") {
  if (sanitized()) {
    WARN("skipped under a sanitizer (memory)");
    return;
  }
  const std::size_t n = (std::size_t{4} << 30) + 4099;
  auto [a, b] = mp::connection_pair<int>();
  auto p = mp::spawn(
      [](mp::Connection<int> c, std::size_t n) {
        std::string big(n, '\0');
        for (std::size_t i = 0; i < n; i += 4096) big[i] = static_cast<char>('A' + (i / 4096) % 26);
        big[n - 1] = '!';
        c.send_bytes(big);
      },
      std::move(b), n);
  std::string got = a.recv_bytes();
  CHECK(p.join_for(300s));
  REQUIRE(got.size() == n);
  bool ok = got[n - 1] == '!';
  for (std::size_t i = 0; i < n && ok; i += 4096)
    ok = got[i] == static_cast<char>('A' + (i / 4096) % 26);
  CHECK(ok);
}

TEST_CASE("connection: big strings and vectors of numbers are received in place, checked") {
  auto ab = mp::connection_pair<std::vector<double>>();
  std::vector<double> v(300000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.5;
  std::thread t([&] { ab.second.send(v); });
  CHECK(ab.first.recv() == v);
  t.join();
  // A forged big message: the right tag, a count that does not match the frame.
  std::string forged = mp::to_bytes(v);
  std::uint64_t wrong = v.size() + 1;
  std::memcpy(forged.data() + 8, &wrong, sizeof wrong);
  std::thread f([&] {
    ab.second.send_bytes(forged);
    ab.second.send({1.5});
  });
  CHECK_THROWS_AS(ab.first.recv(), mp::SerializationError);
  CHECK(ab.first.recv() == std::vector<double>{1.5});  // the stream is still in step
  f.join();
  // Another type's big message.
  std::string other = mp::to_bytes(std::vector<float>(100000, 1.0f));
  std::thread g([&] { ab.second.send_bytes(other); });
  CHECK_THROWS_AS(ab.first.recv(), mp::SerializationError);
  g.join();
}
