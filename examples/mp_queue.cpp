// proc::mp::Queue: producers and consumers in separate processes. Each message arrives whole,
// exactly once; when every producer is done (or dead), the consumers see the end and return.
#include <fmt/core.h>

#include <proc/config.hpp>
#include <proc/mp.hpp>
#include <string>
#include <vector>

namespace mp = proc::mp;

// [queue]
struct Job {
  int producer;
  int n;
};

void produce(mp::Sender<Job> out, int me, int count) {
  for (int n = 1; n <= count; ++n) out.put(Job{me, n});
}  // the sender closes when the process ends: nothing is lost, no feeder thread to wait for

long consume(mp::Receiver<Job> in) {
  long sum = 0;
  for (const Job& job : in) sum += job.n;  // ends once every sender is gone
  return sum;
}

int main() {
  mp::init();
  mp::Queue<Job> q;
  std::vector<mp::Process<long>> consumers;
  for (int i = 0; i < 2; ++i) consumers.push_back(mp::spawn(mp::fn<&consume>, q.receiver()));
  std::vector<mp::Process<void>> producers;
  for (int i = 0; i < 3; ++i) producers.push_back(mp::spawn(mp::fn<&produce>, q.sender(), i, 1000));
  q.close_sender();  // only the producers hold a sending end now
  for (auto& p : producers) p.join();
  long total = 0;
  for (auto& c : consumers) total += c.join();
  fmt::print("3 producers x 1000 jobs, consumed by 2 processes: sum {} (expected {})\n", total,
             3L * 1000 * 1001 / 2);
  return total == 3L * 1000 * 1001 / 2 ? 0 : 1;
}
// [queue]
