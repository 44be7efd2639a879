// A second source file of process_test, for "two callables with one entry point key": its Twin
// is another type of the same name in an anonymous namespace, whose mangled name (and so entry
// point key) is the same as that of process_test.cpp's Twin.
#include <proc/mp.hpp>

namespace {
struct Twin {
  int operator()() const { return 2; }
};
}  // namespace

proc::mp::Process<int> spawn_other_twin() { return proc::mp::spawn(Twin{}); }
