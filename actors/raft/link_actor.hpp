// A link: this master's connection to one other master. It connects through
// CAF's middleman, retries with capped exponential backoff and full jitter,
// watches the remote (monitor) and sends it what the peer actor hands it,
// tagged with the cluster secret. While unconnected it drops what it is
// handed (Raft tolerates loss) and connects at once.
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
  node_id peer;
  endpoint address;  // the peer's published gateway
  std::string name;  // "node N", for logs
  auth::keys keys;
  int reconnect_min_ms = 20;    // the first retry waits at least this long
  int reconnect_max_ms = 1000;  // the backoff's cap
  std::uint64_t seed = 0;       // jitter
  peer_interface owner;         // told (link_atom, peer, remote) when connected, (link_atom, peer, null) when not
  caf::actor gateway;           // what the remote sees as the sender
};

using link_interface = caf::typed_actor<caf::reacts_to<peer_atom, std::string>,  // an encoded message to send
                                        caf::reacts_to<heard_atom>,  // the peer spoke: the backoff starts over
                                        caf::reacts_to<stop_atom>,   // the server is stopping: no new connections
                                        caf::reacts_to<reconnect_atom>>;  // its own timer

link_interface::behavior_type link_actor(link_interface::pointer self, link_setup setup);

}  // namespace conclave::raft
