// The Raft log as the core sees it: in memory, from the last compaction point
// to the last entry, plus what is durable, committed and handed out for
// applying and for persisting. Like etcd's raftLog over MemoryStorage and
// Scylla's raft::log, the core keeps entries since the last compaction in
// memory; storage/ is written from the core's output and read only at start.
//
// Indexes, in order:  start <= applied <= commit,   start <= stable <= last,
// start <= handed <= last, where
//   start   the last compacted entry (its term is kept), 0 for a fresh log
//   applied last entry handed out to be applied to the state machine
//   commit  last entry known committed (§5.3)
//   stable  last entry known durable on this node's disk
//   handed  last entry handed to the shell to persist
//   last    last entry in the log
#pragma once

#include <deque>
#include <optional>
#include <vector>

#include "schema/raft_types.hpp"

namespace conclave::raft {

class raft_log {
 public:
  raft_log() = default;
  // A log restored from disk: `entries` follow (start, start_term) without a
  // gap and are all durable; `applied` is where the state machine was
  // restored to (its snapshot), start <= applied <= commit <= last.
  raft_log(index_t start, term_t start_term, std::vector<log_entry> entries, index_t commit,
           index_t applied);

  index_t start_index() const { return start_; }
  term_t start_term() const { return start_term_; }
  index_t first_index() const { return index_t{start_.value + 1}; }
  index_t last_index() const { return index_t{start_.value + entries_.size()}; }
  term_t last_term() const { return entries_.empty() ? start_term_ : entries_.back().term; }
  index_t commit_index() const { return commit_; }
  index_t applied_index() const { return applied_; }
  index_t stable_index() const { return stable_; }

  // Term of entry `i`, or nothing if it is compacted (i < start) or past the end.
  std::optional<term_t> term_at(index_t i) const;
  bool matches(index_t i, term_t t) const { return term_at(i) == t; }
  // Precondition: start < i <= last.
  const log_entry& at(index_t i) const;

  // §5.4.1: a candidate's log is at least as up to date as ours if its last
  // term is higher, or equal with a last index at least ours.
  bool is_up_to_date(index_t last, term_t term) const {
    return term > last_term() || (term == last_term() && last >= last_index());
  }

  // First index of the run of entries with `term` that contains `i`
  // (i must be in the log); used for the conflict hint of thesis §5.3.
  index_t first_index_of_term_at(index_t i) const;
  // Last index whose term is <= `term`, searching down from `from`; used by
  // the leader to act on a conflict hint. Returns start if none is found.
  index_t last_index_with_term_at_most(term_t term, index_t from) const;

  // Appends an entry; precondition: e.index == last + 1, e.term >= last term.
  void append(log_entry e);
  // Drops entries from `from` on. Precondition: commit < from <= last.
  void truncate_from(index_t from);

  // Entries from `from`, at most `max_count` and `max_bytes` of payload but at
  // least one. Precondition: start < from <= last.
  std::vector<log_entry> slice(index_t from, std::size_t max_count, std::size_t max_bytes) const;

  // Raises the commit index; precondition: i <= last.
  void commit_to(index_t i);
  // Records that entries up to (i, t) are durable, if the log still holds
  // (i, t); a truncation since then makes the report moot.
  void stable_to(index_t i, term_t t);

  // Entries that are committed but not yet handed out to be applied, at most
  // `max_bytes` (but at least one); marks them handed out.
  std::vector<log_entry> take_committed(std::size_t max_bytes);

  // What to persist since the last call: a truncation point if entries handed
  // out before were dropped, then the entries not yet handed out.
  struct unpersisted {
    std::optional<index_t> truncate_from;
    std::vector<log_entry> entries;
  };
  bool has_unpersisted() const { return pending_truncate_.has_value() || handed_ < last_index(); }
  unpersisted take_unpersisted();

  // Drops entries up to `i` (a snapshot covers them); precondition:
  // start < i <= min(applied, stable).
  void compact_to(index_t i);

  // Installs a snapshot received from the leader (Raft §7): if the log holds
  // (i, t), the entries after it stay; otherwise the log is emptied. The
  // snapshot counts as committed, applied and durable.
  void restore(index_t i, term_t t);

  // Sum of payload bytes of entries after the commit index (for flow control).
  std::size_t uncommitted_bytes() const { return uncommitted_bytes_; }

 private:
  index_t start_;
  term_t start_term_;
  std::deque<log_entry> entries_;  // entries_[k].index == start_ + 1 + k
  index_t commit_;
  index_t applied_;
  index_t stable_;
  index_t handed_;
  std::optional<index_t> pending_truncate_;  // durable entries from here on are stale
  std::size_t uncommitted_bytes_ = 0;         // payload bytes of entries after commit_
};

}  // namespace conclave::raft
