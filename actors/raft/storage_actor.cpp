#include "actors/raft/storage_actor.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <thread>

#include "actors/atoms.hpp"

namespace conclave::raft {

std::int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

expected<void> run(storage_handles& h, const storage_job& job) {
  while (steady_now_ms() < h.stall_until_ms->load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (job.snapshot) {
    if (auto ok = h.snapshots->save(job.snapshot->meta, *job.snapshot->data); !ok) return ok;
  }
  if (job.compact) {
    auto target = job.compact->first;
    auto term = job.compact->second;
    if (job.snapshot_from_leader) {
      // A snapshot from the leader replaces the log up to its last entry.
      if (auto ok = h.log->compact(target, term); !ok) return ok;
    } else {
      // Compact only behind the oldest snapshot kept, so that if the newest
      // one turns out corrupt the previous one plus the log still rebuild
      // the state.
      auto kept = h.snapshots->indexes();
      if (!kept) return kept.error();
      if (kept->size() >= 2) {
        target = std::min(target, kept->back());
        if (target > h.log->start_index()) {
          auto t = h.log->term(target);
          if (!t) return t.error();
          if (auto ok = h.log->compact(target, *t); !ok) return ok;
        }
      }
    }
  }
  return h.log->write(job.batch);
}

}  // namespace

caf::behavior storage_actor(caf::event_based_actor* self, storage_handles handles) {
  (void)self;
  return {
      [handles](write_atom, const storage_job& job) mutable {
        auto ok = run(handles, job);
        return caf::make_message(persisted_atom::value, job.persist_id, ok ? std::string() : ok.error().message());
      },
  };
}

}  // namespace conclave::raft
