// The Catch2 main of the proc::mp tests. These test programs are their own children: a child is
// a fresh run of the same executable, in which proc::mp::init() runs the requested target and
// exits, so it must come first.
#include <proc/mp.hpp>

#if __has_include(<catch2/catch_session.hpp>)
#  include <catch2/catch_session.hpp>
#else
#  define CATCH_CONFIG_RUNNER
#  include <catch2/catch.hpp>
#endif

int main(int argc, char* argv[]) {
  proc::mp::init();
  return Catch::Session().run(argc, argv);
}
