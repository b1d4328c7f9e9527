// The persistence part of one or more of the core's readies, merged by the
// driver (group commit), and how a server's disk carries it out: save the
// snapshot, compact the log, then one write transaction (one fsync). The
// storage actor runs it on LMDB and snapshot files; the simulation on
// memory_log and memory_snapshots, with the same rules.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "actors/raft/ready.hpp"
#include "storage/log_store.hpp"
#include "storage/snapshot_store.hpp"

namespace conclave::raft {

struct storage_job {
  std::optional<snapshot_data> snapshot;
  bool snapshot_from_leader = false;  // then `compact` is the snapshot's own last entry
  std::optional<std::pair<index_t, term_t>> compact;
  storage::write_batch batch;
  std::uint64_t persist_id = 0;  // the highest ready this job makes durable

  bool empty() const { return !snapshot && !compact && !batch.truncate_from && batch.entries.empty() && !batch.state; }
};

// Carries out `job`, dropping each step from it once done, so that a job
// tried again after a failure (a full disk) redoes only what failed.
// Compaction stays behind the oldest snapshot kept: if the newest one turns
// out corrupt, the previous one plus the log still rebuild the state.
expected<void> carry_out(storage::log_store& log, storage::snapshot_keeper& snapshots, storage_job& job);
// Its first step alone: saves the job's snapshot, if any (and drops it from the job).
expected<void> save_snapshot(storage::snapshot_keeper& snapshots, storage_job& job);

}  // namespace conclave::raft
