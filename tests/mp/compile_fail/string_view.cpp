// expect: std::string_view and std::span do not own their data
#include <proc/mp/codec.hpp>
#include <string_view>

int main() {
  proc::mp::Writer w;
  w.write(std::string_view("borrowed"));
}
