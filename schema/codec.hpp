// The one place where Cap'n Proto bytes become conclave's plain structs and
// back. Decoding never throws and never trusts its input: it checks the size,
// bounds Cap'n Proto's traversal and nesting so hostile bytes cannot make it
// allocate or loop without limit, validates enums and union tags, and returns
// an error value naming what was wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "schema/error.hpp"
#include "schema/raft_message.hpp"
#include "schema/raft_types.hpp"

namespace conclave::wire {

// The peer protocol version this build speaks (Envelope.protocolVersion).
inline constexpr std::uint16_t protocol_version = 1;

// Largest encoded message accepted (an AppendEntries batch or a snapshot chunk).
inline constexpr std::size_t max_message_bytes = 64u << 20;

// Longest cluster id accepted (bytes).
inline constexpr std::size_t max_cluster_id_bytes = 128;

// --- peer messages -----------------------------------------------------------

// Encodes `msg` in an Envelope for `cluster_id`.
std::string encode(const raft::message& msg, std::string_view cluster_id);

// Decodes an Envelope. Errors: too_large, malformed, foreign_cluster (the
// envelope names another cluster), unsupported_version.
expected<raft::message> decode(std::string_view bytes, std::string_view cluster_id);

// --- log entries and configurations (stored in LMDB, carried in messages) ---

std::string encode_entry(const raft::log_entry& entry);
expected<raft::log_entry> decode_entry(std::string_view bytes);

std::string encode_configuration(const raft::configuration& config);
expected<raft::configuration> decode_configuration(std::string_view bytes);

// --- snapshot file header ----------------------------------------------------

std::string encode_snapshot_header(const raft::snapshot_meta& meta, std::uint64_t data_size);

struct snapshot_header {
  raft::snapshot_meta meta;
  std::uint64_t data_size = 0;
};
expected<snapshot_header> decode_snapshot_header(std::string_view bytes);

}  // namespace conclave::wire
