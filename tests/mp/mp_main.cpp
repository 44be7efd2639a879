// The main of the proc::mp tests. These test programs are their own children: a child is a
// fresh run of the same executable, in which proc::mp::init() runs the requested target and
// exits, so it must come first. Catch2's implementation is in ../catch_impl.cpp.
#include <proc/mp.hpp>

int proc_test_run_catch(int argc, char* argv[]);

int main(int argc, char* argv[]) {
  proc::mp::init();
  return proc_test_run_catch(argc, argv);
}
