// Every atom conclave's actors exchange (CAF 0.17 atoms: at most 10 chars).
// Between processes only (peer_atom, bytes) and (client_atom, bytes) travel:
// Cap'n Proto inside one CAF message type, as DESIGN.md's wire format says.
#pragma once

#include <caf/atom.hpp>

namespace conclave {

using peer_atom = caf::atom_constant<caf::atom("peer")>;        // (peer_atom, bytes, tag): Raft peer message
using client_atom = caf::atom_constant<caf::atom("client")>;    // (client_atom, bytes) -> bytes
using forward_atom = caf::atom_constant<caf::atom("forward")>;  // (forward_atom, bytes, tag): a request a follower passed on
using auth_atom = caf::atom_constant<caf::atom("auth")>;        // (auth_atom) -> nonce; (auth_atom, proof) -> level
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using persisted_atom = caf::atom_constant<caf::atom("persisted")>;
using storage_failed_atom = caf::atom_constant<caf::atom("diskfail")>;  // (storage_failed_atom, errc, text)
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;
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
