// The configuration of a conclave process: every setting is a key (README.md
// lists them with their defaults), from flags, the environment or a config
// file. Parsing validates everything once and names the key that is wrong.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "actors/log.hpp"
#include "actors/raft/node_options.hpp"
#include "roles/member_agent.hpp"
#include "roles/tls.hpp"
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
  std::optional<raft::endpoint> http_listen;    // masters: HTTP (status page, metrics, health; with client_listen, etcd's JSON gateway)
  int threads = 1;
  // The embedding API: how many of its blocking calls run at once.
  std::size_t parallel_calls = 16;
  // Masters: key changes the registry keeps for watches (registry::limits::history).
  std::size_t watch_history = 10000;
  agent_options agent;          // every role: registration and heartbeats
  // Masters: rewrite the data directory to a one-master cluster before
  // starting (roles/force_new_cluster.hpp). Once, after losing the majority.
  bool force_new_cluster = false;
  log_format log = log_format::text;  // the process's log lines (actors/log.hpp)
  tls_files peer_tls;           // every role: the native links (peer-*), README "TLS"
  tls_files client_tls;         // masters with client-listen: the etcd API and HTTP (cert-file, ...)
};

// Parses `values` (unknown keys refused; missing keys take their defaults).
// Errors: invalid_argument naming the key and the problem.
expected<node_config> parse_settings(const settings& values);

// The environment variable of a key: `prefix` + the key upper-cased with '-'
// as '_' (client-listen: CONCLAVE_CLIENT_LISTEN).
std::string env_name(const std::string& key, const std::string& prefix = "CONCLAVE_");

// The settings an environment (environ's form: NAME=VALUE, null-terminated)
// gives, and the names under CONCLAVE_ that are no setting (the caller warns:
// the environment is shared with other programs, so they are not refused).
// CONCLAVE_CONFIG names the config file (as --config does).
struct env_settings {
  settings values;
  std::string config_file;
  std::vector<std::string> unrecognized;
};
env_settings read_env(const char* const* env);

// Flags (--KEY VALUE, -r ROLE, --config FILE) over the environment over the
// config file (--config, else CONCLAVE_CONFIG) over defaults.
expected<settings> read_settings(int argc, char** argv, const env_settings& env = {});

// The data directory remembers the cluster and server it belongs to: checks
// it (nothing changes on a mismatch) and records it on first use.
expected<void> check_identity(const std::string& dir, const std::string& cluster_id, std::uint64_t id);

}  // namespace conclave
