// A class with private state and no codec.
// expect: this type is not Transferable
#include <proc/mp/codec.hpp>

class Account {
 public:
  explicit Account(long cents) : cents_(cents) {}
  long cents() const { return cents_; }

 private:
  long cents_;
};

int main() {
  proc::mp::Writer w;
  w.write(Account(5));
}
