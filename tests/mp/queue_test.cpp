// proc::mp::Queue, Sender and Receiver: many producers and consumers, each message whole and
// exactly once, producers and consumers killed mid-loop, the end of the messages when every
// sender is gone, ChannelClosed when every receiver is gone, timeouts and big messages. This
// program is its own child (see mp_main.cpp). Windows: kill() is TerminateProcess.
#include <chrono>
#include <map>
#include <optional>
#include <proc/mp.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../test_support.hpp"

using namespace std::chrono_literals;
namespace mp = proc::mp;
using Clock = std::chrono::steady_clock;

namespace {

struct Item {
  int producer = 0;
  int seq = 0;
  std::string body;
};

std::string body_of(int producer, int seq, std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>('a' + (static_cast<std::size_t>(producer * 31 + seq) + i) % 26);
  return s;
}

bool intact(const Item& it) { return it.body == body_of(it.producer, it.seq, it.body.size()); }

void produce(mp::Sender<Item> tx, int me, int count, std::size_t size) {
  for (int i = 0; i < count; ++i) tx.put(Item{me, i, body_of(me, i, size)});
}

// Receives until the end of the messages; returns (producer, seq) of each, checking bodies.
std::vector<std::pair<int, int>> consume(mp::Receiver<Item> rx) {
  std::vector<std::pair<int, int>> got;
  for (Item& it : rx) {
    if (!intact(it)) throw std::runtime_error("a torn message");
    got.emplace_back(it.producer, it.seq);
  }
  return got;
}

// Waits `ms`, then puts `s`.
void put_later(mp::Sender<std::string> tx, int ms, std::string s) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  tx.put(s);
}

// Waits `ms`, then takes `n` messages.
void take_later(mp::Receiver<std::string> rx, int ms, int n) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  for (int i = 0; i < n; ++i) (void)rx.get();
}

}  // namespace

TEST_CASE("queue: 4 producers x 4 consumers, every message exactly once and intact") {
  for (std::size_t size : {std::size_t{10}, std::size_t{40000}}) {  // inline, and a memfd each
    mp::Queue<Item> q;
    const int per = size < 1000 ? 2000 : 200;
    std::vector<mp::Process<void>> producers;
    std::vector<mp::Process<std::vector<std::pair<int, int>>>> consumers;
    for (int c = 0; c < 4; ++c) consumers.push_back(mp::spawn(mp::fn<&consume>, q.receiver()));
    for (int p = 0; p < 4; ++p)
      producers.push_back(mp::spawn(mp::fn<&produce>, q.sender(), p, per, size));
    q.close_sender();  // only the producers send now
    q.close_receiver();
    for (auto& p : producers) p.join();
    std::map<std::pair<int, int>, int> seen;
    for (auto& c : consumers)
      for (auto& key : c.join()) ++seen[key];
    CHECK(seen.size() == static_cast<std::size_t>(4 * per));
    bool once = true;
    for (auto& [key, n] : seen) once = once && n == 1;
    CHECK(once);
  }
}

TEST_CASE("queue: a producer SIGKILLed in a put loop: every completed message, none partial") {
  for (std::size_t size : {std::size_t{100}, std::size_t{100000}}) {
    mp::Queue<Item> q;
    auto p = mp::spawn(mp::fn<&produce>, q.sender(), 1, 1000000, size);
    q.close_sender();
    auto rx = q.receiver();
    q.close_receiver();
    // Let it put a while, then kill it mid-loop.
    for (int i = 0; i < 50; ++i) {
      Item it = rx.get();
      CHECK(intact(it));
      CHECK(it.seq == i);
    }
    p.kill();
    CHECK_THROWS_AS(p.join(), mp::ProcessDied);
    int next = 50;
    bool ok = true;
    for (Item& it : rx) {  // drains what was queued, then the end: never a torn message
      ok = ok && intact(it) && it.seq == next;
      ++next;
    }
    CHECK(ok);
    CHECK(next >= 50);
    CHECK_THROWS_AS(rx.get(), mp::ChannelClosed);
  }
}

TEST_CASE("queue: a consumer killed in a get loop, the others go on") {
  mp::Queue<int> q;
  auto victim = mp::spawn(
      [](mp::Receiver<int> rx) {
        for (;;) (void)rx.get();
      },
      q.receiver());
  for (int i = 0; i < 100; ++i) q.put(i);
  victim.kill();
  CHECK_THROWS_AS(victim.join(), mp::ProcessDied);
  auto other = mp::spawn(
      [](mp::Receiver<int> rx) {
        long sum = 0;
        for (int v : rx) sum += v;
        return sum;
      },
      q.receiver());
  for (int i = 1; i <= 1000; ++i) q.put(i);
  q.close_sender();
  CHECK(other.join() >= 500500);  // all of these, plus whatever the victim left
}

TEST_CASE("queue: every sender gone (closed, exited or killed) -> drain, then ChannelClosed") {
  mp::Queue<std::string> q;
  auto rx = q.receiver();
  auto a = mp::spawn([](mp::Sender<std::string> tx) { tx.put("from a"); }, q.sender());
  auto b = mp::spawn(
      [](mp::Sender<std::string> tx) {
        tx.put("from b");
        std::abort();  // dies, however
      },
      q.sender());
  q.put("from me");
  q.close_sender();
  a.join();
  CHECK_THROWS(b.join());
  std::set<std::string> got;
  auto t0 = Clock::now();
  for (std::string& s : rx) got.insert(s);
  CHECK(got == std::set<std::string>{"from a", "from b", "from me"});
  CHECK_THROWS_AS(rx.get(), mp::ChannelClosed);
  CHECK(Clock::now() - t0 < 30s);
}

