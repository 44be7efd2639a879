// proc::mp against the raw mechanisms it is built on, in the same run (SPEC-mp §8):
//
//   - spawn(fn<&f>).join() of a target that returns at once, vs a raw posix_spawn + waitpid of
//     this same executable doing nothing (target <= 1.3x);
//   - a 16-byte ping-pong over a Connection vs the raw write/read round trip over a socketpair,
//     both to an echoing child process (target <= 1.2x);
//   - 1 MiB messages one way (time per message; throughput >= 0.9x is time <= 1.11x) vs raw
//     write/read of 1 MiB over a socketpair;
//   - Pool::map of tiny tasks on 2 workers, per task, vs the raw 16-byte round trip (target
//     <= 2x), in chunks (the default, as Python's) and one task per item (chunksize 1).
//
//   bench_mp [--rounds=7] [--spawns=20] [--pings=2000] [--mib=64] [--tasks=10000]
//
// This program is its own child: main calls proc::mp::init() first; `bench_mp --noop` is the
// raw baseline's child (the same file, doing nothing).

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <proc/mp.hpp>
#include <string>

#include "common.hpp"

namespace mp = proc::mp;

namespace {

void nothing() {}
int inc(int x) { return x + 1; }

// Reads exactly n bytes (false at the end of the stream).
bool read_exact(int fd, char* p, std::size_t n) {
  while (n) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}
bool write_exact(int fd, const char* p, std::size_t n) {
  while (n) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// The children.
void echo_raw(mp::Connection<int> c, std::size_t n) {
  std::string buf(n, '\0');
  while (read_exact(c.native_handle(), buf.data(), n) &&
         write_exact(c.native_handle(), buf.data(), n)) {
  }
}
void echo_typed(mp::Connection<std::array<char, 16>> c) {
  try {
    for (;;) c.send(c.recv());
  } catch (const mp::ChannelClosed&) {
  }
}
void sink_raw(mp::Connection<int> c, std::size_t size, int per_ack) {
  std::string buf(size, '\0');
  for (;;) {
    for (int i = 0; i < per_ack; ++i)
      if (!read_exact(c.native_handle(), buf.data(), size)) return;
    char ack = 1;
    if (!write_exact(c.native_handle(), &ack, 1)) return;
  }
}
void sink_typed(mp::Connection<std::string> c, int per_ack) {
  try {
    for (;;) {
      for (int i = 0; i < per_ack; ++i) BENCH_CHECK(c.recv().size() == (std::size_t{1} << 20));
      c.send(std::string());
    }
  } catch (const mp::ChannelClosed&) {
  }
}

}  // namespace

int main(int argc, char** argv) {
  mp::init();
  if (argc > 1 && std::strcmp(argv[1], "--noop") == 0) return 0;
  const int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 7));
  const int spawns = static_cast<int>(bench::arg(argc, argv, "spawns", 20));
  const int pings = static_cast<int>(bench::arg(argc, argv, "pings", 2000));
  const int mib = static_cast<int>(bench::arg(argc, argv, "mib", 64));
  const int tasks = static_cast<int>(bench::arg(argc, argv, "tasks", 10000));

  // --- spawn + join -------------------------------------------------------------------------
  {
    std::string self = bench::self_dir() + "/bench_mp";
    std::string noop_arg = "--noop";
    char* raw_argv[] = {self.data(), noop_arg.data(), nullptr};
    std::vector<bench::Variant> vs{
        {"posix_spawn self --noop + waitpid",
         [&] { BENCH_CHECK(bench::raw_wait(bench::raw_spawn(self.c_str(), raw_argv)) == 0); },
         spawns},
        {"mp::spawn(fn<&nothing>).join()",
         [] {
           auto p = mp::spawn(mp::fn<&nothing>);
           p.join();
           BENCH_CHECK(p.exitcode() == 0);
         },
         spawns},
        {"mp::spawn(fn<&inc>, 1).join()",
         [] { BENCH_CHECK(mp::spawn(mp::fn<&inc>, 1).join() == 2); }, spawns},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("mp spawn+join", vs, "posix_spawn self --noop + waitpid", 1e6, "us",
                  {{"mp::spawn(fn<&nothing>).join()", "<=1.3"}});
  }

  // --- 16-byte ping-pong ----------------------------------------------------------------------
  auto raw_a_raw_b = mp::connection_pair<int>();
  auto& raw_a = raw_a_raw_b.first;
  auto& raw_b = raw_a_raw_b.second;
  auto raw_echo =
      mp::spawn([](mp::Connection<int> c) { echo_raw(std::move(c), 16); }, std::move(raw_b));
  auto typed_a_typed_b = mp::connection_pair<std::array<char, 16>>();
  auto& typed_a = typed_a_typed_b.first;
  auto& typed_b = typed_a_typed_b.second;
  auto typed_echo = mp::spawn(
      [](mp::Connection<std::array<char, 16>> c) { echo_typed(std::move(c)); }, std::move(typed_b));
  auto bytes_a_bytes_b = mp::connection_pair<int>();
  auto& bytes_a = bytes_a_bytes_b.first;
  auto& bytes_b = bytes_a_bytes_b.second;
  auto bytes_echo = mp::spawn(
      [](mp::Connection<int> c) {
        try {
          for (;;) c.send_bytes(c.recv_bytes());
        } catch (const mp::ChannelClosed&) {
        }
      },
      std::move(bytes_b));
  const int raw_fd = raw_a.native_handle();
  auto raw_round_trip = [&] {
    char out[16] = "0123456789abcde", in[16];
    BENCH_CHECK(write_exact(raw_fd, out, 16) && read_exact(raw_fd, in, 16));
    BENCH_CHECK(std::memcmp(in, out, 16) == 0);
  };
  {
    std::array<char, 16> msg{};
    std::memcpy(msg.data(), "0123456789abcde", 16);
    std::vector<bench::Variant> vs{
        {"raw write+read 16 B, socketpair", raw_round_trip, pings},
        {"Connection<array<char,16>> send+recv",
         [&] {
           typed_a.send(msg);
           BENCH_CHECK(typed_a.recv() == msg);
         },
         pings},
        {"Connection send_bytes+recv_bytes 16 B",
         [&] {
           bytes_a.send_bytes(std::string_view(msg.data(), 16));
           BENCH_CHECK(bytes_a.recv_bytes().size() == 16);
         },
         pings},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("mp ping-pong 16 B", vs, "raw write+read 16 B, socketpair", 1e6, "us",
                  {{"Connection<array<char,16>> send+recv", "<=1.2"},
                   {"Connection send_bytes+recv_bytes 16 B", "<=1.2"}});
  }

  // --- 1 MiB messages, one way ---------------------------------------------------------------
  {
    const std::size_t size = std::size_t{1} << 20;
    auto ra_rb = mp::connection_pair<int>();
    auto& ra = ra_rb.first;
    auto& rb = ra_rb.second;
    auto raw_sink = mp::spawn(
        [](mp::Connection<int> c, int per) { sink_raw(std::move(c), std::size_t{1} << 20, per); },
        std::move(rb), mib);
    auto ta_tb = mp::connection_pair<std::string>();
    auto& ta = ta_tb.first;
    auto& tb = ta_tb.second;
    auto typed_sink =
        mp::spawn([](mp::Connection<std::string> c, int per) { sink_typed(std::move(c), per); },
                  std::move(tb), mib);
    std::string payload(size, 'x');
    for (std::size_t i = 0; i < size; i += 4096) payload[i] = static_cast<char>('a' + i % 26);
    std::vector<bench::Variant> vs{
        {"raw write 1 MiB, socketpair",
         [&] {
           for (int i = 0; i < mib; ++i)
             BENCH_CHECK(write_exact(ra.native_handle(), payload.data(), size));
           char ack;
           BENCH_CHECK(read_exact(ra.native_handle(), &ack, 1));
         },
         1},
        {"Connection<std::string>::send 1 MiB",
         [&] {
           for (int i = 0; i < mib; ++i) ta.send(payload);
           BENCH_CHECK(ta.recv().empty());
         },
         1},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("mp 1 MiB messages (time per MiB)", vs, "raw write 1 MiB, socketpair", 1e6 / mib,
                  "us", {{"Connection<std::string>::send 1 MiB", "<=1.11"}});
    ra.close();
    ta.close();
    raw_sink.join();
    typed_sink.join();
  }

  // --- Pool::map ------------------------------------------------------------------------------
  {
    mp::Pool pool({.workers = 2});
    std::vector<int> inputs(static_cast<std::size_t>(tasks));
    for (int i = 0; i < tasks; ++i) inputs[static_cast<std::size_t>(i)] = i;
    std::vector<bench::Variant> vs{
        {"raw write+read 16 B, socketpair", raw_round_trip, tasks},
        {"Pool(2 workers)::map, per task",
         [&] {
           auto r = pool.map(mp::fn<&inc>, inputs);
           BENCH_CHECK(r.size() == static_cast<std::size_t>(tasks) && r.back() == tasks);
         },
         1},
        {"Pool(2 workers)::map chunksize 1, per task",
         [&] {
           auto r = pool.map(mp::fn<&inc>, inputs, 1);
           BENCH_CHECK(r.size() == static_cast<std::size_t>(tasks) && r.back() == tasks);
         },
         1},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    // A map variant's sample is a whole map: per task is /tasks; the raw one is per trip.
    for (auto& v : vs)
      if (v.name.rfind("Pool", 0) == 0)
        for (auto& s : v.samples) s /= tasks;
    bench::report("mp Pool::map tiny tasks", vs, "raw write+read 16 B, socketpair", 1e6, "us",
                  {{"Pool(2 workers)::map, per task", "<=2"},
                   {"Pool(2 workers)::map chunksize 1, per task", "<=2"}});
  }
  raw_a.close();
  typed_a.close();
  bytes_a.close();
  raw_echo.join();
  typed_echo.join();
  bytes_echo.join();
  return 0;
}
