// The relay: one client connection to one server (a master's gateway,
// remote or in this process), as raft_client and local_caller use it.
// It answers (client_atom, request bytes, timeout in ms) with the server's
// reply bytes, or an error: the request's timeout, or, as soon as the
// connection breaks, socket_disconnected for every request on it.
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <functional>
#include <string>

#include "actors/auth.hpp"

namespace conclave {

// A relay to `server`: it proves `keys` first (if any; a refusal of them
// answers every request with `unauthenticated`); `on_lost` runs (on a CAF
// thread) when the connection breaks. If the server does not answer the
// handshake within `first_answer`, waiting requests get `unavailable` and
// the relay ends.
caf::actor spawn_relay(caf::actor_system& sys, caf::actor server, std::function<void()> on_lost, auth::keys keys,
                       std::string cluster_id, std::chrono::milliseconds first_answer);

}  // namespace conclave
