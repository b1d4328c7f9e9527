// What the status page shows (roles/status_page.hpp), as one JSON object:
// the masters with their Raft positions, the registry's members, sessions
// and locks, and the leader changes this master saw. Pure: the feed
// (roles/status_feed.hpp) gathers the inputs, this only formats them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "schema/client_protocol.hpp"
#include "schema/registry_types.hpp"

namespace conclave {

// A change of leader as this master saw it (leader 0: none known).
struct leader_change {
  std::uint64_t time_ms = 0;  // wall clock, ms since the epoch
  std::uint64_t term = 0;
  std::uint64_t leader = 0;
};

// One master of the Raft configuration and what it answered when asked its
// status (each master reports its own positions; none: it did not answer).
struct master_view {
  client::config_member config;
  std::optional<client::status> status;
  std::string error;  // why it did not answer
};

struct status_inputs {
  std::uint64_t self = 0;          // this master's server id
  bool failed = false;             // this master's Raft server stopped (a storage failure)
  std::vector<master_view> masters;  // in id order; this master among them
  std::shared_ptr<const registry::registry_state> registry;  // as this master applied it; null: unreadable
  std::string registry_error;
  std::vector<leader_change> leader_changes;  // oldest first
};

// "ok", "full" (the disk or LMDB's map is full) or "failed" (another write
// error, or the server stopped), from a master's status.
std::string disk_state(const client::status& s, bool failed = false);

// The snapshot as one line of JSON (no newline in it), without a time stamp:
// two equal snapshots are equal strings.
std::string status_json(const status_inputs& in);

}  // namespace conclave
