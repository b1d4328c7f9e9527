#include "actors/raft/storage_job.hpp"

#include <algorithm>

namespace conclave::raft {

expected<void> save_snapshot(storage::snapshot_keeper& snapshots, storage_job& job) {
  if (job.snapshot) {
    if (auto ok = snapshots.save(job.snapshot->meta, *job.snapshot->data); !ok) return ok;
    job.snapshot.reset();
  }
  return {};
}

expected<void> carry_out(storage::log_store& log, storage::snapshot_keeper& snapshots, storage_job& job) {
  if (auto ok = save_snapshot(snapshots, job); !ok) return ok;
  if (job.compact) {
    auto target = job.compact->first;
    auto term = job.compact->second;
    if (job.snapshot_from_leader) {
      // A snapshot from the leader replaces the log up to its last entry.
      if (auto ok = log.compact(target, term); !ok) return ok;
    } else {
      auto kept = snapshots.indexes();
      if (!kept) return kept.error();
      if (kept->size() >= 2) {
        target = std::min(target, kept->back());
        if (target > log.start_index()) {
          auto t = log.term(target);
          if (!t) return t.error();
          if (auto ok = log.compact(target, *t); !ok) return ok;
        }
      }
    }
    job.compact.reset();
  }
  return log.write(job.batch);
}

}  // namespace conclave::raft
