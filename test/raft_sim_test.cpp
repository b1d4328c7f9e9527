// Deterministic simulation of whole Raft clusters under faults. Each seed
// picks a cluster (1, 3 or 5 voters, learners, spare servers), timing and
// fault rates, then runs random proposals, reads, crashes and restarts,
// partitions, spurious connection-lost signals, snapshots, leadership
// transfers and membership changes, checking safety after every unit of time
// (see test/sim/cluster.hpp) and liveness after healing at the end.
//
//   raft_sim_test [--seeds N] [--steps M] [--first-seed S] [--seed S] [--verbose]
//
// A failing seed prints the seed, what broke and the last events; replay it
// with --seed S (add --verbose for every message).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <cstring>

#include "test/sim/cluster.hpp"

using namespace conclave;
using namespace conclave::sim;

namespace {

int seeds = 200;
int steps = 3000;
std::uint64_t first_seed = 1;
std::optional<std::uint64_t> only_seed;
bool verbose = false;

cluster* current = nullptr;
std::uint64_t current_seed = 0;

// An assertion in the core aborts: say which seed did it first.
void on_abort(int) {
  std::fprintf(stderr, "\nabort in seed %llu (replay: raft_sim_test --seed %llu --verbose)\n",
               static_cast<unsigned long long>(current_seed), static_cast<unsigned long long>(current_seed));
  if (current) std::fprintf(stderr, "last events:\n%s", current->trace().c_str());
  std::signal(SIGABRT, SIG_DFL);
}

struct run_stats {
  std::size_t proposals = 0, acked = 0, reads = 0, crashes = 0, partitions = 0, snapshots = 0, transfers = 0,
              membership = 0, stalls = 0, merged_writes = 0, truncating_writes = 0;
};

cluster_options options_for(std::uint64_t seed) {
  std::mt19937_64 pick(seed ^ 0x5eed);
  auto r = [&](std::uint64_t n) { return pick() % n; };
  cluster_options o;
  o.seed = seed;
  const int voter_choices[] = {1, 3, 3, 5, 5};
  o.voters = voter_choices[r(5)];
  o.learners = static_cast<int>(r(2));
  o.spares = static_cast<int>(r(3));
  o.disk_delay_min_units = 0;
  o.disk_delay_max_units = static_cast<int>(r(12));
  o.base.heartbeat_interval_ticks = 2;
  o.base.election_timeout_min_ticks = 10;
  o.base.election_timeout_max_ticks = 20;
  o.base.max_inflight_messages = 1 + r(4);
  o.base.max_entries_per_message = 1 + r(8);
  o.base.max_bytes_per_message = 64 + r(512);
  o.base.snapshot_chunk_bytes = 16 + r(100);
  o.base.snapshot_trailing_entries = r(10);
  o.base.promotion_lag_entries = 4;
  o.base.max_uncommitted_bytes = 4096;
  if (r(5) == 0) o.base.preferred_leader = node_id{1};
  if (r(8) == 0) o.base.check_quorum = false;
  // The driver's compaction policy, often enough to matter in a run.
  if (r(2) == 0) o.snapshot_every_entries = 5 + r(100);
  return o;
}

run_stats run_scenario(std::uint64_t seed, int step_count);

// Runs one seed; a failure carries the cluster's last events (cluster::fail).
run_stats run_seed(std::uint64_t seed, int step_count) {
  try {
    return run_scenario(seed, step_count);
  } catch (const std::exception& e) {
    current = nullptr;
    throw;
  }
}

run_stats run_scenario(std::uint64_t seed, int step_count) {
  auto opts = options_for(seed);
  cluster c(opts);
  current = &c;
  current_seed = seed;
  c.verbose = verbose;
  std::mt19937_64 pick(seed * 7919 + 17);
  auto r = [&](std::uint64_t n) { return n ? pick() % n : 0; };
  auto chance = [&](double p) { return std::uniform_real_distribution<>(0, 1)(pick) < p; };
  c.faults.drop = r(3) == 0 ? 0.0 : 0.001 * static_cast<double>(r(50));
  c.faults.duplicate = 0.001 * static_cast<double>(r(30));
  c.faults.delay_min_units = 1;
  c.faults.delay_max_units = 1 + static_cast<int>(r(30));
  auto ids = c.ids();
  auto random_node = [&] { return ids[r(ids.size())]; };
  run_stats stats;

  for (int step = 0; step < step_count; ++step) {
    c.run_units(1);
    auto action = r(1000);
    if (action < 60) {
      // Not flushed at once: later proposals join it in one ready, as a
      // shell's mailbox batches them.
      if (c.propose(chance(0.1) ? random_node() : node_id{0}, chance(0.5))) ++stats.proposals;
    } else if (action < 80) {
      c.read(chance(0.1) ? random_node() : node_id{0});
    } else if (action < 84) {
      auto id = chance(0.5) && c.leader() ? *c.leader() : random_node();
      if (c.at(id).up) {
        c.crash(id, chance(0.9));
        ++stats.crashes;
      }
    } else if (action < 92) {
      auto id = random_node();
      if (!c.at(id).up) c.restart(id);
    } else if (action < 95) {
      ++stats.partitions;
      switch (r(4)) {
        case 0:
          if (auto l = c.leader()) c.isolate(*l);
          break;
        case 1: {
          std::set<node_id> side;
          for (auto id : ids) {
            if (chance(0.5)) side.insert(id);
          }
          c.partition(side);
          break;
        }
        case 2: {
          auto a = random_node(), b = random_node();
          if (a != b) {
            c.block(a, b);  // one way only
            c.note("blocked " + std::to_string(a.value) + " -> " + std::to_string(b.value));
          }
          break;
        }
        case 3:  // flapping: cut and heal soon after
          if (auto l = c.leader()) {
            c.isolate(*l);
            c.run_units(5 + r(40));
            c.heal();
            c.note("healed (flap)");
          }
          break;
      }
    } else if (action < 100) {
      c.heal();
      c.note("healed");
    } else if (action < 102) {
      auto a = random_node(), b = random_node();
      if (a != b) c.connection_lost(a, b);  // spurious unless b is really down
    } else if (action < 107) {
      auto id = random_node();
      if (c.at(id).up) {
        c.snapshot(id);
        ++stats.snapshots;
      }
    } else if (action < 109) {
      if (auto l = c.leader()) {
        auto target = random_node();
        if (c.at(*l).raft->transfer_leadership(target)) {
          c.note("transfer leadership " + std::to_string(l->value) + " -> " + std::to_string(target.value));
          c.process(c.at(*l));
          ++stats.transfers;
        }
      }
    } else if (action < 111) {
      auto id = chance(0.5) && c.leader() ? *c.leader() : random_node();
      c.stall_disk(id, 20 + r(300));
      ++stats.stalls;
    } else if (action < 114) {
      if (auto l = c.leader()) {
        const auto& config = c.at(*l).raft->current_configuration();
        auto id = random_node();
        auto member = std::find_if(config.servers.begin(), config.servers.end(),
                                   [&](const raft::server& s) { return s.id == id; });
        raft::membership_change change;
        change.subject = {id, "sim:" + std::to_string(id.value), raft::suffrage::learner};
        if (member == config.servers.end()) {
          change.what = raft::membership_change::kind::add_learner;
        } else if (member->role == raft::suffrage::learner) {
          change.what = raft::membership_change::kind::promote;
        } else {
          change.what = raft::membership_change::kind::remove;
        }
        if (c.change_membership(change)) ++stats.membership;
      }
    }
  }
  c.check_liveness(300);
  stats.acked = c.acked_count();
  stats.reads = c.reads_served();
  stats.merged_writes = c.merged_writes();
  stats.truncating_writes = c.truncating_writes();
  current = nullptr;
  return stats;
}

}  // namespace

