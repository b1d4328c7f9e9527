// Requests to this process's own master that block no thread: the etcd
// API's handlers run on gRPC's callback threads, which must not wait. Each
// call's `done` runs exactly once, on a CAF thread, with the master's answer
// or an error, by raft_client's rules (roles/raft_client.hpp): a refusal
// that says to try again is retried until the deadline; a request that was
// sent but not answered is outcome_unknown if it changes state (never sent
// twice), and asked again if it does not.
//
// All requests go through one relay to the master's gateway (one
// connection, authenticated once), which answers them or passes them on to
// the leader it follows.
#pragma once

#include <caf/fwd.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "actors/auth.hpp"
#include "roles/raft_client.hpp"
#include "schema/client_protocol.hpp"
#include "schema/error.hpp"

namespace conclave {

class local_caller {
 public:
  using done_fn = std::function<void(expected<client::response>)>;

  local_caller(caf::actor_system& sys, std::string cluster_id, local_master local, auth::keys keys);
  // Calls in flight still finish (their `done` runs), by their deadline at the latest.
  ~local_caller();
  local_caller(const local_caller&) = delete;
  local_caller& operator=(const local_caller&) = delete;

  // `r` through this master to the leader, retrying refusals that say to
  // try again until `deadline`.
  void to_leader(const client::request& r, std::chrono::milliseconds deadline, done_fn done);
  // `r` to this master, once (a stale read, its status).
  void call(const client::request& r, std::chrono::milliseconds timeout, done_fn done);

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace conclave
