// expect: a reference cannot travel
#include <proc/mp/codec.hpp>

struct View {
  int id;
  const std::string& name;
};

int main() {
  std::string n = "x";
  proc::mp::Writer w;
  w.write(View{1, n});
}
