// expect: a lambda with captures cannot travel; use a function object with fields or specialise
// (the message goes on with proc::mp::codec<T>, which check.cmake requires of every case)
#include <proc/mp/codec.hpp>

int main() {
  int factor = 3;
  auto scale = [factor](int x) { return x * factor; };
  proc::mp::Writer w;
  w.write(scale);
}
