// The Raft runtime on real processes: 3 conclave-raft-node servers on
// loopback, durable (fsync) mode, default timing (tick 10 ms, heartbeat 50 ms,
// election timeout 250-500 ms).
//
//  - throughput and commit latency with 1, 8 and 64 concurrent proposers
//    (closed loop, 100-byte commands, each answered once committed and applied);
//  - failover: from kill -9, SIGSTOP or SIGTERM of the leader until a new
//    leader has acknowledged a committed command, over N trials each.
//
//   raft_bench [--trials 20] [--seconds 3] [--json] [--binary PATH]
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "actors/atoms.hpp"
#include "schema/client_codec.hpp"
#include "bench/load.hpp"
#include "test/process_cluster.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct stats {
  std::vector<double> values;
  double pct(double p) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
  }
};

using bench::throughput;

throughput run_load(process_cluster& c, caf::actor_system& sys, int proposers, double seconds) {
  auto leader = c.wait_for_leader(10s);
  if (!leader) throw std::runtime_error("no leader");
  auto handle = sys.middleman().remote_actor(c.at(*leader).address.host, c.at(*leader).address.port);
  if (!handle) throw std::runtime_error("cannot connect to the leader");
  return bench::run_load(sys, *handle, c.cluster_id, proposers, seconds, [](int who, std::uint64_t n) {
    auto command = fmt::format("{:03}-{:012}-", who, n);
    command.resize(100, 'x');
    return command;
  });
}

// Milliseconds from the signal until a server other than the old leader
// leads and has acknowledged a committed command.
std::optional<double> failover_once(process_cluster& c, int sig) {
  auto old = c.wait_for_leader(10s);
  if (!old) return std::nullopt;
  // Warm: the leader is established and every server has applied everything.
  for (int i = 0; i < 5; ++i) (void)c.client().propose("warm");
  std::this_thread::sleep_for(200ms);
  auto start = clock_type::now();
  if (sig == SIGSTOP) {
    c.signal(*old, SIGSTOP);
  } else {
    std::thread([&c, old, sig] { c.signal(*old, sig); }).detach();
  }
  std::optional<double> result;
  auto until = start + 10s;
  while (!result && clock_type::now() < until) {
    for (const auto& m : c.members()) {
      if (m.id == *old) continue;
      auto r = c.client().call(m.address, client::propose{"after-failover"}, 200ms);
      if (r && std::holds_alternative<client::committed>(*r)) {
        result = std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
        break;
      }
    }
  }
  // Restore the cluster for the next trial.
  if (sig == SIGSTOP) {
    c.signal(*old, SIGCONT);
  } else {
    while (c.running(*old)) std::this_thread::sleep_for(5ms);
    c.start(*old);
  }
  std::this_thread::sleep_for(500ms);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  int trials = 20;
  double seconds = 3;
  bool json = false;
  std::string binary;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--trials") && i + 1 < argc) trials = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--binary") && i + 1 < argc) binary = argv[++i];
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else {
      fmt::print(stderr, "usage: raft_bench [--trials N] [--seconds S] [--json] [--binary PATH]\n");
      return 2;
    }
  }
  if (binary.empty()) binary = "build/roles/conclave-raft-node";
  caf::actor_system sys{client_config()};

  std::vector<throughput> loads;
  {
    process_cluster c(3, {}, binary);
    for (int p : {1, 8, 64}) {
      loads.push_back(run_load(c, sys, p, seconds));
      if (!json) fmt::print(stderr, "load with {} proposers done\n", p);
    }
  }
  std::vector<std::pair<std::string, stats>> failovers;
  std::vector<int> failures;
  for (auto [sig, name] : {std::pair{SIGKILL, "kill -9 of the leader"}, std::pair{SIGSTOP, "SIGSTOP of the leader"},
                           std::pair{SIGTERM, "SIGTERM of the leader (handover)"}}) {
    process_cluster c(3, {}, binary);
    stats s;
    int failed = 0;
    for (int t = 0; t < trials; ++t) {
      auto r = failover_once(c, sig);
      if (r) s.values.push_back(*r);
      else ++failed;
    }
    failovers.emplace_back(name, s);
    failures.push_back(failed);
    if (!json) fmt::print(stderr, "{} done\n", name);
  }

  if (json) {
    fmt::print("{{\"benchmark\":\"raft_runtime\",\"servers\":3,\"payload_bytes\":100,\"load\":[");
    for (std::size_t i = 0; i < loads.size(); ++i) {
      auto& l = loads[i];
      fmt::print("{}{{\"proposers\":{},\"commits_per_s\":{:.0f},\"latency_ms_p50\":{:.3f},\"latency_ms_p99\":{:.3f},\"errors\":{}}}",
                 i ? "," : "", l.clients, l.writes_per_s, l.pct(0.5), l.pct(0.99), l.errors);
    }
    fmt::print("],\"failover\":[");
    for (std::size_t i = 0; i < failovers.size(); ++i) {
      auto& [name, s] = failovers[i];
      fmt::print("{}{{\"scenario\":\"{}\",\"ms_p50\":{:.1f},\"ms_p99\":{:.1f},\"ms_max\":{:.1f},\"trials\":{},\"failed\":{}}}",
                 i ? "," : "", name, s.pct(0.5), s.pct(0.99), s.pct(1.0), s.values.size(), failures[i]);
    }
    fmt::print("]}}\n");
    return 0;
  }
  fmt::print("3 servers on loopback, durable writes, 100-byte commands\n");
  fmt::print("{:>10} {:>12} {:>10} {:>10} {:>7}\n", "proposers", "commits/s", "p50 ms", "p99 ms", "errors");
  for (auto& l : loads) {
    fmt::print("{:>10} {:>12.0f} {:>10.3f} {:>10.3f} {:>7}\n", l.clients, l.writes_per_s, l.pct(0.5),
               l.pct(0.99), l.errors);
  }
  fmt::print("\nfailover, until a new leader acknowledged a commit (ms)\n");
  fmt::print("{:<36} {:>8} {:>8} {:>8} {:>7}\n", "scenario", "median", "p99", "max", "trials");
  for (std::size_t i = 0; i < failovers.size(); ++i) {
    auto& [name, s] = failovers[i];
    fmt::print("{:<36} {:>8.1f} {:>8.1f} {:>8.1f} {:>7}{}\n", name, s.pct(0.5), s.pct(0.99), s.pct(1.0), s.values.size(),
               failures[i] ? fmt::format(" ({} failed)", failures[i]) : "");
  }
  return 0;
}
