#include "actors/raft/driver.hpp"

#include <algorithm>

namespace conclave::raft {

driver::driver(driver_options opts, std::unique_ptr<core> raft, parts p, index_t applied)
    : opts_(std::move(opts)), raft_(std::move(raft)), p_(std::move(p)), clock_(p_.clock), applied_(applied),
      last_snapshot_(applied) {
  if (!p_.faults) p_.faults = &no_faults_;
  if (!p_.log) p_.log = [](log_level, const std::string&) {};
}

// --- inputs ---------------------------------------------------------------------------

void driver::receive(const message& m) {
  if (p_.faults->drop_incoming(m)) return;
  raft_->step(m);
}

void driver::connection_lost(node_id peer) { raft_->peer_connection_lost(peer); }

void driver::tick() {
  ++ticks_;
  raft_->tick();
  auto t = now();
  if (p_.service && raft_->role() == role::leader) {
    // A refused proposal (transferring, busy) is not lost: the service
    // proposes again whatever the state machine still lacks.
    for (auto& command : p_.service->on_tick(static_cast<std::uint64_t>(t))) (void)raft_->propose(std::move(command));
  }
  if (held_completion_ && !p_.faults->disk_stalled(t)) {
    auto [id, err] = std::move(*held_completion_);
    held_completion_.reset();
    finish_write(id, err);
  }
  // A slow or stalled disk is reported, and nothing more: the leader counts
  // itself towards a commit only once its own write is durable, so while a
  // quorum of the others writes, entries commit without this disk; and when
  // they cannot, no one can lead instead (a vote is a durable write too).
  // Stepping down only starts an election that needs the same disks (seen: a
  // stall shared by all three masters' disks made the leader step down, and
  // the election waited for the disks anyway). etcd likewise warns and leads.
  if (write_in_flight_ && t - write_started_ms_ > opts_.storage_stall_ms && !stall_reported_ && !storage_error_) {
    p_.log(log_level::warning, opts_.name + ": storage has not finished a write for " +
                                   std::to_string(t - write_started_ms_) + " ms" +
                                   (raft_->role() == role::leader ? "; still leading: entries commit on the others' disks"
                                                                  : ""));
    stall_reported_ = true;
  }
}

void driver::written(std::uint64_t persist_id, const std::string& error) {
  if (p_.faults->disk_stalled(now())) {
    held_completion_.emplace(persist_id, error);
    return;
  }
  finish_write(persist_id, error);
}

void driver::finish_write(std::uint64_t persist_id, const std::string& error) {
  write_in_flight_ = false;
  if (storage_error_ && error.empty()) {
    p_.log(log_level::info, opts_.name + ": storage is writing again after " +
                                std::to_string(now() - storage_failed_ms_) +
                                " ms without space; writes accepted again");
    storage_error_.reset();
    raft_->set_storage_unwritable(false);
  } else if (stall_reported_) {
    p_.log(log_level::info, opts_.name + ": storage is writing again");
  }
  stall_reported_ = false;
  if (!error.empty()) {
    // The write did not happen; nothing it promised may be sent.
    p_.log(log_level::error, opts_.name + ": storage write failed: " + error + "; stepping down and stopping");
    (void)raft_->step_down();
    if (p_.on_fatal) p_.on_fatal(error);
    return;
  }
  for (const auto& m : in_flight_after_persist_) send(m);
  in_flight_after_persist_.clear();
  raft_->persisted(persist_id);
  start_write();
}

// The disk (or the LMDB map) is full: the writer keeps the write and tries it
// again. Until it succeeds this server cannot make anything durable, so it
// must not lead (its entries could not count towards a majority, and clients
// would wait on it) and refuses new entries; as a follower it cannot ack or
// vote either (those messages wait for the write), so the others carry on
// without it. Nothing acknowledged depended on the failed write.
void driver::storage_failed(errc code, const std::string& detail) {
  if (!storage_error_) storage_failed_ms_ = now();
  storage_error_ = make_error(code, detail);
  p_.log(log_level::error, opts_.name + ": storage write failed: " + storage_error_->message() +
                               "; refusing writes and not leading until space returns");
  if (raft_->role() == role::leader) p_.log(log_level::warning, opts_.name + ": stepping down: cannot write to disk");
  raft_->set_storage_unwritable(true);
}

expected<entry_id> driver::propose(std::string command, commit_callback done) {
  if (storage_error_) return *storage_error_;
  auto id = raft_->propose(std::move(command));
  if (!id) return id;
  proposals_[id->index] = proposal_wait{id->term, std::move(done)};
  return id;
}

expected<void> driver::propose_membership(const membership_change& change, commit_callback done) {
  if (storage_error_) return *storage_error_;
  if (waiting_change_) {
    return make_error(errc::config_change_pending, "another membership change is waiting to be proposed");
  }
  auto id = raft_->propose_membership(change);
  if (id) {
    proposals_[id->index] = proposal_wait{id->term, std::move(done)};
    return {};
  }
  if (!refused_for_now(id.error()) || opts_.membership_wait_ticks <= 0) return id.error();
  p_.log(log_level::info, opts_.name + ": membership change waits: " + id.error().detail);
  waiting_change_ = change_wait{change, std::move(done), raft_->term(),
                                ticks_ + static_cast<std::uint64_t>(opts_.membership_wait_ticks), now()};
  return {};
}

// The core's refusals that a later input may lift: the learner's log catching
// up, the earlier change (or the new leader's first entry) committing.
bool driver::refused_for_now(const error& e) {
  return e.code == errc::not_caught_up || e.code == errc::config_change_pending;
}

// Runs before each flush, so after every input that can move a learner's
// match index or the commit index. A change is asked of one leadership: a
// later term of this server's is a new one, and the client asks it again.
void driver::retry_waiting_change() {
  if (!waiting_change_) return;
  auto& w = *waiting_change_;
  auto answer = [&](expected<commit> outcome) {
    auto done = std::move(w.done);
    waiting_change_.reset();
    done(std::move(outcome));
  };
  if (storage_error_) return answer(*storage_error_);
  if (raft_->role() != role::leader || raft_->term() != w.term) {
    return answer(make_error(errc::not_leader, "lost leadership while the membership change waited"));
  }
  auto id = raft_->propose_membership(w.change);
  if (id) {
    p_.log(log_level::info, opts_.name + ": membership change proposed at " + std::to_string(id->index.value) +
                                " after waiting " + std::to_string(now() - w.since_ms) + " ms");
    proposals_[id->index] = proposal_wait{id->term, std::move(w.done)};
    waiting_change_.reset();
    return;
  }
  if (refused_for_now(id.error()) && ticks_ < w.deadline) return;
  auto e = id.error();
  if (refused_for_now(e)) e.detail += " (waited " + std::to_string(now() - w.since_ms) + " ms)";
  p_.log(log_level::warning, opts_.name + ": membership change refused: " + e.message());
  answer(std::move(e));
}

expected<void> driver::read(read_callback done) {
  auto id = next_read_id_++;
  auto ok = raft_->read_index(id);
  if (!ok) return ok;
  reads_.emplace(id, read_wait{std::move(done), std::nullopt});
  return {};
}

expected<void> driver::transfer_leadership(std::optional<node_id> target) {
  if (!target) target = raft_->best_transfer_target();
  if (!target) return make_error(errc::unavailable, "no voter to transfer to");
  return raft_->transfer_leadership(*target);
}

void driver::prepare_stop() {
  if (raft_->role() != role::leader) return;
  if (auto target = raft_->best_transfer_target()) {
    p_.log(log_level::info,
           opts_.name + ": shutting down: handing leadership to node " + std::to_string(target->value));
    (void)raft_->transfer_leadership(*target);
  }
}

void driver::take_snapshot() {
  if (applied_ <= raft_->last_snapshot().meta.last_index) return;
  raft_->snapshot_taken(applied_, std::make_shared<const std::string>(p_.machine->snapshot()));
  last_snapshot_ = applied_;
}

// --- the ready loop (ready.hpp) -----------------------------------------------------------

void driver::flush() {
  retry_waiting_change();
  while (raft_->has_ready()) carry_out(raft_->take_ready());
  start_write();
}

void driver::carry_out(ready r) {
  if (r.role) report_role(*r.role);
  // 4. Messages that promise nothing about this server's disk go at once.
  for (const auto& m : r.messages) send(m);
  // 1. A snapshot from the leader replaces the state machine (it is saved
  // with the persistence below; the core does not apply past it meanwhile).
  if (r.snapshot && r.snapshot_from_leader) {
    p_.machine->restore(*r.snapshot->data);
    applied_ = last_snapshot_ = r.snapshot->meta.last_index;
    p_.log(log_level::info,
           opts_.name + ": installed a snapshot at " + std::to_string(applied_.value) + " from the leader");
    fail_proposals_upto(applied_, "outcome unknown: a snapshot replaced the log here");
  }
  // 6. Apply committed entries in order, then answer reads they made safe.
  for (const auto& e : r.committed) apply(e);
  if (p_.service && (!r.committed.empty() || (r.snapshot && r.snapshot_from_leader))) {
    p_.service->on_applied(static_cast<std::uint64_t>(now()));
  }
  for (const auto& rs : r.reads) {
    if (auto it = reads_.find(rs.id); it != reads_.end()) it->second.index = rs.index;
  }
  for (auto id : r.failed_reads) {
    auto it = reads_.find(id);
    if (it == reads_.end()) continue;
    auto done = std::move(it->second.done);
    reads_.erase(it);
    done(make_error(errc::not_leader, "lost leadership before the read was confirmed"));
  }
  serve_reads();
  // 2, 3, 5. Persistence, and the messages that wait for it.
  if (r.persist_id != 0) enqueue(std::move(r));
  maybe_snapshot();
}

void driver::report_role(const ready::role_change& rc) {
  bool leading = rc.role == role::leader;
  if (p_.service && leading != (last_role_.role == role::leader)) {
    p_.service->on_role(leading, static_cast<std::uint64_t>(now()));
  }
  last_role_ = rc;
  if (p_.on_role) p_.on_role(rc);
}

void driver::send(const message& m) {
  if (p_.faults->drop_outgoing(m)) return;
  p_.net->send(m);
}

// Group commit: a ready joins the last queued job unless either carries a
// snapshot or compaction (those keep their order with the writes around them).
// The job in flight is never changed.
void driver::enqueue(ready r) {
  bool simple = !r.snapshot && !r.compact;
  bool can_merge = !queued_.empty() && simple && !queued_.back().snapshot && !queued_.back().compact;
  if (!can_merge) {
    queued_.emplace_back();
    after_persist_.emplace_back();
  }
  auto& job = queued_.back();
  auto& msgs = after_persist_.back();
  if (r.snapshot) {
    job.snapshot = std::move(r.snapshot);
    job.snapshot_from_leader = r.snapshot_from_leader;
  }
  if (r.compact) job.compact = r.compact;
  if (r.truncate_from) {
    auto from = *r.truncate_from;
    auto& entries = job.batch.entries;
    if (!entries.empty() && from > entries.front().index) {
      // The truncation cuts into entries not yet written: drop them here.
      while (!entries.empty() && entries.back().index >= from) entries.pop_back();
    } else {
      // It reaches at or before this job's first entry: none of them are
      // written, and the disk's suffix from `from` goes too.
      entries.clear();
      if (!job.batch.truncate_from || from < *job.batch.truncate_from) job.batch.truncate_from = from;
    }
  }
  for (auto& e : r.entries) job.batch.entries.push_back(std::move(e));
  if (r.state) job.batch.state = r.state;
  job.persist_id = r.persist_id;
  for (auto& m : r.messages_after_persist) msgs.push_back(std::move(m));
}

void driver::start_write() {
  if (write_in_flight_ || queued_.empty()) return;
  auto job = std::move(queued_.front());
  queued_.pop_front();
  in_flight_after_persist_ = std::move(after_persist_.front());
  after_persist_.pop_front();
  write_in_flight_ = true;
  write_started_ms_ = now();
  p_.writer->write(std::move(job));
}

// --- the state machine ---------------------------------------------------------------------

void driver::apply(const log_entry& e) {
  std::string result;
  if (e.kind == entry_kind::command) result = p_.machine->apply(e);
  applied_ = e.index;
  if (p_.on_applied_entry) p_.on_applied_entry(e);
  auto it = proposals_.find(e.index);
  if (it == proposals_.end()) return;
  auto w = std::move(it->second);
  proposals_.erase(it);
  // Committed if the entry applied at the proposal's index has its term.
  if (w.term == e.term) {
    w.done(commit{e.index, e.term, std::move(result)});
  } else {
    w.done(make_error(errc::not_leader, "lost: another leader's entry took index " + std::to_string(e.index.value)));
  }
}

void driver::fail_proposals_upto(index_t upto, const std::string& why) {
  while (!proposals_.empty() && proposals_.begin()->first <= upto) {
    auto w = std::move(proposals_.begin()->second);
    proposals_.erase(proposals_.begin());
    w.done(make_error(errc::outcome_unknown, why));
  }
}

void driver::serve_reads() {
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.index && *it->second.index <= applied_) {
      auto done = std::move(it->second.done);
      it = reads_.erase(it);
      done({});
    } else {
      ++it;
    }
  }
}

// The compaction policy: a snapshot every snapshot_every_entries applied.
void driver::maybe_snapshot() {
  if (applied_.value < last_snapshot_.value + opts_.snapshot_every_entries) return;
  take_snapshot();
}

}  // namespace conclave::raft
