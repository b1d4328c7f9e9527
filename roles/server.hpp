// Runs one Raft server process: opens its disk, restores the state machine,
// spawns the storage and peer actors, listens, and waits for SIGTERM/SIGINT
// (then a leader hands over first). An optional agent runs beside it on its
// own thread (the member agent of conclave's roles) and can ask the process
// to exit with a code.
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <atomic>
#include <functional>
#include <memory>

#include "actors/error.hpp"
#include "actors/raft/leader_service.hpp"
#include "actors/raft/node_options.hpp"
#include "actors/raft/state_machine.hpp"

namespace conclave {

// Runs until `stop` is set; sets `exit_code` (non-zero) to end the process.
using agent_function = std::function<void(caf::actor_system&, std::atomic<bool>& stop, std::atomic<int>& exit_code)>;

struct server_setup {
  raft::node_options options;
  raft::endpoint listen;
  int threads = 1;  // CAF worker threads
  std::shared_ptr<raft::state_machine> machine;
  std::shared_ptr<raft::leader_service> service;  // may be null
  agent_function agent;                           // may be empty
};

// Returns the process exit code: 0 after a clean stop, 1 on a runtime
// failure, or the code the agent asked for.
int run_server(server_setup setup);

struct server_handles {
  caf::actor peer;  // answers (client_atom, bytes) and (stop_atom)
};

// Starts a Raft server inside `sys` (which has the io::middleman loaded)
// and returns at once. The agent of `setup` is not started. Errors: the
// data directory cannot be opened, the port cannot be bound.
expected<server_handles> start_server(caf::actor_system& sys, const server_setup& setup);
// Hands over leadership if leading, finishes pending writes and stops.
void stop_server(caf::actor_system& sys, const caf::actor& peer);

// Runs just an agent (a worker has no Raft server) until SIGTERM/SIGINT or
// until it asks to exit. Returns the exit code.
int run_agent_only(const agent_function& agent);

}  // namespace conclave
