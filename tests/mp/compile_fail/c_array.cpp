// expect: a C array cannot travel
#include <proc/mp/codec.hpp>

int main() {
  int values[3] = {1, 2, 3};
  proc::mp::Writer w;
  w.write(values);
}
