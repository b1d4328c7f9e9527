// The Raft driver: the one implementation of ready.hpp's contract. It owns
// the core and carries out its readies: messages to a transport, persistence
// to a log writer (group commit: while one write runs, later readies merge
// into the next job), committed entries to the state machine, snapshots by
// the compaction policy, and the answers to pending proposals and reads; it
// holds a membership change the core cannot take yet until it can.
//
// The CAF peer actor runs it in production and test/sim runs it in the
// simulation, so the seeded simulation tests the code that runs. It has no
// CAF, no threads and no clock of its own: one owner calls every method from
// one thread, and the interfaces below call back on that thread (a writer
// reports completion through written(), later, never from inside write()).
//
// Inputs (receive, tick, propose, ...) only change state; flush() carries out
// what they produced. A shell calls flush() once after a burst of inputs (the
// actor: once its mailbox is drained), which is what lets proposals arriving
// together share one ready and one disk write.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/log_level.hpp"
#include "actors/raft/core.hpp"
#include "actors/raft/leader_service.hpp"
#include "actors/raft/state_machine.hpp"
#include "actors/raft/storage_job.hpp"

namespace conclave::raft {

// The disk: carries out storage jobs one at a time, in the order given, and
// reports each with driver::written(). A job that fails for want of space is
// kept and retried; the writer reports that with driver::storage_failed().
class log_writer {
 public:
  virtual ~log_writer() = default;
  virtual void write(storage_job job) = 0;
};

// Sends a message to a peer, best effort (Raft tolerates loss).
class transport {
 public:
  virtual ~transport() = default;
  virtual void send(const message& m) = 0;
};

// Monotonic milliseconds.
class clock_source {
 public:
  virtual ~clock_source() = default;
  virtual std::int64_t now_ms() const = 0;
};

// Faults a test injects; production has none (the default answers no fault).
class fault_injection {
 public:
  virtual ~fault_injection() = default;
  // Whether a message to or from a peer is lost.
  virtual bool drop_outgoing(const message&) { return false; }
  virtual bool drop_incoming(const message&) { return false; }
  // Whether the disk hangs now: a write that finished is reported only once
  // this is false again, as if fsync had hung.
  virtual bool disk_stalled(std::int64_t /*now_ms*/) { return false; }
};

struct driver_options {
  std::string name;          // "node N", for logs
  int storage_stall_ms = 100;  // a write running this long is reported (once per stall)
  std::uint64_t snapshot_every_entries = 10000;
  // How long a membership change the core refuses only for now (a learner
  // not caught up, an earlier change not committed) waits at the leader (30 s
  // at the default 10 ms tick; the peer actor sets client::membership_wait_ms;
  // 0: refused at once).
  int membership_wait_ticks = 3000;
};

// A proposal's outcome: committed at (index, term) with the state machine's
// result, or an error (not_leader: another leader's entry took its place;
// outcome_unknown: a snapshot replaced the log before it was seen applied).
struct commit {
  index_t index;
  term_t term;
  std::string result;
};
using commit_callback = std::function<void(expected<commit>)>;
// A linearizable read is safe: the state machine has applied everything
// committed when it began (Raft thesis 6.4). Or an error (not_leader).
using read_callback = std::function<void(expected<void>)>;

class driver {
 public:
  struct parts {
    log_writer* writer = nullptr;
    transport* net = nullptr;
    state_machine* machine = nullptr;
    const clock_source* clock = nullptr;
    leader_service* service = nullptr;   // optional
    fault_injection* faults = nullptr;   // optional
    std::function<void(log_level, const std::string&)> log;  // one line per event
    // The role, term or known leader changed.
    std::function<void(const ready::role_change&)> on_role;
    // Every applied entry, commands and others (the simulation's checks).
    std::function<void(const log_entry&)> on_applied_entry;
    // A write failed for good (an I/O error): nothing it promised was sent;
    // the server must stop.
    std::function<void(const std::string&)> on_fatal;
  };

  // `applied`: what the state machine holds (restored from the snapshot the
  // core starts from).
  driver(driver_options opts, std::unique_ptr<core> raft, parts p, index_t applied);

