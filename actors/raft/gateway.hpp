// The gateway: the actor a master publishes on its port, for clients and
// peers alike. It decodes client requests, authenticates each connection
// (a challenge, auth.hpp) and refuses what the connection may not do, asks
// the peer actor (peer_actor.hpp, never published) for what needs Raft,
// and passes requests for the leader on to the leader's gateway. Peer
// messages, once their tag and encoding check out, go on to the peer actor.
//
// What it knows of each client connection (credentials, the sessions whose
// heartbeats it carries) lives in one record per connection, forgotten when
// the connection breaks; see gateway.cpp, `connection`.
#pragma once

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <string>

#include "actors/atoms.hpp"
#include "actors/metrics.hpp"
#include "actors/raft/node_options.hpp"
#include "actors/raft/peer_actor.hpp"

namespace conclave::raft {

struct gateway_setup {
  node_options options;
  peer_interface peer;  // this master's peer actor; the gateway lives and dies with it
  std::shared_ptr<metrics::sink> stats;  // client requests and peer bytes received; never null
};

// What an in-process host asks of a master (roles/node.hpp shows its use):
// client requests in the wire form of schema/client.capnp, answered the
// same way; push subscriptions (schema/push.capnp), answered with "" or the
// refusal, after which (push_atom, id, kind, bytes) arrive at the sender;
// their end; and the proof of credentials when the cluster requires them.
using gateway_interface =
    caf::typed_actor<caf::replies_to<client_atom, std::string>::with<std::string>,
                     caf::replies_to<pushsub_atom, std::uint64_t, std::string>::with<std::string>,
                     caf::reacts_to<unsub_atom, std::uint64_t>, caf::replies_to<auth_atom>::with<std::string>,
                     caf::replies_to<auth_atom, std::string>::with<std::string>>;

// Handles, from the network:
//   (client_atom, bytes) -> bytes: a client request;
//   (forward_atom, bytes, tag) -> bytes: a request another master passed on,
//     tagged with the cluster secret;
//   (auth_atom) -> nonce, (auth_atom, proof) -> level: a connection proves its key;
//   (peer_atom, bytes, tag): a peer's Raft message, tagged with the secret;
//   for tests only, when the server runs with fault-injection = true (and
//   from a connection that proved the secret when authentication is on),
//   answered with "" when done or the refusal:
//     (fault_atom, drop_atom, peer, outgoing, incoming) -> text: drop this
//       server's traffic to / from `peer` (false, false: pass it again);
//     (fault_atom, stall_atom, ms) -> text: hold the disk's completions (0: release).
// And from its peer actor only: (route_atom, leader id, the leader's gateway
// or null when this server leads or is not connected to it).
caf::behavior gateway_actor(caf::event_based_actor* self, gateway_setup setup);

}  // namespace conclave::raft
