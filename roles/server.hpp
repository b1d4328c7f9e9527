// A Raft server inside an actor system: opens its disk, restores the state
// machine, spawns the storage, peer and gateway actors and publishes the
// gateway on its port (start_server);
// and the pieces a server process is made of (signals, the actor system's
// settings, waiting for a stop), shared by conclave and conclave-raft-node.
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <signal.h>

#include <functional>
#include <memory>

#include "actors/metrics.hpp"
#include "actors/raft/gateway.hpp"
#include "actors/raft/leader_service.hpp"
#include "actors/raft/push_service.hpp"
#include "actors/raft/node_options.hpp"
#include "actors/raft/state_machine.hpp"
#include "roles/tls.hpp"
#include "schema/error.hpp"

namespace conclave {

struct server_setup {
  raft::node_options options;
  raft::endpoint listen;
  int threads = 1;  // CAF worker threads
  tls_files peer_tls;  // run_server: TLS on the native links (use_peer_tls)
  std::shared_ptr<raft::state_machine> machine;
  std::shared_ptr<raft::leader_service> service;  // may be null
  std::shared_ptr<raft::push_service> push;       // may be null
  std::shared_ptr<metrics::sink> stats;           // what the server measures; null: its own, unread
};

// Runs a server process until SIGTERM/SIGINT (a leader hands over first) or
// a storage failure. Returns the exit code: 0 after a clean stop, 1 on a
// runtime failure.
int run_server(server_setup setup);

// Blocks SIGTERM and SIGINT in this thread (call before any thread starts,
// so no CAF thread receives them) and returns the set for wait_for_stop.
sigset_t block_stop_signals();
// The actor system settings of a server process: the middleman, and `threads`
// workers on a shared queue (one Raft peer is one actor; this measured
// fastest on small machines, bench/README.md); with `peer_tls`, CAF's
// OpenSSL manager (use_peer_tls).
caf::actor_system_config& server_system_config(int threads, const tls_files& peer_tls = {});
// Waits until one of `signals` arrives (returns 0) or `exit_request`
// returns non-zero (returns that), polling it every 50 ms.
int wait_for_stop(const sigset_t& signals, const std::function<int()>& exit_request);

struct server_handles {
  raft::gateway_interface gateway;  // published: (client_atom, bytes) -> bytes
  raft::peer_interface peer;        // unpublished: (subscribe_atom, actor), (stop_atom)
};

// Starts a Raft server inside `sys` (which has the io::middleman loaded)
// and returns at once. The agent of `setup` is not started. Errors: the
// data directory cannot be opened, the port cannot be bound.
expected<server_handles> start_server(caf::actor_system& sys, const server_setup& setup);
// Hands over leadership if leading, finishes pending writes and stops; its
// address is free again (unpublished), for a server started anew there.
void stop_server(caf::actor_system& sys, const server_handles& server);

}  // namespace conclave
