// A link: this master's connection to one other master. Only the lower id of
// a pair connects (CAF 0.17 keeps one connection per pair of processes and
// loses both when the two connect to each other at once, README "TLS"): its
// link connects through CAF's middleman, retries with capped exponential
// backoff and full jitter, and says hello (its id, tagged with the cluster
// secret) to the peer's gateway, whose peer actor hands that gateway to the
// passive link of the higher id. Both watch the remote (monitor) and send it
// what the peer actor hands them, tagged with the cluster secret. While
// unconnected a link drops what it is handed (Raft tolerates loss); an active
// one connects at once, a passive one waits for the next hello.
//
// It sends in the gateway's name: a peer sees (and may answer) only the
// published gateway, never this actor, whose messages stay in the process.
#pragma once

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>

#include "actors/atoms.hpp"
#include "actors/auth.hpp"
#include "actors/raft/node_options.hpp"
#include "actors/raft/peer_actor.hpp"

namespace conclave::raft {

struct link_setup {
  node_id self;  // this master
  node_id peer;
  endpoint address;  // the peer's published gateway
  std::string name;  // "node N", for logs
  std::string cluster_id;
  auth::keys keys;
  int reconnect_min_ms = 20;    // the first retry waits at least this long
  int reconnect_max_ms = 1000;  // the backoff's cap
  std::uint64_t seed = 0;       // jitter
  peer_interface owner;         // told (link_atom, peer, remote) when connected, (link_atom, peer, null) when not
  caf::actor gateway;           // what the remote sees as the sender
};

// Whether this master's link to `peer` waits for the peer to connect (it has the higher id).
inline bool passive_link(node_id self, node_id peer) { return peer.value < self.value; }

// What a hello's tag covers: the cluster, the sender and the receiver.
std::string hello_text(const std::string& cluster_id, node_id from, node_id to);

using link_interface = caf::typed_actor<caf::reacts_to<peer_atom, std::string>,  // an encoded message to send
                                        caf::reacts_to<hello_atom, caf::actor>,  // passive: the peer's gateway said hello
                                        caf::reacts_to<heard_atom>,  // the peer spoke: the backoff starts over
                                        caf::reacts_to<stop_atom>,   // the server is stopping: no new connections
                                        caf::reacts_to<reconnect_atom>>;  // its own timer

link_interface::behavior_type link_actor(link_interface::pointer self, link_setup setup);

}  // namespace conclave::raft
