// The test-only fault channel of a master (actors/raft/gateway.hpp), open
// only when the master runs with fault-injection = true: drop its traffic to
// and from a peer, or stall its disk. With credentials, each use proves them
// first (the cluster secret is needed).
#pragma once

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <chrono>
#include <set>
#include <string>

#include "actors/atoms.hpp"
#include "actors/connector.hpp"
#include "actors/auth.hpp"
#include "actors/raft/node_options.hpp"
#include "schema/error.hpp"

namespace conclave::test {

class fault_channel {
 public:
  fault_channel(caf::actor_system& sys, std::string cluster_id) : sys_(sys), cluster_id_(std::move(cluster_id)) {}
  void set_keys(const auth::keys& keys) { keys_ = keys; }

  // `at` drops what it sends to `peer` (outgoing) and what it receives from it (incoming).
  expected<void> drop(const raft::endpoint& at, std::uint64_t peer, bool outgoing, bool incoming,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    return ask(at, timeout, drop_atom::value, peer, outgoing, incoming);
  }
  // `at` holds its disk's completions for `ms` (0: releases them).
  expected<void> stall_storage(const raft::endpoint& at, std::uint32_t ms,
                               std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    return ask(at, timeout, stall_atom::value, ms);
  }

 private:
  // Errors: unavailable (no connection or no answer), and the master's refusal
  // (fault injection off, credentials missing) as invalid_argument.
  template <class... Ts>
  expected<void> ask(const raft::endpoint& at, std::chrono::milliseconds timeout, Ts... xs) {
    caf::scoped_actor self{sys_};
    caf::actor gateway;
    self->request(connector(sys_), timeout, caf::connect_atom::value, at.host, at.port)
        .receive([&](const caf::node_id&, caf::strong_actor_ptr& ptr,
                     const std::set<std::string>&) { gateway = caf::actor_cast<caf::actor>(ptr); },
                 [](caf::error&) {});
    if (!gateway) return make_error(errc::unavailable, "cannot connect to " + at.text());
    if (keys_.enabled()) {
      std::string nonce, granted = "none";
      self->request(gateway, timeout, auth_atom::value).receive([&](std::string& n) { nonce = n; }, [](caf::error&) {});
      self->request(gateway, timeout, auth_atom::value, auth::prove(keys_, cluster_id_, nonce))
          .receive([&](std::string& g) { granted = g; }, [](caf::error&) {});
      if (granted == "none") return make_error(errc::unauthenticated, at.text() + " refused these credentials");
    }
    expected<void> result = make_error(errc::unavailable, "no answer from " + at.text());
    self->request(gateway, timeout, fault_atom::value, xs...)
        .receive(
            [&](std::string& refused) {
              result = refused.empty() ? expected<void>() : make_error(errc::invalid_argument, refused);
            },
            [](caf::error&) {});
    return result;
  }

  caf::actor_system& sys_;
  std::string cluster_id_;
  auth::keys keys_;
};

}  // namespace conclave::test
