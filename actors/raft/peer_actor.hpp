// The Raft peer actor ties one master together. It runs the driver
// (driver.hpp: the core, group commit, apply, pending proposals and reads)
// and carries out the driver's interfaces: messages to the other masters go
// through one link actor each (link_actor.hpp), writes through the storage
// actor (storage_actor.hpp), and time comes from ticking itself.
//
// It also serves push subscriptions (push_hub.hpp) from the state it
// applies, sending pushes in the gateway's name.
//
// It is never published, so nothing from the network reaches it: the
// gateway (gateway.hpp) faces clients and peers and asks it, through the
// typed interface below, for what needs Raft.
#pragma once

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/atoms.hpp"
#include "actors/metrics.hpp"
#include "actors/raft/driver.hpp"
#include "actors/raft/leader_service.hpp"
#include "actors/raft/push_service.hpp"
#include "actors/raft/node_options.hpp"
#include "actors/raft/state_machine.hpp"
#include "schema/client_protocol.hpp"

namespace conclave::raft {

// What a peer actor starts from; shared so CAF can copy it into spawn.
struct peer_setup {
  node_options options;
  persistent_state durable;                // loaded from disk
  std::shared_ptr<state_machine> machine;  // already restored from durable.snapshot
  caf::actor storage;                      // the storage actor for this server's disk
  std::shared_ptr<leader_service> service;  // optional: leader-side work of the state machine
  std::shared_ptr<push_service> push;       // optional: subscriptions served from the applied state
  std::shared_ptr<metrics::sink> stats;     // what it measures (actors/metrics.hpp); never null
};

// Answers are in the client protocol's terms; a refusal names the leader
// this master knows, so the gateway may pass the request on to it.
using peer_interface = caf::typed_actor<
    // From the gateway: what needs Raft.
    caf::replies_to<propose_atom, std::string>::with<client::response>,  // a command, answered once applied
    caf::replies_to<read_atom, std::string>::with<client::response>,     // a query, answered linearizably
    caf::replies_to<stale_read_atom, std::string>::with<client::response>,  // a query of what is applied here
    caf::replies_to<status_atom>::with<client::response>,
    caf::replies_to<transfer_atom, std::uint64_t>::with<client::response>,  // to this id (0: the most caught-up)
    // (kind, id, address) as in client::change_membership
    caf::replies_to<membership_atom, std::uint8_t, std::uint64_t, std::string>::with<client::response>,
    caf::replies_to<keepalive_atom, std::uint64_t, std::string>::with<client::response>,  // session, payload
    caf::reacts_to<session_lost_atom, std::vector<std::uint64_t>>,  // their heartbeating connection broke
    // Push subscriptions (push_hub.hpp) of a client actor, which the gateway
    // authenticated: error text, empty when accepted.
    caf::replies_to<pushsub_atom, caf::actor, std::uint64_t, std::string>::with<std::string>,
    caf::reacts_to<unsub_atom, caf::actor, std::uint64_t>,
    // Of these sessions, those that ended.
    caf::replies_to<sessions_atom, std::vector<std::uint64_t>>::with<std::vector<std::uint64_t>>,
    caf::reacts_to<peer_atom, message>,  // a peer's message, authenticated and decoded
    caf::reacts_to<gateway_atom, caf::actor>,  // the gateway: links speak in its name, routes go to it
    caf::reacts_to<fault_atom, drop_atom, std::uint64_t, bool, bool>,  // tests: drop traffic to/from a peer
    caf::reacts_to<fault_atom, stall_atom, std::uint32_t>,            // tests: stall the disk for ms (0: resume)
    // From its links: connected to the peer's gateway (remote), or not (null).
    caf::reacts_to<link_atom, std::uint64_t, caf::actor>,
    // From the gateway: a lower id's link said hello from its gateway (remote).
    caf::reacts_to<hello_atom, std::uint64_t, caf::actor>,
    // From its storage actor (storage_actor.hpp).
    caf::reacts_to<storage_failed_atom, std::uint32_t, std::string>,
    // From the host: role changes, as (role_atom, leading, term, leader id),
    // to an actor; and stop: hand over leadership if leading, finish pending
    // writes, quit (answered then).
    caf::reacts_to<subscribe_atom, caf::actor>, caf::reacts_to<stop_atom>,
    // Its own timers.
    caf::reacts_to<tick_atom>, caf::reacts_to<flush_atom>>;

peer_interface::behavior_type peer_actor(peer_interface::pointer self, std::shared_ptr<peer_setup> setup);

// A refusal in the client protocol, naming `leader` (when it is known and
// not this server) as the hint a client follows.
client::failure refusal(errc code, const std::string& detail, node_id leader, const node_options& opts);

}  // namespace conclave::raft

// Only ever sent inside one process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::client::response)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(conclave::raft::message)
