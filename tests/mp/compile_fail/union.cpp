// expect: a union cannot travel
#include <proc/mp/codec.hpp>

union Number {
  int i;
  float f;
};

int main() {
  proc::mp::Writer w;
  w.write(Number{1});
}
