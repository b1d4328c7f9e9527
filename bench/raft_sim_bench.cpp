// Simulated-time benchmark of the Raft core: how many ticks and messages it
// takes until a new leader commits after a leader crash (with and without
// the connection-lost signal), after the leader is partitioned away, and
// after a graceful transfer, as distributions over many seeds; and messages
// per committed entry at batch sizes 1 and 64. Time is simulated (a tick is
// the core's unit: 10 ms with conclave's defaults), so the figures depend
// only on the algorithm and the seeds, never on the machine.
//
//   raft_sim_bench [--seeds N] [--voters 3|5] [--json]
#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "test/sim/cluster.hpp"

using namespace conclave;
using namespace conclave::raft;
using namespace conclave::sim;

namespace {

constexpr int units_per_tick = 10;

struct sample {
  double ticks;
  double messages;
};

struct distribution {
  std::string name;
  std::vector<sample> samples;
  int failures = 0;

  double pct(double p, bool messages) const {
    std::vector<double> v;
    for (const auto& s : samples) v.push_back(messages ? s.messages : s.ticks);
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
  }
};

cluster_options options(std::uint64_t seed, int voters) {
  cluster_options o;
  o.seed = seed;
  o.voters = voters;
  o.units_per_tick = units_per_tick;
  o.disk_delay_min_units = 1;  // a tenth of a tick per fsync
  o.disk_delay_max_units = 3;
  o.encode_messages = false;
  // conclave's defaults: heartbeat 5 ticks, election timeout [25, 50) ticks.
  o.base.heartbeat_interval_ticks = 5;
  o.base.election_timeout_min_ticks = 25;
  o.base.election_timeout_max_ticks = 50;
  return o;
}

enum class scenario { crash_with_signal, crash_without_signal, partition, transfer };

// Runs one failover; returns ticks and messages from the fault until a
// proposal made to the new leader is committed and acknowledged.
std::optional<sample> failover(std::uint64_t seed, int voters, scenario what) {
  cluster c(options(seed, voters));
  c.faults.delay_min_units = 1;
  c.faults.delay_max_units = 3;
  if (!c.run_until([&] { return c.leader().has_value(); }, 1000)) return std::nullopt;
  for (int i = 0; i < 5; ++i) c.propose();
  c.run_ticks(60);
  auto old = *c.leader();
  auto start_units = c.now();
  auto start_messages = c.messages_delivered();
  switch (what) {
    case scenario::crash_with_signal: c.crash(old, true); break;
    case scenario::crash_without_signal: c.crash(old, false); break;
    case scenario::partition: c.isolate(old); break;
    case scenario::transfer: {
      auto target = old == node_id{1} ? node_id{2} : node_id{1};
      if (!c.at(old).raft->transfer_leadership(target)) return std::nullopt;
      c.process(c.at(old));
      break;
    }
  }
  std::optional<std::size_t> p;
  auto committed = [&] {
    auto l = c.leader();
    if (!l || *l == old) return false;
    if (!p || c.proposals()[*p].where.term != c.at(*l).raft->term()) p = c.propose(*l);
    return p && c.proposals()[*p].acked;
  };
  if (!c.run_until(committed, 2000)) return std::nullopt;
  return sample{static_cast<double>(c.now() - start_units) / units_per_tick,
                static_cast<double>(c.messages_delivered() - start_messages)};
}

// Messages delivered per committed entry with `batch` proposals at a time.
double messages_per_entry(std::uint64_t seed, int voters, int batch, int total) {
  cluster c(options(seed, voters));
  c.faults.delay_min_units = 1;
  c.faults.delay_max_units = 3;
  if (!c.run_until([&] { return c.leader().has_value(); }, 1000)) return 0;
  c.run_ticks(20);
  auto start = c.messages_delivered();
  int done = 0;
  while (done < total) {
    std::vector<std::size_t> ps;
    for (int i = 0; i < batch; ++i) {
      if (auto p = c.propose(node_id{0}, false)) ps.push_back(*p);
    }
    if (auto l = c.leader()) c.process(c.at(*l));
    c.run_until([&] { return std::all_of(ps.begin(), ps.end(), [&](auto p) { return c.proposals()[p].acked; }); },
                1000);
    done += batch;
  }
  return static_cast<double>(c.messages_delivered() - start) / total;
}

}  // namespace

int main(int argc, char** argv) {
  int seeds = 200;
  int voters = 3;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seeds") && i + 1 < argc) seeds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--voters") && i + 1 < argc) voters = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else {
      fmt::print(stderr, "usage: raft_sim_bench [--seeds N] [--voters N] [--json]\n");
      return 2;
    }
  }
  std::vector<std::pair<scenario, std::string>> scenarios = {
      {scenario::crash_with_signal, "leader crash, connection-lost signal"},
      {scenario::crash_without_signal, "leader crash, timeout only"},
      {scenario::partition, "leader partitioned away"},
      {scenario::transfer, "graceful transfer"}};
  std::vector<distribution> results;
  for (const auto& [what, name] : scenarios) {
    distribution d{name, {}, 0};
    for (int s = 1; s <= seeds; ++s) {
      auto r = failover(static_cast<std::uint64_t>(s), voters, what);
      if (r) d.samples.push_back(*r);
      else ++d.failures;
    }
    results.push_back(std::move(d));
  }
  auto per_entry_1 = messages_per_entry(1, voters, 1, 500);
  auto per_entry_64 = messages_per_entry(1, voters, 64, 64 * 20);

  if (json) {
    fmt::print("{{\"benchmark\":\"raft_sim\",\"voters\":{},\"seeds\":{},\"tick_ms_default\":10,\"failover\":[", voters, seeds);
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& d = results[i];
      fmt::print("{}{{\"scenario\":\"{}\",\"ticks_p50\":{},\"ticks_p90\":{},\"ticks_p99\":{},\"ticks_max\":{},"
                 "\"messages_p50\":{},\"messages_p99\":{},\"runs\":{},\"failures\":{}}}",
                 i ? "," : "", d.name, d.pct(0.5, false), d.pct(0.9, false), d.pct(0.99, false), d.pct(1.0, false),
                 d.pct(0.5, true), d.pct(0.99, true), d.samples.size(), d.failures);
    }
    fmt::print("],\"messages_per_entry_batch_1\":{:.2f},\"messages_per_entry_batch_64\":{:.3f}}}\n", per_entry_1,
               per_entry_64);
    return 0;
  }
  fmt::print("{} voters, {} seeds per scenario; time in ticks (10 ms each with the default tick)\n", voters, seeds);
  fmt::print("from the fault until a new leader has committed a client's entry:\n");
  fmt::print("{:<38} {:>7} {:>7} {:>7} {:>7} | {:>9} {:>9} | {}\n", "scenario", "p50", "p90", "p99", "max",
             "msgs p50", "msgs p99", "runs");
  for (const auto& d : results) {
    fmt::print("{:<38} {:>7.1f} {:>7.1f} {:>7.1f} {:>7.1f} | {:>9.0f} {:>9.0f} | {}{}\n", d.name, d.pct(0.5, false),
               d.pct(0.9, false), d.pct(0.99, false), d.pct(1.0, false), d.pct(0.5, true), d.pct(0.99, true),
               d.samples.size(), d.failures ? fmt::format(" ({} did not finish)", d.failures) : "");
  }
  fmt::print("messages per committed entry: batch 1: {:.2f}, batch 64: {:.3f}\n", per_entry_1, per_entry_64);
  return 0;
}
