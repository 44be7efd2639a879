// proc::mp::Manager (Python's Manager()): a dict shared by 20 processes. Each takes 100 from a
// count four ways: `add` (one atomic request: exact, no lock), `compare_exchange` in a retry
// loop (exact), `get` then `set` under a `Lock` (exact: the tutorial's fix), and `get` then
// `set` alone (two requests: other processes' updates in between are lost). POSIX only for now.
#include <fmt/core.h>

#include <mutex>
#include <proc/mp.hpp>
#include <string>
#include <vector>

namespace mp = proc::mp;
using Dict = mp::SharedDict<std::string, int>;

constexpr int processes = 20;
constexpr int per_process = 100;

// [add]
// One request per decrement, applied whole by the manager: nothing to lock.
void take_with_add(Dict d) {
  for (int i = 0; i < per_process; ++i) d.add("count", -1);
}
// [add]

// [compare_exchange]
// Read, then write only if nobody changed it meanwhile; else read again.
void take_with_compare_exchange(Dict d) {
  for (int i = 0; i < per_process; ++i) {
    int v = d.get("count").value_or(0);
    while (!d.compare_exchange("count", v, v - 1)) v = d.get("count").value_or(0);
  }
}
// [compare_exchange]

// [get_set]
// Two requests: another process may set "count" between them, and this set overwrites that.
// This is Python's `d["count"] -= 1` on a manager dict; it needs a lock around it.
void take_with_get_set(Dict d) {
  for (int i = 0; i < per_process; ++i) d.set("count", d.get("count").value_or(0) - 1);
}
// [get_set]

// [lock]
// The same two requests under a Lock shared by the processes: nobody comes in between.
void take_with_lock(Dict d, mp::Lock lock) {
  for (int i = 0; i < per_process; ++i) {
    std::scoped_lock guard(lock);
    d.set("count", d.get("count").value_or(0) - 1);
  }
}
// [lock]

template <class F, class... Extra>
int run(mp::Manager& m, F target, Extra... extra) {
  Dict d = m.dict<std::string, int>({{"count", processes * per_process}});
  std::vector<mp::Process<void>> ps;
  for (int i = 0; i < processes; ++i) ps.push_back(mp::spawn(target, d, extra...));
  for (auto& p : ps) p.join();
  return d.get("count").value_or(-1);
}

int main() {
  mp::init();

  // [start]
  auto m = mp::Manager::start();  // serves from a thread of this process
  Dict d = m.dict<std::string, int>({{"name", 1}});
  d.set("spam", 2);
  for (const auto& [k, v] : d.items()) fmt::print("{} = {}\n", k, v);
  // [start]

  int with_add = run(m, mp::fn<&take_with_add>);
  int with_cas = run(m, mp::fn<&take_with_compare_exchange>);
  int with_lock = run(m, mp::fn<&take_with_lock>, mp::Lock{});
  int with_get_set = run(m, mp::fn<&take_with_get_set>);
  fmt::print("{} processes took {} each from {}:\n", processes, per_process,
             processes * per_process);
  fmt::print("  add:              {} left (always 0)\n", with_add);
  fmt::print("  compare_exchange: {} left (always 0)\n", with_cas);
  fmt::print("  get+set, Lock:    {} left (always 0)\n", with_lock);
  fmt::print("  get then set:     {} left (0 only by luck: updates were lost)\n", with_get_set);

  // [gone]
  m.shutdown();
  try {
    d.get("name");
  } catch (const mp::ManagerGone& e) {
    fmt::print("after shutdown: {}\n", e.what());
  }
  // [gone]
  return with_add == 0 && with_cas == 0 && with_lock == 0 ? 0 : 1;
}
