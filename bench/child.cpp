// The benchmarks' own child program, linked statically (no loader cost in the child).
//
//   spew N          write N bytes to stdout: 63 'x' and a '\n' per 64 bytes, 1 MiB per write
//   stamp MS        sleep MS milliseconds, print CLOCK_MONOTONIC in ns, exit 0
//   gate N          write N bytes to stdout, then read stdin until EOF, exit 0

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

char block[1 << 20];

bool spew(unsigned long long n) {
  std::memset(block, 'x', sizeof block);
  for (std::size_t i = 63; i < sizeof block; i += 64) block[i] = '\n';
  while (n > 0) {
    std::size_t k = n < sizeof block ? static_cast<std::size_t>(n) : sizeof block;
    ssize_t w = ::write(1, block, k);
    if (w <= 0) return false;
    n -= static_cast<unsigned long long>(w);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 98;
  unsigned long long n = std::strtoull(argv[2], nullptr, 10);
  if (std::strcmp(argv[1], "spew") == 0) return spew(n) ? 0 : 1;
  if (std::strcmp(argv[1], "stamp") == 0) {
    timespec d{static_cast<time_t>(n / 1000), static_cast<long>(n % 1000) * 1000000L};
    ::nanosleep(&d, nullptr);
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    char buf[32];
    int len = std::snprintf(buf, sizeof buf, "%lld\n",
                            static_cast<long long>(t.tv_sec) * 1000000000LL + t.tv_nsec);
    return ::write(1, buf, static_cast<std::size_t>(len)) == len ? 0 : 1;
  }
  if (std::strcmp(argv[1], "gate") == 0) {
    if (!spew(n)) return 1;
    char c;
    while (::read(0, &c, 1) > 0) {
    }
    return 0;
  }
  return 99;
}
