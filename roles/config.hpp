// The configuration of a conclave process: every setting is a key (README.md
// lists them with their defaults), from flags or a config file. Parsing
// validates everything once and names the key that is wrong.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "actors/raft/node_options.hpp"
#include "roles/member_agent.hpp"
#include "schema/error.hpp"
#include "schema/registry_types.hpp"

namespace conclave {

using settings = std::map<std::string, std::string>;

// Every key with its default ("" = none).
const settings& default_settings();

struct node_config {
  registry::member_role role = registry::member_role::master_and_worker;
  bool is_master() const { return role != registry::member_role::worker; }
  raft::node_options raft;      // masters only
  raft::endpoint listen;        // masters only
  std::optional<raft::endpoint> client_listen;  // masters: etcd's v3 API there (roles/etcd_api.hpp)
  std::optional<raft::endpoint> http_listen;    // masters: HTTP (metrics, health; with client_listen etcd's JSON gateway)
  int threads = 1;
  // The embedding API: how many of its blocking calls run at once.
  std::size_t parallel_calls = 16;
  // Masters: key changes the registry keeps for watches (registry::limits::history).
  std::size_t watch_history = 10000;
  agent_options agent;          // every role: registration and heartbeats
};

// Parses `values` (unknown keys refused; missing keys take their defaults).
// Errors: invalid_argument naming the key and the problem.
expected<node_config> parse_settings(const settings& values);

// Flags (--KEY VALUE, -r ROLE, --config FILE) over the file over defaults.
expected<settings> read_settings(int argc, char** argv);

// The data directory remembers the cluster and server it belongs to: checks
// it (nothing changes on a mismatch) and records it on first use.
expected<void> check_identity(const std::string& dir, const std::string& cluster_id, std::uint64_t id);

}  // namespace conclave
