// A simulated Raft cluster for tests: the production Raft driver
// (actors/raft/driver.hpp: the core, group commit, apply, the compaction
// policy, pending proposals and reads) over a simulated network and simulated
// disks, all driven by one seeded PRNG and a discrete clock, so a run is a
// pure function of its seed. Only the CAF shell differs from production.
//
// Time is counted in units (the driver's milliseconds); a node ticks every
// `units_per_tick` units (each at its own phase). Messages take a random
// delay and may be dropped, duplicated (and thereby reordered) or blocked by
// partitions. Each node's disk carries out the driver's storage jobs
// (storage_job.hpp, on memory_log and memory_snapshots) one at a time after a
// random delay; a crash loses the job not yet complete and everything the
// driver had queued, as a real crash loses unsynced data.
//
// The cluster checks Raft's safety properties as it goes (see check()) and
// throws sim_failure with a description when one breaks.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "actors/raft/driver.hpp"
#include "storage/memory_log.hpp"
#include "storage/memory_snapshots.hpp"

namespace conclave::sim {

using namespace conclave::raft;

struct sim_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct network_faults {
  double drop = 0;          // probability a message is lost
  double duplicate = 0;     // probability a message is delivered twice
  int delay_min_units = 1;  // delivery delay, uniform in [min, max]
  int delay_max_units = 3;
};

struct cluster_options {
  std::uint64_t seed = 1;
  int voters = 3;
  int learners = 0;  // founding learners
  int spares = 0;    // started with no configuration; can be added later
  int units_per_tick = 10;
  int disk_delay_min_units = 0;
  int disk_delay_max_units = 0;
  bool encode_messages = true;  // round-trip every message through the wire codec
  raft::config base;            // timing and limits for every node (id and seed are set per node)
  // The driver's compaction policy: a snapshot every this many applied entries.
  std::uint64_t snapshot_every_entries = 1ull << 62;
  // How long the driver holds a membership change it cannot make yet.
  int membership_wait_ticks = driver_options{}.membership_wait_ticks;
  // Nodes that start from a given disk instead of the bootstrap configuration.
  std::map<std::uint64_t, persistent_state> initial;
};

class cluster : private clock_source {
 public:
  struct pending_write {
    storage_job job;
    std::uint64_t done_at;
  };

  struct node;
  // What the driver of a node talks to: its disk, the network, its state
  // machine (a hash chain the cluster checks).
  struct node_io final : log_writer, transport, state_machine, fault_injection {
    cluster* c;
    node* n;
    void write(storage_job job) override;
    void send(const message& m) override;
    std::string apply(const log_entry&) override { return {}; }
    std::string query(std::string_view) const override { return {}; }
    std::string snapshot() const override;
    void restore(std::string_view bytes) override;
    std::string digest() const override { return {}; }
    bool disk_stalled(std::int64_t now_ms) override;
  };

  struct node {
    node_id id;
    bool founding = false;
    bool up = true;
    std::unique_ptr<driver> drv;
    core* raft = nullptr;  // the driver's core while up
    node_io io;
    // durable (survives crashes)
    storage::memory_log disk;
    storage::memory_snapshots snapshots{2};
    std::optional<pending_write> write;  // the job the disk is doing
    std::uint64_t disk_stalled_until = 0;  // fault: writes finish but are not reported until then
    std::uint64_t last_persist_id = 0;
    // volatile state machine: a hash chain over the applied entries
    index_t applied;
    std::uint64_t sm_hash = 0;
    int tick_phase = 0;
    std::uint64_t restarts = 0;
    index_t verified_upto;  // log matching checked up to here
    term_t verified_term;
  };

  // A proposal the cluster made, and whether a client was told it committed.
  struct proposal {
    node_id at;
    entry_id where;
    std::string payload;
    bool acked = false;
  };

  explicit cluster(cluster_options options);

  // --- driving -----------------------------------------------------------
  void run_units(std::uint64_t units);       // advance time, delivering and ticking
  void run_ticks(int ticks) { run_units(static_cast<std::uint64_t>(ticks) * opts_.units_per_tick); }
  // Runs until `pred` holds or `max_ticks` pass; returns whether it held.
  bool run_until(const std::function<bool()>& pred, int max_ticks);
  void process(node& n);  // carries out every ready of n

