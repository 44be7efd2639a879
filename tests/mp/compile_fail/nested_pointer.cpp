// A refused type deep inside others is found too.
// expect: a raw pointer cannot travel
#include <proc/mp/codec.hpp>

struct Job {
  std::string name;
  std::map<int, std::vector<const char*>> args;
};

int main() {
  proc::mp::Writer w;
  w.write(Job{});
}
