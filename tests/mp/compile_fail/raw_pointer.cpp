// expect: a raw pointer cannot travel
#include <proc/mp/codec.hpp>

int main() {
  int x = 0;
  proc::mp::Writer w;
  w.write(&x);
}