  // --- client operations ----------------------------------------------------
  // Proposes at `at` (or at the leader if 0); returns the proposal index in
  // proposals() on success.
  // `flush` false leaves the ready for later, so that several proposals
  // travel together as they would when a shell takes them from its mailbox.
  std::optional<std::size_t> propose(node_id at = node_id{0}, bool flush = true);
  std::optional<std::uint64_t> read(node_id at = node_id{0});
  // At the leader; `done` (optional) hears the driver's answer.
  expected<void> change_membership(const membership_change& change, commit_callback done = {});
  // The node's state machine writes a snapshot of what it has applied.
  void snapshot(node_id id);

  // --- faults -------------------------------------------------------------
  void crash(node_id id, bool signal_peers = true);
  void restart(node_id id);
  void block(node_id from, node_id to) { blocked_.insert({from, to}); }
  void isolate(node_id id);
  void partition(const std::set<node_id>& side);  // side vs everyone else
  void heal() { blocked_.clear(); }
  // The node's disk hangs for `units` (as in fsync): its driver hears of
  // finished writes only afterwards.
  void stall_disk(node_id id, std::uint64_t units);
  void connection_lost(node_id at, node_id peer);
  network_faults faults;

  // --- observation ----------------------------------------------------------
  node& at(node_id id);
  std::vector<node_id> ids() const;
  std::optional<node_id> leader() const;  // the up leader with the highest term
  std::uint64_t now() const { return now_; }
  const std::vector<proposal>& proposals() const { return proposals_; }
  std::size_t acked_count() const { return acked_; }
  std::size_t reads_served() const { return reads_served_; }
  std::uint64_t messages_sent() const { return messages_sent_; }
  std::uint64_t messages_delivered() const { return messages_delivered_; }
  // Disk jobs that carried several readies (group commit), and that truncated.
  std::uint64_t merged_writes() const { return merged_writes_; }
  std::uint64_t truncating_writes() const { return truncating_writes_; }
  index_t max_applied() const;
  std::mt19937_64& rng() { return rng_; }

  // Checks every safety property now (it also runs after every unit).
  void check();
  // Liveness: with faults healed, a leader emerges and a new proposal is
  // applied by every up member of the configuration within `max_ticks`.
  void check_liveness(int max_ticks);

  // The last events, one per line, for failure reports.
  std::string trace() const;
  void note(const std::string& event);
  bool verbose = false;  // print every event as it happens
  std::function<void(const message&)> on_deliver;  // sees every delivered message

 private:
  struct in_flight {
    message msg;
  };
  struct lost_signal {
    node_id at, peer;
  };

  node* client_target(node_id where);  // `where`, or the leader for 0; null if not up
  void send(const message& m);
  void deliver(const message& m);
  void complete_writes(node& n);
  void apply(node& n, const log_entry& e);
  void restore_state_machine(node& n, std::string_view bytes, index_t meta_index);
  std::string snapshot_bytes(const node& n) const;
  void start(node& n, persistent_state ps, const configuration& bootstrap);
  std::int64_t now_ms() const override { return static_cast<std::int64_t>(now_); }
  void check_log_matching(node& n);
  void check_leader(node& n);
  [[noreturn]] void fail(const std::string& what);
  raft::config config_for(node_id id) const;
  std::uint64_t random(std::uint64_t n) { return n ? rng_() % n : 0; }

  cluster_options opts_;
  std::mt19937_64 rng_;
  configuration bootstrap_;
  std::map<node_id, node> nodes_;
  std::uint64_t now_ = 0;
  std::multimap<std::uint64_t, message> network_;
  std::multimap<std::uint64_t, lost_signal> signals_;
  std::set<std::pair<node_id, node_id>> blocked_;

  std::vector<proposal> proposals_;
  std::map<std::pair<node_id, std::uint64_t>, std::size_t> pending_proposals_;  // (node, index) -> proposal
  std::size_t acked_ = 0;
  index_t max_acked_index_;
  std::uint64_t next_read_id_ = 1;
  std::size_t reads_served_ = 0;
  std::uint64_t next_payload_ = 1;

  // checker state
  std::map<std::uint64_t, std::pair<term_t, std::uint64_t>> applied_entries_;  // index -> (term, hash)
  std::map<std::uint64_t, std::uint64_t> chain_;  // index -> state machine hash after it
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::pair<std::uint64_t, std::uint64_t>> seen_entries_;
  std::map<term_t, node_id> leader_of_term_;

  std::uint64_t messages_sent_ = 0;
  std::uint64_t messages_delivered_ = 0;
  std::uint64_t merged_writes_ = 0;
  std::uint64_t truncating_writes_ = 0;
  std::deque<std::string> trace_;
};

}  // namespace conclave::sim
