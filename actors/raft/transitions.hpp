// Invariants over a change of state, not only over one state (LogCabin
// RaftConsensusInvariants::checkDelta): the core compares its state after
// every input with the state before it (core.cpp, after_input).
#pragma once

#include <optional>
#include <string>

#include "actors/raft/ready.hpp"
#include "schema/raft_types.hpp"

namespace conclave::raft {

// The part of a core's state that the transition rules speak about.
struct observed_state {
  term_t term;
  node_id voted_for;
  node_id leader;
  raft::role role = raft::role::follower;
  index_t commit;          // the log's commit index
  index_t applied;         // handed to the state machine
  index_t snapshot_index;  // the newest snapshot's last index (0: none)
  index_t log_start;       // the log's compaction point
  term_t durable_term;     // the highest term known durable on disk
};

// The first rule broken going from `before` to `after`, described, or
// nullopt when the step keeps them all.
inline std::optional<std::string> transition_violation(const observed_state& before, const observed_state& after) {
  auto went_back = [](const char* what, std::uint64_t from, std::uint64_t to) {
    return std::string(what) + " went back from " + std::to_string(from) + " to " + std::to_string(to);
  };
  // §5.1: terms only increase.
  if (after.term < before.term) return went_back("term", before.term.value, after.term.value);
  if (after.term == before.term) {
    // §5.2: one vote per term; once cast (and maybe promised), it stays.
    if (before.voted_for != no_node && after.voted_for != before.voted_for) {
      return "vote in term " + std::to_string(after.term.value) + " changed from " +
             std::to_string(before.voted_for.value) + " to " + std::to_string(after.voted_for.value);
    }
    // §5.2, Election Safety: at most one leader per term (it may be forgotten).
    if (before.leader != no_node && after.leader != no_node && after.leader != before.leader) {
      return "leader of term " + std::to_string(after.term.value) + " changed from " +
             std::to_string(before.leader.value) + " to " + std::to_string(after.leader.value);
    }
    // A server leads only by winning an election, which starts a new term.
    if (after.role == raft::role::leader && before.role != raft::role::leader &&
        before.role != raft::role::candidate) {
      return "became leader of term " + std::to_string(after.term.value) + " without being its candidate";
    }
  }
  // Committed entries stay committed (§5.4); what is applied, snapshotted,
  // compacted or known durable is never undone.
  if (after.commit < before.commit) return went_back("commit index", before.commit.value, after.commit.value);
  if (after.applied < before.applied) return went_back("applied index", before.applied.value, after.applied.value);
  if (after.snapshot_index < before.snapshot_index) {
    return went_back("snapshot index", before.snapshot_index.value, after.snapshot_index.value);
  }
  if (after.log_start < before.log_start) return went_back("log start", before.log_start.value, after.log_start.value);
  if (after.durable_term < before.durable_term) {
    return went_back("durable term", before.durable_term.value, after.durable_term.value);
  }
  return std::nullopt;
}

}  // namespace conclave::raft