TEST_CASE("seeded simulations keep Raft's safety properties and recover after faults heal") {
  std::vector<std::uint64_t> list;
  if (only_seed) {
    list.push_back(*only_seed);
  } else {
    for (int i = 0; i < seeds; ++i) list.push_back(first_seed + static_cast<std::uint64_t>(i));
  }
  run_stats total;
  int failed = 0;
  for (auto seed : list) {
    try {
      auto s = run_seed(seed, steps);
      total.proposals += s.proposals;
      total.acked += s.acked;
      total.reads += s.reads;
      total.crashes += s.crashes;
      total.partitions += s.partitions;
      total.snapshots += s.snapshots;
      total.transfers += s.transfers;
      total.membership += s.membership;
      total.stalls += s.stalls;
      total.merged_writes += s.merged_writes;
      total.truncating_writes += s.truncating_writes;
    } catch (const std::exception& e) {
      ++failed;
      FAIL_CHECK("seed " << seed << " (replay: raft_sim_test --seed " << seed << " --steps " << steps
                         << " --verbose): " << std::string(e.what()));
      if (failed >= 3) break;
    }
  }
  MESSAGE(list.size() << " seeds x " << steps << " steps: " << total.proposals << " proposals, " << total.acked
                      << " acknowledged, " << total.reads << " linearizable reads, " << total.crashes << " crashes, "
                      << total.partitions << " partitions, " << total.snapshots << " snapshots, " << total.transfers
                      << " transfers, " << total.membership << " membership changes, " << total.stalls
                      << " disk stalls, " << total.merged_writes << " group commits, " << total.truncating_writes
                      << " truncating writes");
  CHECK(total.acked > 0);
  CHECK(total.reads > 0);
  // The run exercises the driver's group commit and its truncation merges.
  if (list.size() >= 100) {
    CHECK(total.merged_writes > 0);
    CHECK(total.truncating_writes > 0);
  }
}

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    auto arg = [&](const char* name) { return std::strcmp(argv[i], name) == 0 && i + 1 < argc; };
    if (arg("--seeds")) {
      seeds = std::atoi(argv[++i]);
    } else if (arg("--steps")) {
      steps = std::atoi(argv[++i]);
    } else if (arg("--first-seed")) {
      first_seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg("--seed")) {
      only_seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--verbose") == 0) {
      verbose = true;
    } else {
      rest.push_back(argv[i]);
    }
  }
  std::signal(SIGABRT, on_abort);
  doctest::Context context(static_cast<int>(rest.size()), rest.data());
  return context.run();
}
