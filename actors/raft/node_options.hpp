// Everything one Raft server process needs to know, validated once.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "actors/auth.hpp"
#include "actors/raft/config.hpp"
#include "schema/error.hpp"

namespace conclave::raft {

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
  std::string text() const { return host + ":" + std::to_string(port); }
};

// Parses "host:port". Errors: invalid_argument naming `what` and the text.
expected<endpoint> parse_endpoint(const std::string& text, const std::string& what);

struct node_options {
  raft::config raft;                       // id, timing, limits (in ticks)
  std::string cluster_id;                  // every message carries it; others are refused
  std::string data_dir;                    // log/ and snapshots/ live here
  std::map<node_id, endpoint> members;     // every founding voter, this server included
  bool join = false;                       // not a founder: start empty and wait to be added
  int tick_ms = 10;                        // one core tick
  std::uint64_t snapshot_every_entries = 10000;  // snapshot the state machine this often
  std::uint64_t log_max_bytes = 64ull << 30;      // the LMDB map's cap: beyond it writes fail with map_full
  std::size_t snapshots_kept = 2;
  // A write running this long is logged as a storage stall (0:
  // election_timeout_min_ticks * tick_ms); the leader keeps leading.
  int storage_stall_ms = 0;
  int reconnect_min_ms = 20;    // capped exponential backoff with jitter
  int reconnect_max_ms = 1000;
  int shutdown_transfer_ms = 1000;  // how long a leader waits to hand over on SIGTERM
  auth::keys keys;                  // cluster credentials (none: authentication off)
  // For tests only: the gateway accepts the fault channel (fault_atom: drop
  // peer traffic, stall the disk). Off in production.
  bool fault_injection = false;

  const endpoint& self() const { return members.at(raft.id); }
  expected<void> validate() const;
};

}  // namespace conclave::raft
