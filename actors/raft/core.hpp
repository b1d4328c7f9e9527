// The Raft consensus core: a deterministic state machine with no I/O, no
// clock, no threads and no CAF (etcd's RawNode, Scylla's raft::fsm). Inputs
// are method calls (tick, step, propose, ...); every effect is collected in a
// `ready` (see ready.hpp) that the shell takes with take_ready() and carries
// out. Given the same inputs in the same order, it produces the same outputs.
//
// Features and the rules they follow are commented where implemented:
// elections with randomized timeouts, pre-vote and check-quorum; pipelined,
// batched, flow-controlled replication with fast backtracking; commit by
// current-term counting; ReadIndex reads; leadership
// transfer and a preferred leader; learners and one-at-a-time membership
// changes; snapshots sent in chunks; fast failover on "connection lost".
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/raft/config.hpp"
#include "actors/raft/log.hpp"
#include "actors/raft/progress.hpp"
#include "actors/raft/ready.hpp"
#include "actors/raft/transitions.hpp"
#include "schema/error.hpp"
#include "schema/raft_message.hpp"
#include "schema/raft_types.hpp"

namespace conclave::raft {

// What a server has on disk when it starts (all of it durable).
struct persistent_state {
  hard_state state;
  std::optional<snapshot_data> snapshot;  // the newest valid snapshot, if any
  index_t start_index;                    // the log's compaction point (<= snapshot index)
  term_t start_term;
  std::vector<log_entry> entries;         // start_index + 1 ... last
};

// Where a proposal landed. It is committed when the entry applied at `index`
// has this `term`; an entry of another term there means it was lost.
struct entry_id {
  index_t index;
  term_t term;
};

struct membership_change {
  enum class kind { add_learner, promote, remove };
  kind what;
  server subject;  // for add_learner: id and address; otherwise the id
};

class core {
 public:
  // Restores a server from `durable`. A server whose disk holds nothing starts
  // from `bootstrap` when it is non-empty: every founding member writes the
  // same configuration as entry 1 of term 1, so their logs agree from the
  // start; a server started with an empty bootstrap waits to be added.
  // Precondition: cfg.validate() succeeds.
  core(config cfg, persistent_state durable, configuration bootstrap = {});

  // --- inputs ----------------------------------------------------------------

  // One unit of logical time.
  void tick();
  // A message from a peer (already decoded and checked for cluster/version).
  void step(const message& m);
  // The transport lost its connection to `peer` (its process likely died).
  void peer_connection_lost(node_id peer);
  // The shell made the ready with this persist_id, and all before it, durable.
  void persisted(std::uint64_t persist_id);

  // Appends a command. Errors: not_leader, transferring, busy.
  expected<entry_id> propose(std::string payload);
  // One membership change at a time (thesis 4.1). Errors: not_leader,
  // transferring, config_change_pending, not_caught_up, invalid_argument.
  expected<entry_id> propose_membership(const membership_change& change);
  // Requests a linearizable read; ready.reads (or failed_reads) carries `id`
  // back. Errors: not_leader.
  expected<void> read_index(std::uint64_t id);
  // Hands leadership to `target` (thesis 3.10). Errors: not_leader,
  // invalid_argument (not a voter).
  expected<void> transfer_leadership(node_id target);
  // A leader that should not lead (its disk stalls, it is shutting down)
  // hands leadership to the most caught-up voter and steps down at once.
  // Errors: not_leader.
  expected<void> step_down();
  // The local disk cannot write (it is full): while set, this server neither
  // leads nor campaigns (no pre-vote, no vote, no leadership transfer to it);
  // a leader steps down as step_down() does and a campaign under way is
  // dropped. Its entries could not become durable, and as a candidate it
  // could not make its vote durable and would only waste the others' votes.
  void set_storage_unwritable(bool unwritable);
  // The most caught-up voter, the one rule for handing leadership over
  // (step_down, a leader removed from the configuration, the shell's
  // transfer without a target): among the other voters that are connected,
  // the highest match index; ties go to the lowest id. None when not leader.
  std::optional<node_id> best_transfer_target() const;
  // The state machine has written a snapshot of everything up to `index`
  // (<= applied index). Returns its metadata; the core keeps the bytes to
  // send to followers and compacts the log behind it.
  snapshot_meta snapshot_taken(index_t index, std::shared_ptr<const std::string> data);

  // --- output ----------------------------------------------------------------

  bool has_ready() const;
  ready take_ready();

  // --- observers -------------------------------------------------------------

  node_id id() const { return cfg_.id; }
  raft::role role() const { return role_; }
  term_t term() const { return term_; }
  node_id leader() const { return leader_; }
  node_id voted_for() const { return voted_for_; }
  const raft_log& log() const { return log_; }
  const configuration& current_configuration() const;
  const snapshot_data& last_snapshot() const { return snapshot_; }
  // Every other server in the configuration, while leader; empty otherwise.
  const std::map<node_id, progress>& followers() const;
  bool is_voter(node_id n) const;
  std::optional<node_id> transfer_target() const;

  // Asserts every internal invariant (LogCabin's RaftConsensusInvariants).
  // Rules over each change of state (transitions.hpp) are checked after
  // every input in builds with assertions.
  void check_invariants() const;

