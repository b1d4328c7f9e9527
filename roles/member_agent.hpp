// The member agent: every conclave process (master, worker or both)
// registers itself in the registry and heartbeats to the leader with its
// resource usage. A worker that reaches no master for no_master_timeout_ms
// exits (code 3); a master that has had no leader for quorum_loss_timeout_ms
// either fences (keeps running, not ready) or exits (code 4), per policy.
#pragma once

#include <caf/fwd.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/auth.hpp"
#include "actors/raft/node_options.hpp"
#include "roles/raft_client.hpp"
#include "schema/registry_types.hpp"

namespace conclave {

// Exit codes of the conclave program (README.md lists them).
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_bad_config = 2;
inline constexpr int exit_no_master = 3;
inline constexpr int exit_quorum_lost = 4;

struct agent_options {
  std::string cluster_id;
  std::vector<raft::endpoint> masters;
  registry::member me;                 // id, role, host, port, labels
  std::uint64_t session_ttl_ms = 2000;
  int heartbeat_ms = 500;
  std::uint64_t usage_window_ms = 5000;
  std::string disk_path = "/";
  int no_master_timeout_ms = 0;        // workers: exit after this long without a master (0: never)
  // Masters: how long without a leader counts as quorum loss, and whether to exit then.
  int quorum_loss_timeout_ms = 0;      // 0: not a master
  bool exit_on_quorum_loss = false;
  // Masters: who this server sees leading (0: nobody), from its Raft peer.
  std::function<std::uint64_t()> known_leader;
  // Told the agent's registration session each time it changes (0 while it has none).
  std::function<void(std::uint64_t)> on_session;
  // Where the agent publishes when the leader last answered a heartbeat
  // (steady clock, ms since its epoch).
  std::shared_ptr<std::atomic<std::uint64_t>> contact_out;
  auth::keys keys;  // credentials, when the cluster requires them
  // Masters: their own Raft peer, reached in-process (raft_client.hpp).
  local_master local;
};

void run_member_agent(caf::actor_system& sys, const agent_options& o, std::atomic<bool>& stop,
                      std::atomic<int>& exit_code);

}  // namespace conclave
