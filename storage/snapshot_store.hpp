// Snapshot files (Raft §7): the state machine's bytes up to some log entry.
//
// One file per snapshot, named snapshot-<index>-<term>.snap (20-digit,
// zero-padded, so names sort by index), laid out as:
//   "CNCLSNAP" | u32 format version | u32 header size | header | data | u32 CRC-32
// where the header is a schema::SnapshotHeader (last included index and term,
// configuration, data size), integers are little-endian and the CRC covers
// every byte before it. A file is written to tmp-*.snap, fsynced, renamed into
// place and the directory fsynced, so a crash leaves either the whole new
// snapshot or none of it. The newest `keep` snapshots are kept.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/error.hpp"
#include "schema/raft_types.hpp"

namespace conclave::storage {

struct snapshot {
  raft::snapshot_meta meta;
  std::string data;
};

// Where a server keeps its snapshots: snapshot_store (files) in production,
// memory_snapshots in the simulation. The storage job (actors/raft/storage_job)
// saves through it and compacts the log only behind the oldest one kept.
class snapshot_keeper {
 public:
  virtual ~snapshot_keeper() = default;
  // Saves durably, then drops all but the newest few. Errors: disk_full, io_error.
  virtual expected<void> save(const raft::snapshot_meta& meta, std::string_view data) = 0;
  // The last included index of each snapshot kept, newest first.
  virtual expected<std::vector<raft::index_t>> indexes() const = 0;
};

class snapshot_store final : public snapshot_keeper {
 public:
  // Opens (creating) `dir`; removes temporary files a crash left behind.
  // `keep` >= 1 snapshots are kept.
  static expected<snapshot_store> open(const std::string& dir, std::size_t keep = 2);

  // Writes a snapshot durably, then removes all but the newest `keep`.
  // Errors: disk_full, io_error; on error no new file is left behind.
  expected<void> save(const raft::snapshot_meta& meta, std::string_view data) override;

  struct loaded {
    std::optional<snapshot> latest;  // the newest snapshot that verifies; none if there is none
    std::vector<error> skipped;      // newer files that failed to verify (corrupt), newest first
  };
  // Finds the newest valid snapshot. Errors: io_error (cannot list the directory).
  expected<loaded> load_latest() const;

  // Reads and verifies one snapshot file. Errors: corrupt, io_error, not_found.
  static expected<snapshot> read_file(const std::string& path);

  // Snapshot files in the directory, newest first.
  expected<std::vector<std::string>> files() const;
  // The last included index of each snapshot file, newest first (from the names).
  expected<std::vector<raft::index_t>> indexes() const override;

  const std::string& dir() const { return dir_; }

 private:
  snapshot_store(std::string dir, std::size_t keep) : dir_(std::move(dir)), keep_(keep) {}

  std::string dir_;
  std::size_t keep_;
};

}  // namespace conclave::storage
