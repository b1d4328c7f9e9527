// libconclave: a conclave member inside the host's own caf::actor_system.
//
//   caf::actor_system_config cfg;  cfg.load<caf::io::middleman>();
//   cfg.set("middleman.workers", 0);   // required with CAF 0.17.6: README "Embedding conclave"
//   // with peer-cert-file (TLS on the native links, README "TLS"): conclave::use_peer_tls(cfg, files)
//   caf::actor_system sys{cfg};
//   auto n = conclave::node::start(sys, {{"role", "worker"}, {"peers", "1=10.0.0.1:7001"},
//                                        {"cluster-id", "prod"}, {"name", "worker-a"}});
//   n->on_leadership([](std::uint64_t term) { /* this node leads: start leader-only work */ },
//                    [] { /* stop it */ });
//   auto lock = n->lock("jobs/42", std::chrono::seconds(5));   // lock->token fences the holder
//
// A master (or master_and_worker) runs a Raft server (it listens on its
// `peers` address) with the registry; every role registers as a member and
// heartbeats. The blocking calls go to the leader (following it across
// failovers) and may be made from any thread that is not an actor; calls
// from different threads run in parallel (up to the setting
// `parallel-calls`, 16). A master's own process reaches it in-process: the
// calls, the member's heartbeats and its subscriptions that go to this
// master use no socket.
//
// A host that is itself an actor (masters): instead of the blocking calls,
// which would block its thread, it talks to the typed handle gateway():
//
//   auto bytes = wire::encode_request(
//       client::propose{wire::encode_command(registry::put{"/k", "v", 0, std::nullopt})}, cluster_id);
//   self->request(n->gateway(), 10s, client_atom::value, bytes).then([](const std::string& reply) {
//     auto r = wire::decode_response(reply);        // client::committed, or client::failure
//     auto res = wire::decode_result(std::get<client::committed>(*r).result);  // its registry::outcome
//   });
//   // A linearizable read: client::read{wire::encode_query(registry::get_key{"/k"})}; the reply's
//   // client::read_result.result decodes with wire::decode_answer<registry::get_key>.
//
//   self->request(n->gateway(), 10s, pushsub_atom::value, std::uint64_t{1},
//                 wire::encode_subscription(registry::watch_subscription{"/k", after}, cluster_id))
//       .then([](const std::string& refused) { /* empty: subscribed */ });
//   // ... then the host's behavior gets, as this master applies changes:
//   [](push_atom, std::uint64_t id, std::uint8_t kind, const std::string& state) {
//     auto p = wire::decode_push(kind, state);    // a registry::push (schema/push_types.hpp);
//   }                                             // id 0: progress of every watch
//   // (unsub_atom, id) ends a subscription; it also ends when the host actor does.
//
// Requests go to any master (schema/client_protocol.hpp): this one passes
// writes and linearizable reads on to the leader, and answers a failure
// (client::failure: not_leader, unavailable, ...) when it cannot; the host
// retries as raft_client does. Subscriptions are served by this master from
// what it has applied (actors/registry/subscriptions.hpp): pushes come in
// revision order, and stop if this master stops. With credentials
// (secret-file), the host proves them first, as raft_client's relay does:
// (auth_atom) -> nonce, then (auth_atom, auth::prove(keys, cluster_id,
// nonce)) -> granted level ("none": refused). Pushes arrive as
// (push_atom, id, kind, bytes): a typed host actor must accept that message.
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/raft/gateway.hpp"
#include "actors/registry/watch_cursor.hpp"
#include "roles/config.hpp"
#include "schema/error.hpp"
#include "schema/registry_types.hpp"

namespace conclave {

class node {
 public:
  // Errors: invalid_argument (a bad setting, naming it), io_error (the data
  // directory or the port), as for the conclave program.
  static expected<std::unique_ptr<node>> start(caf::actor_system& sys, const settings& values);
  // Leaves: a leader hands over first; the member's session is closed.
  // The callbacks given to this node (watch, on_leadership, on_members, ...)
  // may run until it returns, told of its own leaving: destroy the node
  // before anything they use.
  ~node();

  const std::string& member_id() const;
  bool is_master() const;
  // This master's gateway, for hosts that are actors (above): client
  // requests (schema/client.capnp), push subscriptions (schema/push.capnp)
  // and authentication, in this process (actors/raft/gateway.hpp). Role
  // changes: on_leadership. Masters only: null on a worker.
  raft::gateway_interface gateway() const;

  // Non-zero once the node has to stop: 3 a worker without masters, 4 a
  // master without quorum under on-quorum-loss = exit (README.md).
  int exit_code() const;
  // The Raft server stopped on its own (a storage failure): the process should exit 1.
  bool failed() const;

  // --- leadership (masters) ------------------------------------------------
  bool leading() const;
  std::uint64_t term() const;
  // `start(term)` runs when this node becomes leader and `stop()` when it no
  // longer is (on a thread of the node; keep them short or hand off work).
  // Work started there must carry `term` so that workers can refuse a
  // deposed leader's commands.
  void on_leadership(std::function<void(std::uint64_t term)> start, std::function<void()> stop);

