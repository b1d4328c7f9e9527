// Every atom conclave's actors exchange (CAF 0.17 atoms: at most 10 chars).
// Between processes only the gateway's messages travel (peer_atom,
// hello_atom, client_atom, forward_atom, auth_atom, and the test-only fault_atom):
// Cap'n Proto bytes inside one CAF message type, as DESIGN.md's wire format
// says. The others stay inside one master.
#pragma once

#include <caf/atom.hpp>

namespace conclave {

// --- over the network, to a master's gateway (actors/raft/gateway.hpp)
using peer_atom = caf::atom_constant<caf::atom("peer")>;        // (peer_atom, bytes, tag): Raft peer message
// (hello_atom, cluster id, from id, to id, tag): a master's link to a higher id connected; the receiver's link answers over it
using hello_atom = caf::atom_constant<caf::atom("hello")>;
using client_atom = caf::atom_constant<caf::atom("client")>;    // (client_atom, bytes) -> bytes
using forward_atom = caf::atom_constant<caf::atom("forward")>;  // (forward_atom, bytes, tag): a request a follower passed on
using auth_atom = caf::atom_constant<caf::atom("auth")>;        // (auth_atom) -> nonce; (auth_atom, proof) -> level
using fault_atom = caf::atom_constant<caf::atom("fault")>;      // test-only fault channel (fault-injection = true)
using drop_atom = caf::atom_constant<caf::atom("drop")>;        // (fault_atom, drop_atom, peer, outgoing, incoming)
using stall_atom = caf::atom_constant<caf::atom("stall")>;      // (fault_atom, stall_atom, ms)

// --- inside one master: the gateway asks the peer actor (actors/raft/peer_actor.hpp)
using propose_atom = caf::atom_constant<caf::atom("propose")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using stale_read_atom = caf::atom_constant<caf::atom("staleread")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using transfer_atom = caf::atom_constant<caf::atom("transfer")>;
using membership_atom = caf::atom_constant<caf::atom("membership")>;
using keepalive_atom = caf::atom_constant<caf::atom("keepalive")>;
using session_lost_atom = caf::atom_constant<caf::atom("sesslost")>;  // their heartbeating connection broke
using sessions_atom = caf::atom_constant<caf::atom("sessions")>;      // which of these sessions ended?
using gateway_atom = caf::atom_constant<caf::atom("gateway")>;        // (gateway_atom, actor): the gateway
using route_atom = caf::atom_constant<caf::atom("route")>;            // (route_atom, leader id, its gateway)
// --- between the peer actor and its links (actors/raft/link_actor.hpp)
using link_atom = caf::atom_constant<caf::atom("link")>;    // (link_atom, peer id, remote or null): up or down
using heard_atom = caf::atom_constant<caf::atom("heard")>;  // the peer spoke: the backoff starts over
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;
// --- the peer actor, its storage actor, timers and the host
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using persisted_atom = caf::atom_constant<caf::atom("persisted")>;
using storage_failed_atom = caf::atom_constant<caf::atom("diskfail")>;  // (storage_failed_atom, errc, text)
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;  // (subscribe_atom, actor): role changes to it
using role_atom = caf::atom_constant<caf::atom("role")>;            // (role_atom, leading, term, leader id)
// Push subscriptions (actors/registry/subscriptions.hpp, schema/push.capnp):
//   (pushsub_atom, id, subscription bytes) -> error text (empty: accepted)
//   (unsub_atom, id)
//   master -> subscriber: (push_atom, id, kind, registry snapshot bytes); id 0: progress of every watch
using pushsub_atom = caf::atom_constant<caf::atom("pushsub")>;
using unsub_atom = caf::atom_constant<caf::atom("unsub")>;
using push_atom = caf::atom_constant<caf::atom("push")>;

}  // namespace conclave
