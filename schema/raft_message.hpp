// Raft peer messages as plain structs. The core consumes and produces these;
// schema/codec turns them into bytes and back.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "schema/raft_types.hpp"

namespace conclave::raft {

// RequestVote (§5.2) and PreVote (thesis §9.6) share a shape.
struct vote_request {
  term_t term;  // for a pre-vote: the term the candidate would campaign in
  index_t last_log_index;
  term_t last_log_term;
  bool pre_vote = false;
  bool leadership_transfer = false;  // after TimeoutNow: not refused for a live leader
  friend bool operator==(const vote_request& a, const vote_request& b) {
    return a.term == b.term &&
           a.last_log_index == b.last_log_index &&
           a.last_log_term == b.last_log_term &&
           a.pre_vote == b.pre_vote &&
           a.leadership_transfer == b.leadership_transfer;
  }
};

struct vote_reply {
  term_t term;
  bool granted = false;
  bool pre_vote = false;
  friend bool operator==(const vote_reply& a, const vote_reply& b) {
    return a.term == b.term &&
           a.granted == b.granted &&
           a.pre_vote == b.pre_vote;
  }
};

struct append_entries {
  term_t term;
  index_t prev_log_index;
  term_t prev_log_term;
  std::vector<log_entry> entries;
  index_t leader_commit;
  std::uint64_t sequence = 0;  // echoed in the reply
  friend bool operator==(const append_entries& a, const append_entries& b) {
    return a.term == b.term &&
           a.prev_log_index == b.prev_log_index &&
           a.prev_log_term == b.prev_log_term &&
           a.entries == b.entries &&
           a.leader_commit == b.leader_commit &&
           a.sequence == b.sequence;
  }
};

struct append_entries_reply {
  term_t term;
  bool success = false;
  index_t match_index;     // on success
  index_t conflict_index;  // on failure: backtracking hint (thesis §5.3)
  term_t conflict_term;    // on failure: 0 when the follower's log is too short
  std::uint64_t sequence = 0;
  friend bool operator==(const append_entries_reply& a, const append_entries_reply& b) {
    return a.term == b.term &&
           a.success == b.success &&
           a.match_index == b.match_index &&
           a.conflict_index == b.conflict_index &&
           a.conflict_term == b.conflict_term &&
           a.sequence == b.sequence;
  }
};

struct install_snapshot {
  term_t term;
  snapshot_meta meta;
  std::uint64_t offset = 0;  // of this chunk in the snapshot's bytes
  std::string data;          // this chunk
  bool done = false;         // last chunk
  std::uint64_t total_size = 0;
  friend bool operator==(const install_snapshot& a, const install_snapshot& b) {
    return a.term == b.term &&
           a.meta == b.meta &&
           a.offset == b.offset &&
           a.data == b.data &&
           a.done == b.done &&
           a.total_size == b.total_size;
  }
};

struct install_snapshot_reply {
  term_t term;
  std::uint64_t next_offset = 0;
  bool done = false;
  index_t last_index;
  friend bool operator==(const install_snapshot_reply& a, const install_snapshot_reply& b) {
    return a.term == b.term &&
           a.next_offset == b.next_offset &&
           a.done == b.done &&
           a.last_index == b.last_index;
  }
};

struct timeout_now {
  term_t term;
  friend bool operator==(const timeout_now& a, const timeout_now& b) {
    return a.term == b.term;
  }
};

using message_body = std::variant<vote_request, vote_reply, append_entries,
                                  append_entries_reply, install_snapshot,
                                  install_snapshot_reply, timeout_now>;

// A message with its addressing: who sent it and to whom.
struct message {
  node_id from;
  node_id to;
  message_body body;
};

}  // namespace conclave::raft
