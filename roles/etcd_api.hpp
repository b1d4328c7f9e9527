// etcd's v3 gRPC API on a master (setting `client-listen HOST:PORT`): etcd
// clients talk to conclave unchanged (schema/etcd/*.proto). KV and
// transactions are the registry's keys, a lease is a registry session, a
// watch is a push subscription at this master; README.md (etcd v3 API)
// lists each method and how it differs from etcd's.
//
// The server answers from the cluster through its `backend`: writes and
// linearizable reads go to the leader (a follower passes them on), a
// `serializable` read is a stale read at this master. No gRPC header is
// included here: only etcd_api.cpp and its tests see the generated code.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/auth.hpp"
#include "actors/metrics.hpp"
#include "actors/raft/node_options.hpp"
#include "roles/tls.hpp"
#include "schema/client_protocol.hpp"
#include "schema/error.hpp"
#include "schema/push_types.hpp"
#include "schema/registry_types.hpp"

namespace grpc {
class Channel;
}

namespace conclave::etcd {

// What the API needs of the cluster. Each call may block up to `deadline`.
struct backend {
  // The cluster id (its text): etcd's member ids derive from it (member_number).
  std::string cluster;
  // The cluster's credentials (actors/auth.hpp): with a secret, clients
  // authenticate (Auth.Authenticate, the member key or the secret as the
  // password); without, auth is off.
  auth::keys keys;
  // A registry command committed through the leader. Its `done` runs once,
  // with the outcome, on a thread of the backend's or before propose
  // returns; it does not block. propose itself never waits.
  std::function<void(const registry::command&, std::chrono::milliseconds deadline,
                     std::function<void(expected<client::committed>)> done)>
      propose;
  // A registry query: linearizable through the leader, or (`serializable`)
  // from what this master has applied; `done` as propose's.
  std::function<void(const registry::query&, bool serializable, std::chrono::milliseconds deadline,
                     std::function<void(expected<client::read_result>)> done)>
      read;
  // This master's current Raft term.
  std::function<std::uint64_t()> term;
  // This master's Raft state (client::status), asked in-process.
  std::function<expected<client::status>()> status;
  // Hands leadership to master `server_id` (through the leader).
  std::function<expected<void>(std::uint64_t server_id, std::chrono::milliseconds deadline)> transfer;
  // The bytes this master's data directory holds.
  std::function<std::uint64_t()> disk_bytes;
  // A heartbeat for session `id` at the leader, detached from any connection
  // (only the TTL expires a lease): false when the session no longer exists.
  // `done` as propose's.
  std::function<void(std::uint64_t id, std::chrono::milliseconds deadline, std::function<void(expected<bool>)> done)>
      keepalive;
  // Push subscriptions at this master (roles/push_client.hpp): `resume`
  // names the subscription each time it is made (again after a failover),
  // called under the backend's own lock (it must not take the caller's);
  // handlers run in order on one thread, never inside subscribe. After
  // unsubscribe returns, a handler already running may still finish, and
  // pushes already queued may still come.
  std::function<std::uint64_t(std::function<registry::subscription()> resume,
                              std::function<void(const registry::push&)> on_push)>
      subscribe;
  std::function<void(std::uint64_t id)> unsubscribe;
  // A membership change through the leader (client::change_membership):
  // kind 0 adds a learner at `address`, 1 promotes it, 2 removes a master.
  std::function<expected<void>(std::uint8_t kind, std::uint64_t server_id, const std::string& address,
                               std::chrono::milliseconds deadline)>
      change_membership;
  // Where calls are counted by method and status (null: not counted).
  std::shared_ptr<metrics::sink> stats;
};

// The label a master registers with naming its etcd client URL (for
// MemberList on every master), and the one naming its Raft server id.
inline constexpr const char* client_url_label = "etcd-client-url";
inline constexpr const char* server_id_label = "raft-id";



// etcd's numeric ids, stable for a cluster id and server id (never 0): the
// same on every master and across restarts.
std::uint64_t cluster_number(const std::string& cluster_id);
std::uint64_t member_number(const std::string& cluster_id, std::uint64_t server_id);

class server {
 public:
  // Listens on `at` (port 0: any free port) at once; with `tls` (checked:
  // check_tls_files) only over TLS, asking clients for a certificate
  // chaining to `tls.ca` (required with client_cert_auth). Errors: io_error
  // when the address cannot be bound or a file cannot be read.
  static expected<std::unique_ptr<server>> start(const raft::endpoint& at, std::uint64_t cluster_id,
                                                 std::uint64_t member_id, backend b, const tls_files& tls = {});
  // Stops listening; requests in flight get up to a second to finish.
  ~server();
  std::uint16_t port() const;
  // A channel to this server inside the process (the JSON gateway calls it).
  std::shared_ptr<grpc::Channel> in_process_channel() const;

  struct impl;

 private:
  explicit server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::etcd