 private:
  struct pending_read {
    std::uint64_t id;
    index_t index;
    std::uint64_t sequence;  // confirmed once a quorum answered an AppendEntries this new
  };
  // What only a leader has (Raft figure 2, "volatile state on leaders", and
  // this implementation's extensions); created by become_leader, dropped by
  // the step down, so none of it outlives a leadership.
  struct leader_state {
    std::map<node_id, progress> followers;  // every other server in the configuration
    index_t term_start_index;               // this term's no-op entry (thesis 6.4)
    std::deque<std::uint64_t> reads_waiting_commit;  // before term_start_index commits
    std::deque<pending_read> reads_pending;          // waiting for a quorum's confirmation
    std::optional<node_id> transfer_target;          // thesis 3.10; proposals wait meanwhile
    int preferred_backoff_ticks = 0;  // after a failed transfer, no return to the preferred leader
    int heartbeat_elapsed = 0;        // ticks since the last heartbeat round
    int quorum_round_elapsed = 0;     // ticks into the check-quorum round (one election timeout)
    bool broadcast_pending = false;   // new entries to send
    bool heartbeat_pending = false;   // a read needs a round now
    bool commit_pending = false;      // the commit index moved: tell followers
  };
  struct incoming_snapshot {
    snapshot_meta meta;
    std::uint64_t total_size = 0;
    std::string data;
  };

  // transitions
  void become_follower(term_t term, node_id leader);
  void become_pre_candidate();
  void become_candidate(bool leadership_transfer);
  void become_leader();
  void campaign(bool leadership_transfer);
  void reset_election_timer();
  term_t next_term() const { return term_t{term_.value + 1}; }

  // handlers
  void on_vote_request(node_id from, const vote_request& m);
  void on_vote_reply(node_id from, const vote_reply& m);
  void on_append_entries(node_id from, const append_entries& m);
  void on_append_entries_reply(node_id from, const append_entries_reply& m);
  void on_install_snapshot(node_id from, const install_snapshot& m);
  void on_install_snapshot_reply(node_id from, const install_snapshot_reply& m);
  void on_timeout_now(node_id from, const timeout_now& m);

  // leader
  void tick_leader();
  void send_append(node_id to, progress& pr, bool allow_empty);
  void send_heartbeat(node_id to, progress& pr);
  void send_snapshot_chunk(node_id to, progress& pr);
  void restart_probe(progress& pr, index_t next) { pr.become_probe(next, sequence_ + 1); }
  void maybe_commit();
  void on_commit_advanced();
  void start_read(std::uint64_t id);
  void confirm_reads();
  void fail_reads();
  void sync_progress();
  void maybe_transfer_to_preferred();
  // quorum.hpp's rule over the current configuration's voters: the largest
  // value a majority of them reached, given each voter's (this server's too).
  template <class F>
  auto quorum_value(F value_of) const;
  // Whether the predicate holds for a majority of the voters.
  template <class P>
  bool quorum_agrees(P holds) const;
  bool promotable() const;  // may campaign
  std::vector<node_id> voters() const;

  // log and configuration
  void append_entry(log_entry e);
  void truncate_log(index_t from);
  void rebuild_configs();
  configuration config_at(index_t index) const;
  bool hears_leader() const;
  int fast_election_delay(node_id lost_leader) const;
  void send(node_id to, message_body body, bool after_persist = false);
  hard_state current_state() const;

  // The transition check (transitions.hpp): each input method opens an
  // input_scope; closing it compares the state with the one before.
  struct input_scope {
    core& c;
    ~input_scope() { c.after_input(); }
  };
  observed_state observe() const;
  void after_input();

  config cfg_;
  std::uint64_t rng_state_;
  raft::role role_ = raft::role::follower;
  term_t term_;
  node_id voted_for_;
  node_id leader_;
  raft_log log_;
  snapshot_data snapshot_;  // the newest snapshot; meta.last_index 0 if none

  // Configurations: the one in the snapshot, then each configuration entry
  // after it. The current one is the last (thesis 4.1: used once appended).
  configuration snapshot_config_;
  std::vector<std::pair<index_t, configuration>> configs_;

  int election_elapsed_ = 0;  // followers and candidates; a leader has its quorum round
  int randomized_election_timeout_ = 0;

  std::set<node_id> votes_granted_;
  std::set<node_id> votes_rejected_;

  std::optional<leader_state> lead_;  // set exactly while role_ is leader
  // Last AppendEntries sequence sent. It runs on across leaderships: a
  // follower rejects a delayed AppendEntries of our earlier leadership with
  // its term (our current one), and only the smaller number marks the reply
  // stale, so it neither confirms a read nor counts as a fresh rejection.
  std::uint64_t sequence_ = 0;
  bool storage_unwritable_ = false;  // set_storage_unwritable()

  std::optional<incoming_snapshot> incoming_;

  // Writes handed out and not yet reported durable, oldest first.
  struct unsynced_write {
    std::uint64_t id;
    index_t index;  // last entry it holds (0: none)
    term_t term;
    term_t state_term;  // term of the hard state it holds (0: none)
  };
  std::deque<unsynced_write> unsynced_;
  std::uint64_t next_persist_id_ = 0;
  term_t durable_term_;  // the highest term known durable on disk

  // output
  ready out_;
  hard_state last_state_;
  index_t commit_floor_;  // the commit index on disk at start; never written lower
  ready::role_change last_role_{raft::role::follower, term_t{}, node_id{}};
  observed_state observed_;  // as of the end of the last input
};

}  // namespace conclave::raft
