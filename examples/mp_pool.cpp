// proc::mp::Pool: map, submit, and a worker that dies without taking the pool down.
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <proc/mp.hpp>
#include <vector>

namespace mp = proc::mp;

int square(int x) { return x * x; }

int main() {
  mp::init();

  // [map]
  mp::Pool pool({.workers = 4});
  std::vector<int> squares = pool.map(mp::fn<&square>, std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  fmt::print("squares: {}\n", squares);
  // [map]

  // [submit]
  mp::Future<int> f = pool.submit(mp::fn<&square>, 12);
  fmt::print("12 squared is {}\n", f.get());
  // [submit]

  // [worker_died]
  // A task that kills its worker fails alone; the pool replaces the worker and goes on
  // (Python's Pool would hang here, and ProcessPoolExecutor would break for good).
  auto crash = pool.submit([] {
    std::abort();
    return 0;
  });
  try {
    crash.get();
  } catch (const mp::WorkerDied& e) {
    fmt::print("that task failed: {}\n", e.what());
  }
  fmt::print("and the pool goes on: {}\n", pool.submit(mp::fn<&square>, 5).get());
  // [worker_died]
  return 0;
}
