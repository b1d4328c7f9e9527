// A client of the masters' push (actors/registry/subscriptions.hpp): watches,
// lock grants, events and member changes arrive as the master they are
// subscribed at applies them, with no polling.
//
// All subscriptions of one push_client share one connection to one master.
// When that master dies or falls silent (it sends progress every second
// while it knows a leader; nothing for 3 s counts as silent), the client
// moves to the next master and subscribes everything again, each from
// where it is: `resume()` builds the subscription anew (a watch from the
// last revision it delivered), so nothing is missed or repeated.
//
// Handlers run in order on the push_client's own thread; a handler that
// blocks delays later pushes of this client only.
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/auth.hpp"
#include "actors/raft/node_options.hpp"
#include "roles/raft_client.hpp"
#include "schema/push_types.hpp"

namespace conclave {

class push_client {
 public:
  // `first`: the index of the endpoint to try first (spreading clients over
  // the masters). `local`: this process's own master, reached in-process
  // (raft_client.hpp), if it has one; then tried first.
  push_client(caf::actor_system& sys, std::string cluster_id, std::vector<raft::endpoint> endpoints, auth::keys keys,
              std::size_t first = 0, local_master local = {});
  // Ends every subscription; no handler runs after it returns (so it must
  // not be called from a handler).
  ~push_client();

  using handler = std::function<void(const registry::push&)>;
  // Subscribes; returns the subscription's id. The handler is also given
  // progress pushes (kind progress, state.rev) for watches.
  std::uint64_t subscribe(std::function<registry::subscription()> resume, handler on_push);
  void unsubscribe(std::uint64_t id);

  struct shared;

 private:
  std::shared_ptr<shared> shared_;
  caf::actor actor_;
  std::thread delivery_;  // runs the handlers
};

}  // namespace conclave
