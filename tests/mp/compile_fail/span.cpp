// expect: std::string_view and std::span do not own their data
#include <proc/mp/codec.hpp>
#include <span>

struct Request {
  std::span<const int> values;
};

int main() {
  proc::mp::Writer w;
  w.write(Request{});
}
