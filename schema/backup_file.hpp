// A backup of the registry: what `conclavectl snapshot save` and etcd's
// Maintenance.Snapshot stream (`etcdctl snapshot save`) write, and what
// `conclave restore` and `conclavectl snapshot status` read. One format:
//
//   "CNCLBKUP" | u32 format version (1) | u32 header size | header | data | zero padding | SHA-256
//
// The header is text, one KEY=VALUE a line: cluster-id, revision, raft-index
// (the log index the state was applied up to), keys, data-bytes. The data is
// the registry state in its snapshot encoding (schema/registry_codec.hpp).
// Padding makes everything before the SHA-256 a whole number of 512-byte
// pages, as etcd's snapshot stream is; the SHA-256 covers every byte before
// it. Integers are little-endian.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "schema/error.hpp"
#include "schema/registry_types.hpp"

namespace conclave::backup {

struct header {
  std::string cluster_id;        // of the cluster it was saved from
  registry::revision rev = 0;    // the registry's revision
  std::uint64_t raft_index = 0;  // the log index the state was applied up to
  std::uint64_t keys = 0;
  std::uint64_t data_bytes = 0;
};

struct contents {
  backup::header header;
  registry::registry_state state;
};

// The whole file for `state`, saved from cluster `cluster_id`.
std::string encode(const std::string& cluster_id, const registry::registry_state& state);

// Checks and decodes a whole file. Errors: corrupt, naming what is wrong (not
// a backup, truncated, checksum mismatch, a header or state that does not
// decode); unsupported_version.
expected<contents> decode(std::string_view bytes);

// Writes `bytes` to PATH.part, fsyncs it, renames it to PATH and fsyncs the
// directory: PATH holds the whole file or is left as it was. Errors:
// io_error, disk_full (the .part file is removed).
expected<void> write_file(const std::string& path, std::string_view bytes);

// Reads and decodes PATH. Errors: not_found, io_error, and those of decode.
expected<contents> read_file(const std::string& path);

}  // namespace conclave::backup
