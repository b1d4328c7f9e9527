// The storage actor: the only code that touches a server's disk. It runs
// detached (its own thread), so a slow fsync never stalls message handling,
// and carries out the persistence part of the core's readies in order: save
// the snapshot, compact the log, then one write transaction (one fsync);
// see storage_job.hpp.
#pragma once

#include <caf/fwd.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include <atomic>
#include <memory>
#include <optional>
#include <utility>

#include "actors/metrics.hpp"
#include "actors/raft/storage_job.hpp"
#include "storage/lmdb_log.hpp"
#include "storage/snapshot_store.hpp"

namespace conclave::raft {


struct storage_handles {
  std::shared_ptr<storage::lmdb_log> log;
  std::shared_ptr<storage::snapshot_store> snapshots;
  std::shared_ptr<metrics::sink> stats;  // may be null
};

// How long a write that failed for want of space waits before it is tried again.
constexpr int storage_retry_ms = 200;

// Answers (write_atom, storage_job) with (persisted_atom, persist_id, error
// text), the text empty on success. A job that fails because the disk or the
// LMDB map is full (disk_full, map_full) is not answered: it is kept and
// tried again every storage_retry_ms until it succeeds, and the requester is
// told (storage_failed_atom, errc, detail) when it first fails and whenever the
// detail changes. A retry redoes only the steps that did not complete
// (snapshot file, compaction, log write: each all or nothing); the
// requester sends nothing the job promised until the answer comes. Other
// errors (I/O, corruption) are answered at once. With `stats`, it records
// each write's duration and entries, each snapshot it saves, and failures.
caf::behavior storage_actor(caf::event_based_actor* self, storage_handles handles);

std::int64_t steady_now_ms();

}  // namespace conclave::raft

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::raft::storage_job)