  // --- inputs -------------------------------------------------------------------
  void receive(const message& m);
  void tick();
  void connection_lost(node_id peer);
  // The writer finished the job with this persist_id (`error` empty) or
  // failed it for good.
  void written(std::uint64_t persist_id, const std::string& error);
  // The writer cannot write for want of space and keeps retrying: until a
  // write succeeds this server neither leads nor accepts new entries.
  void storage_failed(errc code, const std::string& detail);

  // Errors: those of core::propose, or the storage error while it lasts.
  expected<entry_id> propose(std::string command, commit_callback done);
  // Proposes the change, or, while the core refuses it with not_caught_up or
  // config_change_pending, keeps it (one at a time) and proposes it as soon
  // as the core accepts: `done` gets the commit, or the refusal that ended
  // the wait (not_leader once this leadership ends; the last refusal after
  // membership_wait_ticks). Errors at once: the core's other refusals, the
  // storage error, config_change_pending while another change waits.
  expected<void> propose_membership(const membership_change& change, commit_callback done);
  // Errors: not_leader.
  expected<void> read(read_callback done);
  // To `target`, or to the most caught-up voter. Errors: not_leader, unavailable.
  expected<void> transfer_leadership(std::optional<node_id> target);
  // Hands leadership over (if leading) for a shutdown.
  void prepare_stop();
  // Snapshots the state machine now (tests; the policy otherwise).
  void take_snapshot();

  // Carries out every ready the inputs produced.
  void flush();

  // --- observers ------------------------------------------------------------------
  core& raft() { return *raft_; }
  const core& raft() const { return *raft_; }
  index_t applied() const { return applied_; }
  // No write in flight or queued.
  bool writes_done() const { return !write_in_flight_ && queued_.empty(); }
  const std::optional<error>& storage_error() const { return storage_error_; }

 private:
  void carry_out(ready r);
  void enqueue(ready r);
  void start_write();
  void finish_write(std::uint64_t persist_id, const std::string& error);
  void apply(const log_entry& e);
  void fail_proposals_upto(index_t upto, const std::string& why);
  void retry_waiting_change();
  static bool refused_for_now(const error& e);
  void serve_reads();
  void maybe_snapshot();
  void send(const message& m);
  void report_role(const ready::role_change& rc);
  std::int64_t now() const { return clock_->now_ms(); }

  driver_options opts_;
  std::unique_ptr<core> raft_;
  parts p_;
  const clock_source* clock_;
  fault_injection no_faults_;

  // persistence pipeline: one job in flight, later readies merging into the last queued one
  bool write_in_flight_ = false;
  std::int64_t write_started_ms_ = 0;
  std::deque<storage_job> queued_;
  std::deque<std::vector<message>> after_persist_;  // messages of each queued job
  std::vector<message> in_flight_after_persist_;
  std::optional<std::pair<std::uint64_t, std::string>> held_completion_;  // finished during a disk stall fault
  bool stall_reported_ = false;
  std::optional<error> storage_error_;
  std::int64_t storage_failed_ms_ = 0;

  index_t applied_;
  index_t last_snapshot_;
  struct proposal_wait {
    term_t term;
    commit_callback done;
  };
  std::map<index_t, proposal_wait> proposals_;  // by log index
  // A membership change waiting for the core to accept it (propose_membership).
  struct change_wait {
    membership_change change;
    commit_callback done;
    term_t term;             // the leadership it was asked of
    std::uint64_t deadline;  // in ticks_
    std::int64_t since_ms;   // for the answer's message
  };
  std::optional<change_wait> waiting_change_;
  std::uint64_t ticks_ = 0;  // tick() calls so far
  struct read_wait {
    read_callback done;
    std::optional<index_t> index;  // set once the core says the read is safe
  };
  std::map<std::uint64_t, read_wait> reads_;  // by read id
  std::uint64_t next_read_id_ = 1;
  ready::role_change last_role_{role::follower, term_t{}, node_id{}};
};

}  // namespace conclave::raft
