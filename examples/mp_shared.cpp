// proc::mp::Lock and Shared<T>: Python's Lock and Value, robust. Several processes update one
// counter; a process killed while it holds the lock does not leave the others waiting.
#include <fmt/core.h>

#include <chrono>
#include <mutex>
#include <proc/config.hpp>
#include <proc/mp.hpp>
#include <thread>
#include <vector>

namespace mp = proc::mp;
using namespace std::chrono_literals;

// [counter]
// A plain counter in shared memory, guarded by a Lock passed to each process.
void deposit(mp::Lock lock, mp::SharedMemory account, int times) {
  auto* balance = reinterpret_cast<long*>(account.bytes().data());
  for (int i = 0; i < times; ++i) {
    std::scoped_lock guard(lock);  // Lock is Lockable
    *balance += 1;
  }
}
// [counter]

int main() {
  mp::init();
  // [counter_main]
  mp::Lock lock;
  auto account = mp::SharedMemory::create(sizeof(long));
  std::vector<mp::Process<void>> ps;
  for (int i = 0; i < 4; ++i) ps.push_back(mp::spawn(mp::fn<&deposit>, lock, account, 10000));
  for (auto& p : ps) p.join();
  long balance = *reinterpret_cast<long*>(account.bytes().data());
  fmt::print("balance after 4 x 10000 deposits: {}\n", balance);
  // [counter_main]

  // [value]
  // Shared<T> carries its own lock: update() is atomic across processes.
  mp::Shared<int> hits(0);
  std::vector<mp::Process<void>> workers;
  for (int i = 0; i < 4; ++i)
    workers.push_back(mp::spawn(
        [](mp::Shared<int> h) {
          for (int k = 0; k < 1000; ++k) h.update([](int& v) { ++v; });
        },
        hits));
  for (auto& w : workers) w.join();
  fmt::print("hits: {}\n", hits.load());
  // [value]

  // [owner_died]
  // A holder killed while it holds the lock: the next locker is told instead of waiting
  // forever. With OwnerDeath::recover it may repair the state and go on.
  mp::Lock robust(mp::OwnerDeath::recover);
  auto [ready, tell] = mp::connection_pair<int>();
  auto holder = mp::spawn(
      [](mp::Lock l, mp::Connection<int> c) {
        l.lock();
        c.send(1);
        for (;;) std::this_thread::sleep_for(1s);  // holds it until killed
      },
      robust, std::move(tell));
  ready.recv();
  holder.kill();
  try {
    holder.join();
  } catch (const mp::ProcessDied& e) {
    fmt::print("holder: {}\n", e.what());
  }
  auto guard = robust.acquire();
  fmt::print("next locker: previous owner died = {}\n", guard.previous_owner_died());
  // [owner_died]
  return balance == 40000 && hits.load() == 4000 && guard.previous_owner_died() ? 0 : 1;
}
