// Settings of one Raft core. Time is counted in ticks: the shell calls
// core::tick() at a fixed interval (conclave's default: every 10 ms, so the
// defaults below give heartbeats every 50 ms and election timeouts in
// [250, 500) ms, as in DESIGN.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "schema/error.hpp"
#include "schema/raft_types.hpp"

namespace conclave::raft {

struct config {
  node_id id;                              // this server; never 0
  std::uint64_t seed = 1;                  // seeds the election-timeout PRNG (vary per node)

  int heartbeat_interval_ticks = 5;
  int election_timeout_min_ticks = 25;     // randomized in [min, max) (§5.2)
  int election_timeout_max_ticks = 50;
  bool pre_vote = true;                    // thesis §9.6
  bool check_quorum = true;                // thesis §6.2: leaders step down without a quorum

  // After the connection to the leader breaks, a follower starts a pre-vote
  // after (1 + its rank) * this many ticks, ranks ordering the remaining voters
  // preferred leader first, then by id, so that one of them usually wins
  // the first round instead of all splitting the vote.
  int fast_election_step_ticks = 2;

  // Replication flow control (per follower).
  std::size_t max_entries_per_message = 512;
  std::size_t max_bytes_per_message = 1u << 20;
  std::size_t max_inflight_messages = 32;  // pipelined AppendEntries in flight
  std::size_t max_uncommitted_bytes = 64u << 20;  // proposals beyond this get errc::busy
  std::size_t max_apply_bytes = 16u << 20;        // committed bytes handed out per ready
  std::size_t snapshot_chunk_bytes = 1u << 20;
  std::size_t max_snapshot_bytes = std::size_t{4} << 30;  // refuse larger incoming snapshots
  // When the state machine snapshots at index S, the log keeps entries after
  // S minus this many, so followers a little behind need no snapshot.
  std::size_t snapshot_trailing_entries = 1024;

  // A learner is promoted only when its log is within this many entries of the leader's.
  std::size_t promotion_lag_entries = 64;

  // A preferred leader (orchestrator-style): when set, healthy and caught
  // up, the leader hands leadership to it.
  std::optional<node_id> preferred_leader;

  // Checks every field, naming the one that is wrong and the bound it broke.
  expected<void> validate() const;
};

}  // namespace conclave::raft
