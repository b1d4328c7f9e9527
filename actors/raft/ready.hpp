// One batch of the core's output, taken with core::take_ready(). The driver
// (driver.hpp, the one implementation, run by the peer actor and by the
// simulation) carries it out in this order:
//   1. if `snapshot` is set: save it (snapshot file), and if
//      `snapshot_from_leader`, restore the state machine from it;
//   2. if `compact` is set: log_store::compact(compact->first, compact->second);
//   3. write `truncate_from`, `entries` and `state` as one storage::write_batch;
//   4. send `messages` at any time (they promise nothing about this node's
//      disk, e.g. the leader's AppendEntries, which run in parallel with its own
//      write);
//   5. send `messages_after_persist` only when steps 1-3 of this ready and of
//      every earlier one are durable (votes and acks promise durability), and
//      then call core::persisted(persist_id);
//   6. apply `committed` in order (after step 1), and answer each read in
//      `reads` once its index is applied; fail each of `failed_reads`.
// Steps 2-3 of consecutive readies may merge into one disk write (group
// commit) while an earlier write runs, a truncation dropping the entries it
// cuts off; a ready with a snapshot or compaction is written on its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "schema/raft_message.hpp"
#include "schema/raft_types.hpp"

namespace conclave::raft {

enum class role : std::uint8_t { follower, pre_candidate, candidate, leader };

constexpr const char* to_string(role r) {
  switch (r) {
    case role::follower: return "follower";
    case role::pre_candidate: return "pre-candidate";
    case role::candidate: return "candidate";
    case role::leader: return "leader";
  }
  return "?";
}

struct snapshot_data {
  snapshot_meta meta;
  std::shared_ptr<const std::string> data;
};

// A linearizable read that is now safe: serve it from a state machine that
// has applied at least `index`.
struct read_state {
  std::uint64_t id;
  index_t index;
};

struct ready {
  std::optional<snapshot_data> snapshot;  // to save durably
  bool snapshot_from_leader = false;      // and to restore the state machine from
  std::optional<std::pair<index_t, term_t>> compact;
  std::optional<hard_state> state;
  std::optional<index_t> truncate_from;
  std::vector<log_entry> entries;
  std::uint64_t persist_id = 0;  // non-zero: report core::persisted(persist_id) once durable

  std::vector<message> messages;
  std::vector<message> messages_after_persist;

  std::vector<log_entry> committed;
  std::vector<read_state> reads;
  std::vector<std::uint64_t> failed_reads;  // lost leadership before the read was confirmed

  // Set when the role, term or known leader changed.
  struct role_change {
    raft::role role;
    term_t term;
    node_id leader;
    friend bool operator==(const role_change& a, const role_change& b) {
      return a.role == b.role && a.term == b.term && a.leader == b.leader;
    }
    friend bool operator!=(const role_change& a, const role_change& b) { return !(a == b); }
  };
  std::optional<role_change> role;

  bool needs_persist() const {
    return snapshot || compact || state || truncate_from || !entries.empty();
  }
};

}  // namespace conclave::raft
