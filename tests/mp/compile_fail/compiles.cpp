// The control: everything here is Transferable, so this must compile (it checks the command
// line the other cases use).
// expect: success
#include <proc/mp/codec.hpp>

struct Point {
  int x;
  double y;
  std::vector<std::string> tags;
};

int main() {
  proc::mp::Writer w;
  w.write(Point{1, 2.0, {"a"}});
  w.write([] { return 0; });
  static_assert(proc::mp::Transferable<Point>);
}
