// The Raft log in LMDB.
//
// On-disk layout (one LMDB environment in the data directory):
//   data.mdb, lock.mdb   LMDB's own files
//   LOCK                 flock()ed while open, so two processes never share a log
//   database "log"       key: index (native uint64, MDB_INTEGERKEY)
//                        value: a Cap'n Proto LogEntry (schema/log.capnp)
//   database "meta"      "hard_state" -> term, voted_for, commit_index
//                        "start"      -> index, term of the last compacted entry
//                        (little-endian uint64s)
//
// Every write is one LMDB transaction; its commit is the fsync, so a batch
// costs one durable commit however many entries it holds. LMDB never
// overwrites live pages, so a crash at any moment leaves the last committed
// transaction intact. When the map fills, it is grown (doubled) up to
// `max_map_bytes`; at the cap, writes fail with errc::map_full and the data
// already written stays readable.
#pragma once

#include <memory>
#include <string>

#include "storage/log_store.hpp"

namespace conclave::storage {

struct lmdb_options {
  std::size_t initial_map_bytes = 64u << 20;
  std::size_t max_map_bytes = 64ull << 30;
  bool durable = true;  // false: no fsync on commit (benchmarks of the CPU path only)
};

class lmdb_log final : public log_store {
 public:
  // Opens or creates the log in `dir` (created if missing). Errors: io_error
  // (cannot create or lock: the detail names the path and the OS error, e.g.
  // another process holds the LOCK), corrupt (meta records of the wrong size).
  static expected<std::unique_ptr<lmdb_log>> open(const std::string& dir,
                                                   const lmdb_options& options = {});
  ~lmdb_log() override;
  lmdb_log(const lmdb_log&) = delete;
  lmdb_log& operator=(const lmdb_log&) = delete;

  expected<void> write(const write_batch& batch) override;
  expected<void> compact(index_t index, term_t term) override;

  index_t first_index() const override { return index_t{start_index_.value + 1}; }
  index_t last_index() const override { return last_index_; }
  index_t start_index() const override { return start_index_; }
  term_t start_term() const override { return start_term_; }
  hard_state state() const override { return state_; }

  expected<term_t> term(index_t index) const override;
  expected<log_entry> entry(index_t index) const override;
  expected<std::vector<log_entry>> entries(index_t from, std::size_t max_count,
                                           std::size_t max_bytes) const override;

  // Current size of the LMDB map, in bytes (grows up to max_map_bytes).
  std::size_t map_bytes() const;

  struct impl;

 private:
  explicit lmdb_log(std::unique_ptr<impl> impl);
  expected<void> check_range(index_t index) const;

  std::unique_ptr<impl> impl_;
  // Cached from disk, updated after each successful commit.
  index_t start_index_;
  term_t start_term_;
  index_t last_index_;
  hard_state state_;
};

}  // namespace conclave::storage