TEST_CASE("queue: every receiver gone -> ChannelClosed on put") {
  mp::Queue<int> q;
  auto tx = q.sender();
  auto c = mp::spawn([](mp::Receiver<int> rx) { return rx.get(); }, q.receiver());
  q.close_receiver();
  tx.put(41);
  CHECK(c.join() == 41);
  CHECK_THROWS_AS(tx.put(1), mp::ChannelClosed);
}

TEST_CASE("queue: get_for and put_for with hours::max() wait without limit") {
  // The longest timeout there is means no limit: not "already expired" after an overflow.
  mp::Queue<std::string> q;
  auto tx = q.sender();
  auto rx = q.receiver();
  auto p = mp::spawn(mp::fn<&put_later>, tx, 300, std::string("late"));
  auto t0 = Clock::now();
  auto got = rx.get_for(std::chrono::hours::max());
  CHECK(got == std::optional<std::string>("late"));
  CHECK(Clock::now() - t0 >= 200ms);
  p.join();
  int sent = 0;
  while (tx.try_put(std::string(1000, 'f'))) ++sent;
  REQUIRE(sent > 0);
  // The child takes all of them: a sender may wake only once most of the room is free again.
  auto c = mp::spawn(mp::fn<&take_later>, rx, 300, sent);
  t0 = Clock::now();
  CHECK(tx.put_for(std::string(1000, 'g'), std::chrono::hours::max()));
  CHECK(Clock::now() - t0 >= 200ms);
  c.join();
  auto last = rx.get_for(10s);
  REQUIRE(last.has_value());
  CHECK(last->size() == 1000);
}

TEST_CASE("queue: timeouts, try_ forms and a full queue") {
  mp::Queue<std::string> q;
  auto t0 = Clock::now();
  CHECK_FALSE(q.get_for(150ms).has_value());
  CHECK(Clock::now() - t0 >= 140ms);
  auto rx = q.receiver();
  CHECK_FALSE(rx.try_get().has_value());
  auto tx = q.sender();
  // Fill it: nobody reads, so puts stop succeeding.
  int sent = 0;
  while (tx.try_put(std::string(1000, 'f'))) ++sent;
  CHECK(sent > 0);
  t0 = Clock::now();
  CHECK_FALSE(tx.put_for(std::string(1000, 'f'), 100ms));
  CHECK(Clock::now() - t0 >= 90ms);
  for (int i = 0; i < sent; ++i) CHECK(rx.try_get().value().size() == 1000);
  CHECK_FALSE(rx.try_get().has_value());
  // Empty and 0-byte messages are messages, not the end.
  q.put("");
  CHECK(q.get().empty());
}

TEST_CASE("queue: big messages while producers are killed") {
  mp::Queue<Item> q;
  std::vector<mp::Process<void>> ps;
  for (int p = 0; p < 3; ++p)
    ps.push_back(mp::spawn(mp::fn<&produce>, q.sender(), p, 1000000, std::size_t{3} << 20));
  q.close_sender();
  auto rx = q.receiver();
  for (int i = 0; i < 10; ++i) CHECK(intact(rx.get()));
  for (auto& p : ps) p.kill();
  for (auto& p : ps) CHECK_THROWS_AS(p.join(), mp::ProcessDied);
  int n = 0;
  bool ok = true;
  for (Item& it : rx) ok = ok && intact(it) && it.body.size() == std::size_t{3} << 20, ++n;
  CHECK(ok);
  // One very big message through a child: 64 MiB.
  mp::Queue<std::string> big;
  auto c = mp::spawn([](mp::Receiver<std::string> r) { return r.get().size(); }, big.receiver());
  big.put(std::string(std::size_t{64} << 20, 'B'));
  CHECK(c.join() == std::size_t{64} << 20);
}

TEST_CASE("queue: a big-message producer killed mid-put while other senders stay open") {
  // No end of the messages comes (the queue's own sender is open): a receiver that was inside
  // the torn message must still give up on it, within its own time limit, and go on.
  mp::Queue<Item> q;
  auto p = mp::spawn(mp::fn<&produce>, q.sender(), 7, 1000000, std::size_t{1} << 20);
  auto rx = q.receiver();
  for (int i = 0; i < 3; ++i) CHECK(intact(rx.get()));
  p.kill();  // most likely blocked in the middle of a message: the queue is full
  CHECK_THROWS_AS(p.join(), mp::ProcessDied);
  auto t0 = Clock::now();
  int more = 0;
  bool ok = true;
  while (auto it = rx.get_for(500ms)) ok = ok && intact(*it), ++more;
  CHECK(ok);
  CHECK(Clock::now() - t0 < 30s);
  q.put(Item{9, 0, body_of(9, 0, 100)});
  q.put(Item{9, 1, body_of(9, 1, 200000)});  // more than one chunk on Windows, less than 4 MiB
  auto a = rx.get_for(10s);
  auto b = rx.get_for(10s);
  REQUIRE(a.has_value());
  REQUIRE(b.has_value());
  CHECK((a->producer == 9 && a->seq == 0 && intact(*a)));
  CHECK((b->producer == 9 && b->seq == 1 && intact(*b)));
}

TEST_CASE("queue: a Queue's ends are refused for messages that carry handles") {
  mp::Queue<mp::Lock> q;
  CHECK_THROWS_AS(q.put(mp::Lock{}), std::invalid_argument);
}