  // --- registry (through the leader; linearizable unless `stale`) -------------
  expected<std::vector<registry::member>> members(std::optional<registry::member_status> only = std::nullopt,
                                                  bool stale = false);
  expected<std::optional<registry::key_value>> get(const std::string& key, bool stale = false);
  expected<std::vector<std::pair<std::string, registry::key_value>>> list(const std::string& prefix,
                                                                         bool stale = false);
  // Write outcomes carry the revision (or the refusal: version_mismatch, ...).
  expected<registry::outcome> put(const std::string& key, const std::string& value,
                                  std::optional<std::uint64_t> if_version = std::nullopt, bool ephemeral = false);
  expected<registry::outcome> remove(const std::string& key, std::optional<std::uint64_t> if_version = std::nullopt);
  // Changes under `prefix` after revision `after`; nothing if compacted.
  expected<std::optional<std::vector<registry::change>>> changes(registry::revision after, const std::string& prefix);
  // Calls `on_change` with every change under `prefix` after revision `after`
  // (by default: from the revision of the master that takes the watch,
  // shortly after this call; a change made meanwhile may be missed, so pass
  // the revision of a write or a listing to start exactly after it), in
  // order, each once, on a node thread, until the node stops. A master
  // pushes each change as it applies it; when that master dies or falls
  // silent the watch moves to another and resumes where it was. If the watch falls
  // further behind than the registry's history (setting `watch-history`), the
  // changes in between are gone: `on_compacted` then gets the keys under
  // `prefix` and the revision they are at, to rebuild from, and `on_change`
  // continues after that revision. Both callbacks are required.
  void watch(const std::string& prefix, std::function<void(const registry::change&)> on_change,
             std::function<void(const registry::watch_listing&)> on_compacted,
             std::optional<registry::revision> after = std::nullopt);

  // A lock held by this member's session: released by unlock() or when the
  // member dies. `token` is the fencing token to hand to the guarded resource.
  struct lock_grant {
    std::string name;
    registry::revision token = 0;
  };
  // Waits up to `timeout` for the lock (first come, first served). A call
  // that fails leaves the member neither holding nor waiting for the lock:
  // once an acquire's outcome is unknown, it is sent again (acquiring is
  // idempotent) until one is committed, and a wait that times out is
  // cancelled until the registry shows neither; if the lock was granted
  // meanwhile, the call returns the grant. So a call runs past `timeout` for
  // as long as the cluster has no leader after an unknown outcome (without
  // bound: until a leader answers, the member's session ends, or the node
  // stops). (Not covered: a request that reached a frozen server and is
  // passed on to the leader when that server runs again, after the call has
  // ended; the registry has no request ids to refuse it.) Errors:
  // unavailable (timed out, refused, the session ended, no cluster, or the
  // node stopping), outcome_unknown (the node stopped while an acquire's
  // outcome was unknown: its session closes with it, so nothing stays held),
  // unauthenticated (the cluster refused the credentials).
  expected<lock_grant> lock(const std::string& name, std::chrono::milliseconds timeout);
  expected<void> unlock(const std::string& name);

  // Events: published to every live (alive or suspect) member or to one;
  // delivered at least once, in order, to the members live when published,
  // until each acknowledges (or dies or leaves). Errors: resource_exhausted ("full: N
  // undelivered events; members must acknowledge") at the registry's cap
  // (registry::limits::events, 100,000): nothing is dropped to make room.
  expected<std::uint64_t> publish(const std::string& payload, const std::string& to = {});
  // Events for this member not yet acknowledged; acknowledge with ack_events
  // once they are handled (every event up to `upto`).
  expected<std::vector<registry::event>> events();
  expected<void> ack_events(std::uint64_t upto);

  // --- fenced commands (leader to members) -----------------------------------
  // A command to member `to` (or every member) carrying the sender's term and
  // fencing token (a lock's token, or 0). Delivered as an event.
  expected<std::uint64_t> send_command(const std::string& to, const std::string& payload, std::uint64_t term,
                                       std::uint64_t token = 0);
  struct command {
    std::uint64_t seq = 0;      // its event's seq
    std::uint64_t term = 0;
    std::uint64_t token = 0;
    std::string payload;
  };
  // Runs `run` on each pending command for this member, in order, and
  // acknowledges each only after `run` returned true for it: at least once.
  // `run` returning false stops there; that command and the later ones come
  // again on the next call. A command `run` finished is not run again by this
  // node; if its acknowledgement fails, the call still returns the count (it
  // is acknowledged next time). One call hands commands over at a time: a
  // call made meanwhile (from another thread, or from within `run`) returns
  // 0 at once. Errors (nothing ran): those of events().
  // A command older than one already accepted (a lower term, or the same
  // term with a lower token) comes from a deposed leader and is dropped, so
  // two leaders can never both get a member to act. Other events are
  // acknowledged as they are passed. Returns how many commands ran.
  expected<std::size_t> commands(const std::function<bool(const command&)>& run);

  // Pushed commands: whenever the master delivers new events for this member,
  // `run` is called as commands(run) would call it (on a node thread, in
  // order, acknowledged once run; a command `run` refuses comes again with
  // the next delivery). Set it once.
  void on_commands(std::function<bool(const command&)> run);

  // --- change notifications ----------------------------------------------------
  // Who leads (masters: as this server sees it), on every change.
  void on_leader_change(std::function<void(std::uint64_t leader_id, std::uint64_t term)> callback);
  // The member list whenever a member joins, leaves or changes status, pushed
  // by a master as it applies the change (on a node thread).
  void on_members(std::function<void(const std::vector<registry::member>&)> callback);

  // The registration session of this member (0 until registered).
  registry::session_id session() const;

  struct impl;

 private:
  explicit node(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave
