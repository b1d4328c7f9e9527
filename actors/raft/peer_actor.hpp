// The Raft peer actor: a thin CAF shell around raft::core. It feeds the core
// peer messages (Cap'n Proto bytes from other masters), ticks from CAF's
// clock and "connection lost" from monitoring the remote peers; it carries
// out the core's readies: messages to the transport, persistence to the
// storage actor (group commit: while one write runs, later readies merge
// into the next), committed entries to the state machine, answers to
// clients. It also connects to the other masters (publish/remote_actor over
// CAF's middleman) with capped exponential backoff and jitter.
#pragma once

#include <caf/actor.hpp>
#include <caf/behavior.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/atoms.hpp"

#include <memory>

#include "actors/raft/driver.hpp"
#include "actors/raft/leader_service.hpp"
#include "actors/raft/push_service.hpp"
#include "actors/raft/node_options.hpp"
#include "actors/raft/state_machine.hpp"
#include "actors/raft/storage_actor.hpp"

namespace conclave::raft {

// What a peer actor starts from; shared so CAF can copy it into spawn.
struct peer_setup {
  node_options options;
  persistent_state durable;                // loaded from disk
  std::shared_ptr<state_machine> machine;  // already restored from durable.snapshot
  caf::actor storage;                      // the storage actor for this server's disk
  std::shared_ptr<leader_service> service;  // optional: leader-side work of the state machine
  std::shared_ptr<push_service> push;       // optional: subscriptions served from the applied state
};

// The peer actor's interface for local users (the embedding API): client
// requests and role updates. Its peers talk to it with (peer_atom, bytes).
using peer_interface = caf::typed_actor<caf::replies_to<client_atom, std::string>::with<std::string>,
                                        caf::reacts_to<subscribe_atom, caf::actor>>;

// Handles (peer_atom, bytes), (client_atom, bytes) -> bytes, and
// (stop_atom): hand over leadership if leading, finish pending writes, quit.
caf::behavior peer_actor(caf::event_based_actor* self, std::shared_ptr<peer_setup> setup);

}  // namespace conclave::raft
