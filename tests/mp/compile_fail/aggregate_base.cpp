// expect: an aggregate with a base class cannot travel
#include <proc/mp/codec.hpp>

struct Base {
  int id;
};
struct Derived : Base {
  std::string name;
};

int main() {
  proc::mp::Writer w;
  w.write(Derived{{1}, "x"});
}
