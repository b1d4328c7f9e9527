#include "actors/raft/storage_actor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>

#include "actors/atoms.hpp"
#include "actors/stage_trace.hpp"

namespace conclave::raft {

std::int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// carry_out, measured: a snapshot of this server's own (not one from the
// leader) and the log write are timed apart; failures are counted by code.
expected<void> measured_carry_out(const storage_handles& h, storage_job& job) {
  auto* stats = h.stats.get();
  if (!stats) return carry_out(*h.log, *h.snapshots, job);
  auto record = [stats](const expected<void>& ok) {
    auto code = ok ? 0 : static_cast<std::size_t>(ok.error().code) + 1;
    if (code) stats->storage_errors[std::min(code - 1, metrics::sink::error_codes - 1)]++;
    stats->storage_failing = static_cast<int>(code);
    return ok;
  };
  if (job.snapshot && !job.snapshot_from_leader) {
    auto bytes = job.snapshot->data->size();
    auto started = std::chrono::steady_clock::now();
    if (auto ok = save_snapshot(*h.snapshots, job); !ok) return record(ok);
    stats->snapshot_save_seconds.observe(seconds_since(started));
    stats->snapshots_taken++;
    stats->last_snapshot_bytes = bytes;
  }
  auto entries = job.batch.entries.size();
  std::uint64_t first = 0, last = 0;
  if (entries) {
    first = job.batch.entries.front().index.value;
    last = job.batch.entries.back().index.value;
    stage_trace::mark_range(stage_trace::stage::storage_started, first, last);
  }
  auto started = std::chrono::steady_clock::now();
  auto ok = carry_out(*h.log, *h.snapshots, job);
  if (ok && last) stage_trace::mark_range(stage_trace::stage::storage_done, first, last);
  if (ok) {
    stats->disk_write_seconds.observe(seconds_since(started));
    stats->disk_write_entries.observe(static_cast<double>(entries));
  }
  return record(ok);
}

}  // namespace

caf::behavior storage_actor(caf::event_based_actor* self, storage_handles handles) {
  // The job waiting for space, if any; the requester sends no other job
  // until this one is answered.
  struct pending {
    storage_job job;
    caf::response_promise promise;
    caf::actor requester;
    std::string reported;  // the last error text the requester was told
  };
  auto waiting = std::make_shared<std::optional<pending>>();
  auto retryable = [](const expected<void>& ok) {
    return !ok && (ok.error().code == errc::disk_full || ok.error().code == errc::map_full);
  };
  auto report = [self](pending& p, const error& e) {
    if (e.detail == p.reported) return;
    p.reported = e.detail;
    self->send(p.requester, storage_failed_atom::value, static_cast<std::uint32_t>(e.code), e.detail);
  };
  return {
      [=](write_atom, storage_job& job) -> caf::result<persisted_atom, std::uint64_t, std::string> {
        auto ok = measured_carry_out(handles, job);
        if (!retryable(ok)) return {persisted_atom::value, job.persist_id, ok ? std::string() : ok.error().message()};
        auto requester = caf::actor_cast<caf::actor>(self->current_sender());
        *waiting = pending{std::move(job), self->make_response_promise(), requester, {}};
        report(**waiting, ok.error());
        self->delayed_send(self, std::chrono::milliseconds(storage_retry_ms), retry_atom::value);
        return (*waiting)->promise;
      },
      [=](retry_atom) {
        if (!*waiting) return;
        auto& p = **waiting;
        auto ok = measured_carry_out(handles, p.job);
        if (retryable(ok)) {
          report(p, ok.error());
          self->delayed_send(self, std::chrono::milliseconds(storage_retry_ms), retry_atom::value);
          return;
        }
        p.promise.deliver(persisted_atom::value, p.job.persist_id, ok ? std::string() : ok.error().message());
        waiting->reset();
      },
  };
}

}  // namespace conclave::raft
