// The durable Raft log: what the core needs from storage (etcd's Storage,
// LogCabin's Storage/Log.h). Two implementations: lmdb_log (on disk) and
// memory_log (tests, simulation). Neither is thread-safe: one owner (the
// storage actor) calls it.
//
// Model: the log holds entries first_index()..last_index(), preceded by a
// "start" entry (index, term) standing for everything compacted into a
// snapshot; for a fresh log the start is (0, 0), so first_index() = 1 and
// last_index() = 0.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "schema/error.hpp"
#include "schema/raft_types.hpp"

namespace conclave::storage {

using raft::hard_state;
using raft::index_t;
using raft::log_entry;
using raft::term_t;

// One atomic, durable write (one transaction, one fsync): first drop the
// suffix from `truncate_from` on (a log conflict, Raft §5.3), then append
// `entries`, then record `state`. Any part may be empty.
struct write_batch {
  std::optional<index_t> truncate_from;  // must be > commit index and > the start index
  std::vector<log_entry> entries;        // consecutive, first = last_index() + 1 after truncation
  std::optional<hard_state> state;       // must not go backwards (see raft::hard_state)
};

class log_store {
 public:
  virtual ~log_store() = default;

  // Applies `batch` all or nothing. Errors: out_of_order, invalid_argument
  // (truncating committed or compacted entries), hard_state_regression,
  // map_full, disk_full, io_error. On error nothing of the batch is stored.
  virtual expected<void> write(const write_batch& batch) = 0;

  // Drops entries up to `index`, which a snapshot with last entry (index,
  // term) now covers (Raft §7): if the log holds (index, term), entries after
  // it are kept; otherwise (a conflicting or shorter log) all entries go. The
  // start becomes (index, term) and the commit index is raised to at least
  // `index`, since a snapshot holds only committed entries. Compacting at or
  // below the current start is a no-op.
  virtual expected<void> compact(index_t index, term_t term) = 0;

  virtual index_t first_index() const = 0;  // start index + 1
  virtual index_t last_index() const = 0;   // start index when empty
  virtual index_t start_index() const = 0;  // last compacted index, 0 if none
  virtual term_t start_term() const = 0;    // its term
  virtual hard_state state() const = 0;     // last written hard state, zeros if none

  // Term of entry `index`; valid for start_index() <= index <= last_index().
  // Errors: compacted (index < start_index()), unavailable (past the end), corrupt.
  virtual expected<term_t> term(index_t index) const = 0;

  // Errors: compacted, unavailable, corrupt.
  virtual expected<log_entry> entry(index_t index) const = 0;

  // Entries from `from` on, at most `max_count` of them and at most
  // `max_bytes` of payload, but always at least one if `from` is in the log
  // (so one oversized entry still makes progress). Errors as entry().
  virtual expected<std::vector<log_entry>> entries(index_t from, std::size_t max_count,
                                                   std::size_t max_bytes) const = 0;

  // Shorthands for write().
  expected<void> append(std::vector<log_entry> entries);
  expected<void> truncate_suffix(index_t from);
  expected<void> save_state(const hard_state& state);
};

// Checks `batch` against the log's current shape; shared by both
// implementations so they refuse exactly the same things.
expected<void> validate(const write_batch& batch, const log_store& log);

}  // namespace conclave::storage
