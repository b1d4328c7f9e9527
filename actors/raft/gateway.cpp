#include "actors/raft/gateway.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <iterator>
#include <set>
#include <variant>
#include <vector>

#include "actors/auth.hpp"
#include "actors/log.hpp"
#include "actors/raft/link_actor.hpp"
#include "actors/raft/trace_message.hpp"
#include "actors/stage_trace.hpp"
#include "schema/client_codec.hpp"
#include "schema/codec.hpp"

namespace conclave::raft {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the gateway holds for one client connection: the remote actor that
// sends the requests (raft_client's relay). Made when the connection first
// needs remembering, watched from then on, dropped when it goes.
struct connection {
  auth::level level = auth::level::none;  // what it proved (auth.hpp)
  std::optional<std::string> challenge;   // the nonce it was sent, until it answers
  std::set<std::uint64_t> sessions;       // sessions whose heartbeats it carries (see session_connection)
};

// A request a follower may pass on to the leader: its bytes, and whether
// losing it there leaves the outcome unknown (a write) or not (a read).
struct passable {
  std::string bytes;
  bool changes_state;
};

// The native protocol's methods, by their index in client::request, for metrics.
const char* const method_names[] = {"propose",   "read",       "status", "transfer_leadership",
                                    "keepalive", "stale_read", "change_membership"};
static_assert(std::size(method_names) == std::variant_size_v<client::request>);

// A client request being answered, timed from its arrival to its answer.
struct timed_request {
  metrics::request_stats* stats = nullptr;  // null: not counted (passed on by another master)
  std::chrono::steady_clock::time_point start;
  // `code`: the failure's code, "" for success.
  void done(const std::string& code) const {
    if (!stats) return;
    stats->done(code.empty() ? 0 : stats->index_of(code),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  void done(const client::response& r) const {
    auto* f = std::get_if<client::failure>(&r);
    done(f ? f->code : std::string());
  }
};

struct gateway_state {
  caf::event_based_actor* self;
  node_options opts;
  peer_interface peer;
  std::shared_ptr<metrics::sink> stats;
  std::vector<metrics::request_stats*> methods;  // by index in client::request
  std::map<node_id, metrics::peer_stats*> peer_stats;
  std::string name;  // "node N", for logs
  log_limiter limiter;

  std::map<caf::actor_addr, connection> connections;
  // The connection that carries each session's heartbeats: when it breaks
  // (its process died) the leader expires the session after a short grace.
  // A session lives on the connection it was last heard on, only.
  std::map<std::uint64_t, caf::actor_addr> session_connection;
  std::int64_t last_prune_ms = 0;

  // Where requests for the leader go (route_atom from the peer actor).
  node_id leader;
  caf::actor leader_gateway;  // null when this server leads or is not connected to the leader

  // Requests passed on to the leader, so that they fail at once when the
  // connection to it breaks (CAF 0.17 never answers a request that was on
  // the wire then; the client would wait for its timeout).
  struct passed_on_wait {
    node_id leader;
    bool changes_state;
    caf::response_promise promise;
    timed_request timing;
  };
  std::map<std::uint64_t, passed_on_wait> passed_on;
  std::uint64_t next_pass_id = 1;
  // When the request being handled arrived (stage_trace.hpp; 0 when off).
  std::int64_t received_ns = 0;

  client::failure fail(errc code, const std::string& detail) { return refusal(code, detail, leader, opts); }
  std::string answer(const client::response& r) { return wire::encode_response(r); }

  std::string sender_node() const {
    auto sender = self->current_sender();
    return sender ? caf::to_string(sender->node()) : std::string("unknown");
  }

  // --- connections and authentication (auth.hpp) ---------------------------------------

  connection& connection_of(const caf::strong_actor_ptr& sender) {
    auto [it, fresh] = connections.try_emplace(caf::actor_cast<caf::actor_addr>(sender));
    if (fresh) self->monitor(caf::actor_cast<caf::actor>(sender));
    return it->second;
  }

  auth::level level_of_sender() const {
    auto sender = self->current_sender();
    if (!sender) return auth::level::none;
    auto it = connections.find(caf::actor_cast<caf::actor_addr>(sender));
    return it == connections.end() ? auth::level::none : it->second.level;
  }

  std::string on_auth_hello() {
    auto sender = self->current_sender();
    if (!sender) return {};
    return *(connection_of(sender).challenge = auth::random_nonce());
  }

  std::string on_auth_proof(const std::string& proof) {
    auto sender = self->current_sender();
    if (!sender) return "none";
    auto it = connections.find(caf::actor_cast<caf::actor_addr>(sender));
    if (it == connections.end() || !it->second.challenge || !opts.keys.enabled()) return "none";
    auto granted = auth::verify(opts.keys, opts.cluster_id, *it->second.challenge, proof);
    it->second.challenge.reset();  // one answer per challenge
    if (granted == auth::level::none) {
      limiter(sender_node() + "/bad-proof", [&](std::uint64_t suppressed) {
        log_warning("{}: refusing a client from {}: wrong credentials; {} more like it in the last minute", name,
                    sender_node(), suppressed);
      });
      return "none";
    }
    it->second.level = granted;
    return auth::to_string(granted);
  }

  void on_down(const caf::down_msg& dm) {
    auto it = connections.find(dm.source);
    if (it == connections.end()) return;
    if (!it->second.sessions.empty()) {
      log_line("{}: a client connection carrying {} session(s) broke", name, it->second.sessions.size());
      std::vector<std::uint64_t> lost(it->second.sessions.begin(), it->second.sessions.end());
      for (auto s : lost) session_connection.erase(s);
      self->send(peer, session_lost_atom::value, std::move(lost));
    }
    connections.erase(it);
  }

  // --- client requests --------------------------------------------------------------------

  // What a request needs: changing who votes or leads takes the cluster
  // secret; the registry needs at least the member key.
  static auth::level required(const client::request& r) {
    bool admin = std::holds_alternative<client::transfer_leadership>(r) ||
                 std::holds_alternative<client::change_membership>(r);
    return admin ? auth::level::master : auth::level::member;
  }

  // Counters for each native method, with every outcome: "ok" and the error codes.
  void register_methods() {
    std::vector<std::string> outcomes{"ok"};
    for (int c = 0; c <= static_cast<int>(errc::resource_exhausted); ++c) {
      outcomes.push_back(client::code_name(static_cast<errc>(c)));
    }
    for (const char* m : method_names) methods.push_back(&stats->requests("native", m, outcomes));
  }

  caf::result<std::string> on_client(const std::string& bytes, bool forwarded) {
    received_ns = stage_trace::enabled() ? stage_trace::now_ns() : 0;
    auto decoded = wire::decode_request(bytes, opts.cluster_id);
    if (!decoded) return answer(fail(decoded.error().code, decoded.error().detail));
    // Requests from clients are counted where they arrive (not again at the leader).
    timed_request t;
    if (!forwarded) t = timed_request{methods.at(decoded->index()), std::chrono::steady_clock::now()};
    // A passed-on request was checked by the master that passed it on.
    if (opts.keys.enabled() && !forwarded) {
      auto need = required(*decoded);
      if (static_cast<int>(level_of_sender()) < static_cast<int>(need)) {
        t.done(client::code_name(errc::unauthenticated));
        return answer(fail(errc::unauthenticated, need == auth::level::master
                                                      ? "this request needs the cluster secret (--secret-file)"
                                                      : "this cluster requires credentials: the cluster secret or a "
                                                        "member key (--secret-file)"));
      }
    }
    // A follower passes writes, linearizable reads and detached heartbeats
    // on to the leader it knows (once: a passed-on request is never passed
    // on again), so a client may talk to any master. The peer actor
    // decides, knowing the role: its not_leader refusal names the leader
    // (see ask).
    auto pass = [&](bool changes_state) {
      return forwarded ? std::nullopt : std::optional<passable>(passable{bytes, changes_state});
    };
    return std::visit(
        [&](auto& r) -> caf::result<std::string> {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, client::propose>) {
            return ask(t, pass(true), propose_atom::value, std::move(r.command));
          } else if constexpr (std::is_same_v<T, client::read>) {
            return ask(t, pass(false), read_atom::value, std::move(r.query));
          } else if constexpr (std::is_same_v<T, client::change_membership>) {
            return ask(t, pass(true), membership_atom::value, r.kind, r.id, std::move(r.address));
          } else if constexpr (std::is_same_v<T, client::stale_read>) {
            return ask(t, std::nullopt, stale_read_atom::value, std::move(r.query));
          } else if constexpr (std::is_same_v<T, client::status_request>) {
            return ask(t, std::nullopt, status_atom::value);
          } else if constexpr (std::is_same_v<T, client::transfer_leadership>) {
            return ask(t, std::nullopt, transfer_atom::value, r.target);
          } else {
            // A detached heartbeat (an etcd lease's) ties nothing to the
            // connection, so a follower may pass it on like a write.
            return keepalive(t, r, r.detached ? pass(false) : std::nullopt);
          }
        },
        *decoded);
  }

  // Asks the peer actor and answers with what it says; a not_leader refusal
  // naming the leader this gateway is connected to is passed on there instead.
  template <class... Ts>
  caf::result<std::string> ask(timed_request t, std::optional<passable> pass, Ts&&... xs) {
    auto promise = self->make_response_promise();
    self->request(peer, caf::infinite, std::forward<Ts>(xs)...)
        .then(
            [this, promise, pass, t, received = received_ns](client::response& r) mutable {
              if (pass && for_the_leader(r)) return pass_on(t, promise, pass->bytes, pass->changes_state);
              t.done(r);
              auto* c = std::get_if<client::committed>(&r);
              if (received && c) stage_trace::mark(stage_trace::stage::gateway_received, c->index, c->index, received);
              promise.deliver(answer(r));
              if (received && c) stage_trace::mark(stage_trace::stage::gateway_replied, c->index);
            },
            [this, promise, t](caf::error&) mutable { deliver(t, promise, fail(errc::unavailable, "this master is stopping")); });
    return promise;
  }

  void deliver(const timed_request& t, caf::response_promise& promise, const client::response& r) {
    t.done(r);
    promise.deliver(answer(r));
  }

  bool for_the_leader(const client::response& r) const {
    auto f = std::get_if<client::failure>(&r);
    return f && f->code == client::code_name(errc::not_leader) && leader_gateway && f->leader_id == leader.value;
  }

  void pass_on(timed_request t, caf::response_promise promise, const std::string& bytes, bool changes_state) {
    auto id = next_pass_id++;
    passed_on[id] = passed_on_wait{leader, changes_state, std::move(promise), t};
    self->request(leader_gateway, caf::infinite, forward_atom::value, bytes, auth::tag(opts.keys, "forward|" + bytes))
        .then(
            [this, id](const std::string& reply) {
              if (auto it = passed_on.find(id); it != passed_on.end()) {
                if (it->second.timing.stats) it->second.timing.done(wire::response_code(reply));
                it->second.promise.deliver(reply);
                passed_on.erase(it);
              }
            },
            [this, id](caf::error&) { fail_passed_on(id); });
  }

  // Where requests for the leader go now. Requests passed on to a leader
  // that is no longer the one we know (a frozen or cut-off leader keeps its
  // connection open), or whose connection broke, get no answer from it.
  void on_route(node_id to, caf::actor via) {
    leader = to;
    leader_gateway = std::move(via);
    std::vector<std::uint64_t> lost;
    for (const auto& [id, w] : passed_on) {
      if (!leader_gateway || w.leader != leader) lost.push_back(id);
    }
    for (auto id : lost) fail_passed_on(id);
  }

  // A request passed on to the leader got no answer (its connection broke):
  // a write may or may not have taken effect; a read changed nothing.
  void fail_passed_on(std::uint64_t id) {
    auto it = passed_on.find(id);
    if (it == passed_on.end()) return;
    auto why = "the connection to the leader (node " + std::to_string(it->second.leader.value) +
               ") broke, or it stopped leading, while it had the request";
    deliver(it->second.timing, it->second.promise,
            it->second.changes_state ? fail(errc::outcome_unknown, why) : fail(errc::unavailable, why));
    passed_on.erase(it);
  }

  // A heartbeat the leader accepted ties its session to this connection
  // (unless detached; a detached one may be passed on to the leader, as ask's).
  caf::result<std::string> keepalive(const timed_request& t, client::keepalive& k, std::optional<passable> pass) {
    prune_sessions();
    auto sender = self->current_sender();  // (before the promise, which takes it over)
    auto promise = self->make_response_promise();
    self->request(peer, caf::infinite, keepalive_atom::value, k.session, std::move(k.payload))
        .then(
            [this, promise, sender, t, pass, session = k.session, tie = !k.detached](client::response& r) mutable {
              if (pass && for_the_leader(r)) return pass_on(t, promise, pass->bytes, pass->changes_state);
              if (tie && sender && std::holds_alternative<client::ok>(r)) carry(sender, session);
              deliver(t, promise, r);
            },
            [this, promise, t](caf::error&) mutable { deliver(t, promise, fail(errc::unavailable, "this master is stopping")); });
    return promise;
  }

  // A connection the session left (its client moved to another master or
  // relay) no longer speaks for it: its break must not expire the session.
  void carry(const caf::strong_actor_ptr& sender, std::uint64_t session) {
    auto addr = caf::actor_cast<caf::actor_addr>(sender);
    auto& on = session_connection[session];
    if (on && on != addr) {
      if (auto old = connections.find(on); old != connections.end()) old->second.sessions.erase(session);
    }
    on = addr;
    connection_of(sender).sessions.insert(session);
  }

  // Sessions that ended while their connection stays open (a long-lived
  // client that opens and closes sessions) are forgotten, at most once a
  // second, checked as heartbeats arrive.
  void prune_sessions() {
    auto now = now_ms();
    if (session_connection.empty() || now - last_prune_ms < 1000) return;
    last_prune_ms = now;
    std::vector<std::uint64_t> carried;
    for (const auto& [session, conn] : session_connection) carried.push_back(session);
    self->request(peer, caf::infinite, sessions_atom::value, std::move(carried))
        .then([this](const std::vector<std::uint64_t>& ended) {
          for (auto session : ended) {
            auto it = session_connection.find(session);
            if (it == session_connection.end()) continue;
            if (auto c = connections.find(it->second); c != connections.end()) c->second.sessions.erase(session);
            session_connection.erase(it);
          }
        });
  }

  // --- peers ----------------------------------------------------------------------------------

  void on_peer_bytes(const std::string& bytes, const std::string& tag) {
    auto arrived_ns = stage_trace::enabled() ? stage_trace::now_ns() : 0;
    if (opts.keys.enabled() && !auth::check_tag(opts.keys, bytes, tag)) {
      auto from = sender_node();
      limiter(from + "/unauthenticated", [&](std::uint64_t suppressed) {
        log_warning("{}: refusing a peer message without the cluster secret's tag from {}; {} more like it in the last "
                    "minute",
                    name, from, suppressed);
      });
      return;
    }
    auto decoded = wire::decode(bytes, opts.cluster_id);
    if (!decoded) {
      auto from = sender_node();
      limiter(from + "/" + client::code_name(decoded.error().code), [&](std::uint64_t suppressed) {
        log_warning("{}: on_peer_message: ignoring ({}) from {}; {} more like it in the last minute", name,
                    decoded.error().message(), from, suppressed);
      });
      return;
    }
    if (decoded->to != opts.raft.id) return;
    if (arrived_ns) {
      raft::trace_message(*decoded, stage_trace::stage::entries_arrived, stage_trace::stage::ack_arrived, arrived_ns);
    }
    // Counted for the servers of the configuration only (the peer actor lists them).
    auto& from = peer_stats[decoded->from];
    if (!from) from = stats->find_peer(decoded->from.value);
    if (from) from->received_bytes += bytes.size();
    else peer_stats.erase(decoded->from);
    self->send(peer, peer_atom::value, std::move(*decoded));
  }

  // A lower id's link connected to us: our passive link to it answers over
  // this connection, to the sender (its gateway).
  void on_hello(const std::string& cluster_id, std::uint64_t from, std::uint64_t to, const std::string& tag) {
    auto sender = caf::actor_cast<caf::actor>(self->current_sender());
    if (cluster_id != opts.cluster_id || to != opts.raft.id.value || !sender) return;
    if (opts.keys.enabled() && !auth::check_tag(opts.keys, hello_text(opts.cluster_id, node_id{from}, node_id{to}), tag)) {
      limiter(sender_node() + "/unauthenticated-hello", [&](std::uint64_t suppressed) {
        log_warning("{}: refusing a hello without the cluster secret's tag from {}; {} more like it in the last minute",
                    name, sender_node(), suppressed);
      });
      return;
    }
    self->send(peer, hello_atom::value, from, sender);
  }

  // --- the test-only fault channel ----------------------------------------------------------

  template <class... Ts>
  caf::result<std::string> inject(Ts&&... xs) {
    std::string why;
    if (!opts.fault_injection) {
      why = "fault injection is off: it is for tests (start the server with fault-injection = true)";
    } else if (opts.keys.enabled() && level_of_sender() != auth::level::master) {
      why = "fault injection needs the cluster secret";
    }
    if (!why.empty()) {
      limiter(sender_node() + "/fault", [&](std::uint64_t suppressed) {
        log_warning("{}: refusing fault injection from {}: {}; {} more like it in the last minute", name, sender_node(),
                    why, suppressed);
      });
      return why;
    }
    auto promise = self->make_response_promise();
    self->request(peer, caf::infinite, fault_atom::value, std::forward<Ts>(xs)...)
        .then([promise]() mutable { promise.deliver(std::string()); },
              [promise](caf::error&) mutable { promise.deliver(std::string("this master is stopping")); });
    return promise;
  }
};

}  // namespace

caf::behavior gateway_actor(caf::event_based_actor* self, gateway_setup setup) {
  auto st = std::make_shared<gateway_state>();
  st->self = self;
  st->opts = std::move(setup.options);
  st->peer = std::move(setup.peer);
  st->stats = std::move(setup.stats);
  st->register_methods();
  st->name = "node " + std::to_string(st->opts.raft.id.value);
  // Each dies with the other; the peer actor's links speak in our name.
  self->link_to(st->peer);
  self->send(st->peer, gateway_atom::value, caf::actor_cast<caf::actor>(self));
  self->set_down_handler([st](caf::down_msg& dm) { st->on_down(dm); });
  return {
      [st](peer_atom, const std::string& bytes, const std::string& tag) { st->on_peer_bytes(bytes, tag); },
      [st](hello_atom, const std::string& cluster_id, std::uint64_t from, std::uint64_t to, const std::string& tag) {
        st->on_hello(cluster_id, from, to, tag);
      },
      [st](client_atom, const std::string& bytes) { return st->on_client(bytes, false); },
      [st](forward_atom, const std::string& bytes, const std::string& tag) -> caf::result<std::string> {
        if (st->opts.keys.enabled() && !auth::check_tag(st->opts.keys, "forward|" + bytes, tag)) {
          return st->answer(st->fail(errc::unauthenticated, "a passed-on request without the secret's tag"));
        }
        return st->on_client(bytes, true);
      },
      [st](pushsub_atom, std::uint64_t id, const std::string& request) -> caf::result<std::string> {
        // Subscriptions read the registry: the member key at least, as its requests.
        if (st->opts.keys.enabled() && st->level_of_sender() == auth::level::none) {
          return std::string("unauthenticated: this cluster requires credentials: the cluster secret or a member key");
        }
        auto client = caf::actor_cast<caf::actor>(st->self->current_sender());
        if (!client) return std::string("invalid_argument: no subscriber");
        auto promise = st->self->make_response_promise<std::string>();
        st->self->request(st->peer, caf::infinite, pushsub_atom::value, client, id, request)
            .then([promise](const std::string& error) mutable { promise.deliver(error); },
                  [promise](caf::error&) mutable { promise.deliver(std::string("unavailable: shutting down")); });
        return promise;
      },
      [st](unsub_atom, std::uint64_t id) {
        auto client = caf::actor_cast<caf::actor>(st->self->current_sender());
        if (client) st->self->send(st->peer, unsub_atom::value, client, id);
      },
      [st](auth_atom) { return st->on_auth_hello(); },
      [st](auth_atom, const std::string& proof) { return st->on_auth_proof(proof); },
      [st](fault_atom, drop_atom d, std::uint64_t peer, bool outgoing, bool incoming) {
        return st->inject(d, peer, outgoing, incoming);
      },
      [st](fault_atom, stall_atom s, std::uint32_t ms) { return st->inject(s, ms); },
      [st](route_atom, std::uint64_t leader, const caf::actor& via) {
        // Only from our own peer actor (this actor's port is public).
        if (st->self->current_sender() != caf::actor_cast<caf::strong_actor_ptr>(st->peer)) return;
        st->on_route(node_id{leader}, via);
      },
  };
}

}  // namespace conclave::raft
