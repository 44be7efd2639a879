// A specialisation without decode is an error, not silently ignored for the built-in rule.
// expect: is specialised for this type but lacks
#include <proc/mp/codec.hpp>

struct Point {
  int x, y;
};

template <>
struct proc::mp::codec<Point> {
  static void encode(proc::mp::Writer& w, const Point& p) { w.write(p.x + p.y); }
};

int main() {
  proc::mp::Writer w;
  w.write(Point{1, 2});
}
