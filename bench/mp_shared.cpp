// proc::mp part 2 against the raw mechanisms it is built on, in the same run (SPEC-mp §8):
//
//   - an uncontended Lock lock+unlock vs a raw robust, process-shared pthread_mutex in a memfd
//     (the same mutex proc uses, without proc around it);
//   - Queue put+get of small messages (a batch of 64 puts, then 64 gets, in one process) vs raw
//     send+recv of the same bytes over a SOCK_SEQPACKET socketpair;
//   - Queue put+get of 1 MiB messages vs the raw mechanism it uses for them: memfd_create,
//     write, seal, sendmsg with SCM_RIGHTS, recvmsg, mmap, copy out, munmap, close.
//
//   - SharedDict::add (one request to the manager thread and its answer) vs a raw SOCK_SEQPACKET
//     round trip to a thread that echoes.
//
//   bench_mp_shared [--rounds=7] [--locks=200000] [--msgs=200] [--mib=32] [--pings=2000]
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <proc/mp.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"

namespace mp = proc::mp;

namespace {

int send_fd(int sock, int fd, const char* head, std::size_t n) {
  iovec iov{const_cast<char*>(head), n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return static_cast<int>(::sendmsg(sock, &msg, MSG_NOSIGNAL));
}

int recv_fd(int sock, char* head, std::size_t n) {
  iovec iov{head, n};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))]{};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) <= 0) return -1;
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof fd);
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  mp::init();
  const int rounds = static_cast<int>(bench::arg(argc, argv, "rounds", 7));
  const int locks = static_cast<int>(bench::arg(argc, argv, "locks", 200000));
  const int msgs = static_cast<int>(bench::arg(argc, argv, "msgs", 200));
  const int mib = static_cast<int>(bench::arg(argc, argv, "mib", 32));
  const int pings = static_cast<int>(bench::arg(argc, argv, "pings", 2000));

  // --- Lock, uncontended ----------------------------------------------------------------------
  {
    int fd = ::memfd_create("bench raw mutex", MFD_CLOEXEC);
    BENCH_CHECK(fd >= 0 && ::ftruncate(fd, 4096) == 0);
    auto* raw = static_cast<pthread_mutex_t*>(
        ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(raw, &a);
    mp::Lock lock;
    std::vector<bench::Variant> vs{
        {"raw robust pthread_mutex lock+unlock",
         [&] {
           BENCH_CHECK(pthread_mutex_lock(raw) == 0);
           BENCH_CHECK(pthread_mutex_unlock(raw) == 0);
         },
         locks},
        {"Lock lock+unlock",
         [&] {
           lock.lock();
           lock.unlock();
         },
         locks},
        {"Lock acquire() guard",
         [&] {
           auto g = lock.acquire();
           BENCH_CHECK(!g.previous_owner_died());
         },
         locks},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("mp Lock, uncontended", vs, "raw robust pthread_mutex lock+unlock", 1e9, "ns",
                  {{"Lock lock+unlock", "<=1.2"}, {"Lock acquire() guard", "<=1.5"}});
    ::munmap(raw, 4096);
    ::close(fd);
  }

  // --- Queue, small messages ------------------------------------------------------------------
  {
    int sv[2];
    BENCH_CHECK(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    mp::Queue<std::array<char, 16>> q;
    std::array<char, 16> msg{};
    std::memcpy(msg.data(), "0123456789abcde", 16);
    constexpr int burst = 64;
    std::vector<bench::Variant> vs{
        {"raw SOCK_SEQPACKET send+recv 16 B",
         [&] {
           char in[64];
           for (int i = 0; i < burst; ++i)
             BENCH_CHECK(::send(sv[1], msg.data(), 16, MSG_NOSIGNAL) == 16);
           for (int i = 0; i < burst; ++i) BENCH_CHECK(::recv(sv[0], in, sizeof in, 0) == 16);
         },
         msgs},
        {"Queue<array<char,16>> put+get",
         [&] {
           for (int i = 0; i < burst; ++i) q.put(msg);
           for (int i = 0; i < burst; ++i) BENCH_CHECK(q.get() == msg);
         },
         msgs},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("mp Queue small messages (per 64)", vs, "raw SOCK_SEQPACKET send+recv 16 B", 1e6,
                  "us", {{"Queue<array<char,16>> put+get", "<=1.5"}});
    ::close(sv[0]);
    ::close(sv[1]);
  }

  // --- Queue, 1 MiB messages ------------------------------------------------------------------
  {
    int sv[2];
    BENCH_CHECK(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    mp::Queue<std::string> q;
    const std::size_t size = std::size_t{1} << 20;
    std::string payload(size, 'q');
    std::string out;
    std::vector<bench::Variant> vs{
        {"raw memfd + SCM_RIGHTS 1 MiB",
         [&] {
           int fd = ::memfd_create("bench message", MFD_CLOEXEC | MFD_ALLOW_SEALING);
           BENCH_CHECK(::write(fd, payload.data(), size) == static_cast<ssize_t>(size));
           BENCH_CHECK(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW) == 0);
           char head[9] = {2};
           BENCH_CHECK(send_fd(sv[1], fd, head, sizeof head) == sizeof head);
           ::close(fd);
           int got = recv_fd(sv[0], head, sizeof head);
           BENCH_CHECK(got >= 0);
           void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, got, 0);
           BENCH_CHECK(m != MAP_FAILED);
           out.assign(static_cast<const char*>(m), size);
           ::munmap(m, size);
           ::close(got);
           BENCH_CHECK(out.size() == size);
         },
         mib},
        {"Queue<string> put+get 1 MiB",
         [&] {
           q.put(payload);
           BENCH_CHECK(q.get().size() == size);
         },
         mib},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("mp Queue 1 MiB messages", vs, "raw memfd + SCM_RIGHTS 1 MiB", 1e6, "us",
                  {{"Queue<string> put+get 1 MiB", "<=1.2"}});
    ::close(sv[0]);
    ::close(sv[1]);
  }
  // --- SharedDict::add round trip -------------------------------------------------------------
  {
    int sv[2];
    BENCH_CHECK(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    std::thread echo([fd = sv[1]] {
      char buf[256];
      for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0 || ::send(fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) return;
      }
    });
    auto m = mp::Manager::start();
    auto d = m.dict<std::string, long>({{"count", 0}});
    long expect = 0;
    std::vector<bench::Variant> vs{
        {"raw SOCK_SEQPACKET round trip to a thread",
         [&] {
           char out[24] = "count+1", in[64];
           BENCH_CHECK(::send(sv[0], out, sizeof out, MSG_NOSIGNAL) == sizeof out);
           BENCH_CHECK(::recv(sv[0], in, sizeof in, 0) == sizeof out);
         },
         pings},
        {"SharedDict<string,long>::add", [&] { BENCH_CHECK(d.add("count", 1) == ++expect); },
         pings},
    };
    bench::filter(vs, argc, argv);
    bench::run_rounds(vs, rounds);
    bench::report("mp SharedDict add round trip", vs, "raw SOCK_SEQPACKET round trip to a thread",
                  1e6, "us", {{"SharedDict<string,long>::add", "<=1.5"}});
    ::shutdown(sv[0], SHUT_RDWR);
    echo.join();
    ::close(sv[0]);
    ::close(sv[1]);
  }
  return 0;
}
