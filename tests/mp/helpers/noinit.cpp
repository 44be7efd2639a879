// A program that gets proc::mp::init() wrong, for the tests of what happens then.
//
//   mp_noinit never        never calls init(): starting a Process must be refused at once (a
//                          child would run main again, and its children too: a fork bomb)
//   mp_noinit conditional  calls init() only when it has an argument, which a child does not get:
//                          the child runs main, must not start children of its own, and the
//                          parent must get a SpawnError instead of waiting
#include <cstdio>
#include <proc/mp.hpp>
#include <string>

static int twice(int x) { return 2 * x; }

int main(int argc, char** argv) {
  const bool is_child = argc < 2;
  if (!is_child && std::string(argv[1]) == "conditional") proc::mp::init();
  std::printf("%s\n", is_child ? "child ran main" : "main ran");
  std::fflush(stdout);
  try {
    auto p = proc::mp::spawn(proc::mp::fn<&twice>, 21);
    std::printf("spawned: %d\n", p.join());
    return 1;  // must not happen in either mode
  } catch (const proc::SpawnError& e) {
    if (is_child) {
      std::printf("child refused to spawn: %s\n", e.what());
      return 3;
    }
    std::string what = e.what();
    if (std::string(argv[1]) == "never")
      std::printf("refused to start: %s\n", what.c_str());
    else
      std::printf("parent got SpawnError: %s\n", what.c_str());
    std::fflush(stdout);
    return 0;
  }
}
