// expect: an aggregate with a C array member cannot travel
#include <proc/mp/codec.hpp>

struct Samples {
  int count;
  double values[4];
};

int main() {
  proc::mp::Reader r("");
  (void)r.read<Samples>();
}
