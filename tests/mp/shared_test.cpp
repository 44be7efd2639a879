// proc::mp::Lock, SharedMemory, Shared and SharedArray: exact counts under contention, holders
// that die or exec while holding, timeouts, and no descriptor or /dev/shm growth. This program
// is its own child (see mp_main.cpp). Windows: the holder is ended with TerminateProcess (what
// kill() does there), and there is no exec.
#include <proc/config.hpp>

#if !defined(PROC_WINDOWS)
#  include <dirent.h>
#  include <unistd.h>
#endif

#include <chrono>
#include <cstring>
#include <mutex>
#include <proc/mp.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../test_support.hpp"
#include "windows_support.hpp"

using namespace std::chrono_literals;
namespace mp = proc::mp;
using Clock = std::chrono::steady_clock;

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define PROC_TEST_TSAN 1
#  endif
#endif
#if !defined(PROC_TEST_TSAN)
#  define PROC_TEST_TSAN 0
#endif

namespace {

// Entries in /dev/shm (Windows has none: its sections have no name to leave behind).
int dev_shm_entries() {
  int n = 0;
#if !defined(PROC_WINDOWS)
  if (DIR* d = opendir("/dev/shm")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
#endif
  return n;
}

using test::handles_now;

// A plain (non-atomic) long in raw shared memory, incremented under the lock: a lost update
// would show as a short count.
void add_under_lock(mp::Lock lock, mp::SharedMemory mem, int times) {
  auto* counter = reinterpret_cast<volatile long*>(mem.bytes().data());
  for (int i = 0; i < times; ++i) {
    std::scoped_lock g(lock);
    *counter = *counter + 1;
  }
}

// Takes the lock, says so, and waits to be killed while holding it.
void hold_forever(mp::Lock lock, mp::Connection<int> c) {
  lock.lock();
  c.send(1);
  for (;;) std::this_thread::sleep_for(1s);
}

// Takes the lock, says so, holds it for `ms`, lets it go.
void hold_for(mp::Lock lock, mp::Connection<int> c, int ms) {
  std::scoped_lock g(lock);
  c.send(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace

TEST_CASE("lock: 8 processes x 100,000 increments under a Lock are exact") {
  mp::Lock lock;
  auto mem = mp::SharedMemory::create(sizeof(long));
  const int per = 100000;
  std::vector<mp::Process<void>> ps;
  for (int i = 0; i < 8; ++i) ps.push_back(mp::spawn(mp::fn<&add_under_lock>, lock, mem, per));
  for (auto& p : ps) p.join();
  CHECK(*reinterpret_cast<long*>(mem.bytes().data()) == 8L * per);
}

TEST_CASE("lock: a holder SIGKILLed while holding, OwnerDeath::poison") {
  mp::Lock lock;  // poison is the default
  CHECK(lock.owner_death() == mp::OwnerDeath::poison);
  auto [rx, tx] = mp::connection_pair<int>();
  auto p = mp::spawn(mp::fn<&hold_forever>, lock, std::move(tx));
  REQUIRE(rx.recv() == 1);
  CHECK_FALSE(lock.try_lock());
  p.kill();
  CHECK_THROWS_AS(p.join(), mp::ProcessDied);
  auto t0 = Clock::now();
  CHECK_THROWS_AS(lock.lock(), mp::OwnerDied);     // the next locker is told, never hangs
  CHECK_THROWS_AS(lock.lock(), mp::LockPoisoned);  // and the lock stays poisoned
  CHECK_THROWS_AS(lock.try_lock(), mp::LockPoisoned);
  CHECK_THROWS_AS(lock.try_lock_for(10ms), mp::LockPoisoned);
  CHECK_THROWS_AS((void)lock.acquire(), mp::LockPoisoned);
  // Other processes too.
  auto q = mp::spawn(
      [](mp::Lock l) {
        try {
          l.lock();
          return std::string("locked");
        } catch (const mp::LockPoisoned& e) {
          return std::string("poisoned");
        }
      },
      lock);
  CHECK(q.join() == "poisoned");
  CHECK(Clock::now() - t0 < 30s);
}

TEST_CASE("lock: acquire() reports the death and mark_consistent() heals a poisoned lock") {
  mp::Lock lock;
  auto [rx, tx] = mp::connection_pair<int>();
  auto p = mp::spawn(mp::fn<&hold_forever>, lock, std::move(tx));
  REQUIRE(rx.recv() == 1);
  p.kill();
  CHECK_THROWS_AS(p.join(), mp::ProcessDied);
  {
    auto g = lock.acquire();
    CHECK(g.previous_owner_died());
    g.mark_consistent();
  }
  {
    auto g = lock.acquire();  // healed: a plain lock again
    CHECK_FALSE(g.previous_owner_died());
  }
  std::scoped_lock ok(lock);
}

TEST_CASE("lock: a holder SIGKILLed while holding, OwnerDeath::recover") {
  mp::Lock lock(mp::OwnerDeath::recover);
  for (int round = 0; round < 2; ++round) {
    auto [rx, tx] = mp::connection_pair<int>();
    auto p = mp::spawn(mp::fn<&hold_forever>, lock, std::move(tx));
    REQUIRE(rx.recv() == 1);
    p.kill();
    CHECK_THROWS_AS(p.join(), mp::ProcessDied);
    if (round == 0) {
      lock.lock();  // recovered silently
      lock.unlock();
    } else {
      auto g = lock.acquire();
      CHECK(g.previous_owner_died());
    }
  }
  // Work goes on: other processes count exactly.
  auto mem = mp::SharedMemory::create(sizeof(long));
  std::vector<mp::Process<void>> ps;
  for (int i = 0; i < 3; ++i) ps.push_back(mp::spawn(mp::fn<&add_under_lock>, lock, mem, 1000));
  for (auto& p : ps) p.join();
  CHECK(*reinterpret_cast<long*>(mem.bytes().data()) == 3000);
}

#if !defined(PROC_WINDOWS)
TEST_CASE("lock: a holder that execs while holding releases it to the next locker") {
  mp::Lock lock;
  auto [rx, tx] = mp::connection_pair<int>();
  auto p = mp::spawn(
      [](mp::Lock l, mp::Connection<int> c) {
        l.lock();
        c.send(1);
        ::execl(PROC_TEST_CHILD, PROC_TEST_CHILD, "sleep", "30000", static_cast<char*>(nullptr));
        std::abort();
      },
      lock, std::move(tx));
  REQUIRE(rx.recv() == 1);
  auto t0 = Clock::now();
  CHECK_THROWS_AS(lock.lock(), mp::OwnerDied);  // waits for the exec, then is told
  CHECK(Clock::now() - t0 < 30s);
  p.kill();
  CHECK_THROWS(p.join());
}
#endif

TEST_CASE("lock: try_lock_for and acquire_for with hours::max() wait without limit") {
  // The longest timeout there is means no limit: not "already expired" after an overflow.
  mp::Lock lock;
  for (bool guard : {false, true}) {
    auto [rx, tx] = mp::connection_pair<int>();
    auto p = mp::spawn(mp::fn<&hold_for>, lock, std::move(tx), 300);
    REQUIRE(rx.recv() == 1);
    auto t0 = Clock::now();
    if (guard) {
      auto g = lock.acquire_for(std::chrono::hours::max());
      CHECK(g.has_value());
    } else {
      CHECK(lock.try_lock_for(std::chrono::hours::max()));
      lock.unlock();
    }
    CHECK(Clock::now() - t0 >= 200ms);
    p.join();
  }
}

TEST_CASE("lock: try_lock, try_lock_for and misuse") {
  mp::Lock lock;
  auto [rx, tx] = mp::connection_pair<int>();
  auto p = mp::spawn(
      [](mp::Lock l, mp::Connection<int> c) {
        std::scoped_lock g(l);
        c.send(1);
        (void)c.recv();  // hold until told
      },
      lock, std::move(tx));
  REQUIRE(rx.recv() == 1);
  CHECK_FALSE(lock.try_lock());
  auto t0 = Clock::now();
  CHECK_FALSE(lock.try_lock_for(200ms));
  auto took = Clock::now() - t0;
  CHECK(took >= 190ms);
  CHECK(took < 5s);
  CHECK_FALSE(lock.acquire_for(50ms).has_value());
  rx.send(0);
  p.join();
  CHECK(lock.try_lock_for(5s));
  CHECK_THROWS_AS(lock.lock(), std::logic_error);  // not recursive
  lock.unlock();
#if !defined(__SANITIZE_THREAD__) && !PROC_TEST_TSAN
  // ThreadSanitizer reports the very misuse this checks (an unlock of an unlocked mutex).
  CHECK_THROWS_AS(lock.unlock(), std::logic_error);  // not held
  // Unlocked by another thread than the holder's: refused too, and the lock stays held.
  lock.lock();
  std::thread([&] { CHECK_THROWS_AS(lock.unlock(), std::logic_error); }).join();
  CHECK(mp::spawn([](mp::Lock l) { return l.try_lock(); }, lock).join() == false);
  lock.unlock();
#endif
}

TEST_CASE("shared: Shared<T> and SharedArray<T> are exact under contention") {
  mp::Shared<long> counter(0);
  mp::SharedArray<int> slots(4, -1);
  CHECK(slots.size() == 4);
  CHECK(slots.to_vector() == std::vector<int>{-1, -1, -1, -1});
  std::vector<mp::Process<void>> ps;
  for (int i = 0; i < 4; ++i)
    ps.push_back(mp::spawn(
        [](mp::Shared<long> c, mp::SharedArray<int> a, int me) {
          for (int k = 0; k < 20000; ++k) c.update([](long& v) { ++v; });
          a.store(static_cast<std::size_t>(me), me * 10);
          a.update([](std::span<int> s) { s[0] += 0; });
        },
        counter, slots, i));
  for (auto& p : ps) p.join();
  CHECK(counter.load() == 80000);
  CHECK(slots.to_vector() == std::vector<int>{0, 10, 20, 30});
  counter.store(5);
  CHECK(counter.update([](long& v) { return v *= 2; }) == 10);
  {
    auto g = counter.lock();
    *g += 1;
  }
  CHECK(counter.load() == 11);
  CHECK_THROWS_AS(slots.load(4), std::out_of_range);
  CHECK_THROWS_WITH(slots.store(9, 1), Catch::Contains("index 9"));
  struct Pair {
    double x;
    int y;
  };
  mp::Shared<Pair> pair(Pair{1.5, 2});
  auto q =
      mp::spawn([](mp::Shared<Pair> s) { s.update([](Pair& v) { v.x *= 2, v.y += 1; }); }, pair);
  q.join();
  CHECK(pair.load().x == 3.0);
  CHECK(pair.load().y == 3);
}

TEST_CASE("shared: a holder of Shared's lock killed mid-update poisons it, never hangs") {
  mp::Shared<long> v(7);
  auto [rx, tx] = mp::connection_pair<int>();
  auto p = mp::spawn(
      [](mp::Shared<long> s, mp::Connection<int> c) {
        auto g = s.lock();
        *g = -1;  // half an update
        c.send(1);
        for (;;) std::this_thread::sleep_for(1s);
      },
      v, std::move(tx));
  REQUIRE(rx.recv() == 1);
  p.kill();
  CHECK_THROWS_AS(p.join(), mp::ProcessDied);
  CHECK_THROWS_AS(v.load(), mp::OwnerDied);
  CHECK_THROWS_AS(v.load(), mp::LockPoisoned);
  mp::Shared<long> r(7, mp::OwnerDeath::recover);
  auto [rx2, tx2] = mp::connection_pair<int>();
  auto p2 = mp::spawn(
      [](mp::Shared<long> s, mp::Connection<int> c) {
        auto g = s.lock();
        *g = 8;
        c.send(1);
        for (;;) std::this_thread::sleep_for(1s);
      },
      r, std::move(tx2));
  REQUIRE(rx2.recv() == 1);
  p2.kill();
  CHECK_THROWS_AS(p2.join(), mp::ProcessDied);
  auto g = r.lock();
  CHECK(g.previous_owner_died());
  CHECK(*g == 8);
}

TEST_CASE("shared: SharedMemory is seen by children, and size 0 is refused") {
  auto mem = mp::SharedMemory::create(1 << 20);
  CHECK(mem.size() == 1 << 20);
  CHECK(mem.bytes()[12345] == std::byte{0});  // zero-filled
  auto p = mp::spawn(
      [](mp::SharedMemory m) {
        std::memset(m.bytes().data(), 'z', m.size());
        return m.size();
      },
      mem);
  CHECK(p.join() == std::size_t{1} << 20);
  CHECK(mem.bytes()[0] == std::byte{'z'});
  CHECK(mem.bytes()[(1 << 20) - 1] == std::byte{'z'});
  CHECK_THROWS_WITH(mp::SharedMemory::create(0), Catch::Contains("size 0"));
}

TEST_CASE("shared: 1,000 create/destroy cycles leave no descriptor and nothing in /dev/shm") {
  // A first round takes what is made once per process (Windows: the free list of events).
  for (int i = 0; i < 2; ++i) {
    mp::Queue<int> q;
    q.put(i);
    CHECK(q.get() == i);
  }
  mp::spawn([](mp::Lock lk) { std::scoped_lock g(lk); }, mp::Lock{}).join();
  int fds = handles_now();
  int shm = dev_shm_entries();
  for (int i = 0; i < 1000; ++i) {
    mp::Lock l;
    mp::Shared<int> s(i);
    mp::SharedArray<char> a(100);
    auto m = mp::SharedMemory::create(4096);
    std::scoped_lock g(l);
    s.store(i + 1);
    mp::Queue<int> q;
    q.put(i);
    CHECK(q.get() == i);
  }
  // And passed to children, 20 times.
  for (int i = 0; i < 20; ++i) {
    mp::Lock l;
    mp::Shared<int> s(0);
    mp::spawn(
        [](mp::Lock lk, mp::Shared<int> v) {
          std::scoped_lock g(lk);
          v.store(1);
        },
        l, s)
        .join();
    CHECK(s.load() == 1);
  }
  CHECK(handles_now() == fds);
  CHECK(dev_shm_entries() == shm);
}
