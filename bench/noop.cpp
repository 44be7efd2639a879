// The no-op child: does nothing and exits 0. Linked statically, so that the dynamic loader's
// work in the child does not hide the cost of the spawn itself.
int main() { return 0; }
