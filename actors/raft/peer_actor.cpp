#include "actors/raft/peer_actor.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <map>
#include <random>
#include <set>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
#include "actors/raft/push_hub.hpp"
#include "schema/client_codec.hpp"
#include "schema/client_protocol.hpp"
#include "schema/codec.hpp"

namespace conclave::raft {
namespace {

using std::chrono::milliseconds;

struct link {
  endpoint address;
  caf::actor handle;           // the peer's published actor, once connected
  bool connecting = false;
  int backoff_ms = 0;
};

struct proposal_wait {
  term_t term;
  caf::response_promise promise;
};

struct read_wait {
  std::string query;
  caf::response_promise promise;
  std::optional<index_t> index;  // set once the core says the read is safe
  // A heartbeat for a session this leader did not know: answered once the
  // read is safe, from the registry as of then (see handle(keepalive)).
  std::optional<client::keepalive> keepalive;
  caf::strong_actor_ptr sender;
};

// Rate-limits a log line per key to once a minute, counting what it skipped.
struct log_limiter {
  struct entry {
    std::int64_t last_ms = -60000;
    std::uint64_t suppressed = 0;
  };
  std::map<std::string, entry> entries;
  template <class F>
  void operator()(const std::string& key, F&& emit) {
    auto& e = entries[key];
    auto now = steady_now_ms();
    if (now - e.last_ms < 60000) {
      ++e.suppressed;
      return;
    }
    emit(e.suppressed);
    e.last_ms = now;
    e.suppressed = 0;
  }
};

// The driver's interfaces, carried out by this actor.
struct steady_clock final : clock_source {
  std::int64_t now_ms() const override { return steady_now_ms(); }
};

// Faults a test process injects (set_faults, stall_storage); none otherwise.
struct process_faults final : fault_injection {
  std::set<node_id> drop_to, drop_from;
  std::int64_t stall_until_ms = 0;
  bool drop_outgoing(const message& m) override { return drop_to.count(m.to) > 0; }
  bool drop_incoming(const message& m) override { return drop_from.count(m.from) > 0; }
  bool disk_stalled(std::int64_t now_ms) override { return now_ms < stall_until_ms; }
};

struct state : log_writer, transport {
  caf::event_based_actor* self;
  node_options opts;
  std::unique_ptr<driver> drv;
  std::unique_ptr<push_hub> hub;
  std::shared_ptr<state_machine> machine;
  std::shared_ptr<leader_service> service;
  caf::actor storage;
  steady_clock clock;
  process_faults faults;
  std::string name;  // "node N", for logs

  std::map<node_id, link> links;
  // Heartbeating clients: the sessions each connection carries, so that a
  // broken connection (a dead process) is reported at once. A session lives
  // on the connection it was last heard on, only (session_connection).
  std::map<caf::actor_addr, std::set<std::uint64_t>> client_sessions;
  std::map<std::uint64_t, caf::actor_addr> session_connection;
  int ticks_since_prune = 0;
  int ticks_since_progress = 0;
  // Client connections that proved a key (auth.hpp), and open challenges.
  std::map<caf::actor_addr, auth::level> authenticated;
  std::map<caf::actor_addr, std::string> challenges;
  std::mt19937_64 rng;
  log_limiter limiter;

  // Requests passed on to the leader, so that they fail at once when the
  // connection to it breaks (CAF 0.17 never answers a request that was on
  // the wire then; the client would wait for its timeout).
  struct passed_on_wait {
    node_id leader;
    bool changes_state;
    caf::response_promise promise;
  };
  std::map<std::uint64_t, passed_on_wait> passed_on;
  std::uint64_t next_pass_id = 1;

  bool flush_scheduled = false;
  bool stopping = false;
  std::int64_t stop_deadline_ms = 0;
  caf::response_promise stop_promise;
  ready::role_change last_role{role::follower, term_t{}, node_id{}};
  std::vector<caf::actor> role_listeners;

  core& raft() { return drv->raft(); }

  // Whether the message being handled comes from this process. The actor's
  // port is public: timer, control and subscription messages from elsewhere
  // are dropped (peers and clients speak peer_atom, forward_atom,
  // client_atom and auth_atom, which carry their own checks).
  bool from_here() const {
    auto sender = self->current_sender();
    return sender && sender->node() == self->node();
  }

  void tell_role(const caf::actor& to) {
    self->send(to, role_atom::value, raft().role() == role::leader, raft().term().value, raft().leader().value);
  }

  // --- transport -------------------------------------------------------------

  void connect(node_id id) {
    auto& l = links[id];
    if (l.connecting || l.handle || stopping) return;
    l.connecting = true;
    auto mm = self->system().middleman().actor_handle();
    self->request(mm, std::chrono::seconds(2), caf::connect_atom::value, l.address.host, l.address.port)
        .then(
            [this, id](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              auto& l = links[id];
              l.connecting = false;
              if (!ptr) return retry(id);
              l.handle = caf::actor_cast<caf::actor>(ptr);
              // The backoff resets only once the peer speaks (on_peer_bytes):
              // a port that accepts but whose actor is gone must not spin.
              self->monitor(l.handle);
            },
            [this, id](caf::error&) {
              links[id].connecting = false;
              retry(id);
            });
  }

  void retry(node_id id) {
    auto& l = links[id];
    // Capped exponential backoff with full jitter.
    l.backoff_ms = l.backoff_ms == 0 ? opts.reconnect_min_ms : std::min(opts.reconnect_max_ms, l.backoff_ms * 2);
    auto wait = opts.reconnect_min_ms + static_cast<int>(rng() % static_cast<std::uint64_t>(l.backoff_ms));
    self->delayed_send(self, milliseconds(wait), reconnect_atom::value, id.value);
  }

  void on_down(const caf::down_msg& dm) {
    if (hub->on_down(dm.source)) return;
    authenticated.erase(dm.source);
    challenges.erase(dm.source);
    if (auto it = client_sessions.find(dm.source); it != client_sessions.end()) {
      log_line("{}: a client connection carrying {} session(s) broke", name, it->second.size());
      for (auto session : it->second) {
        session_connection.erase(session);
        if (service && raft().role() == role::leader) {
          service->on_connection_lost(session, static_cast<std::uint64_t>(steady_now_ms()));
        }
      }
      client_sessions.erase(it);
      schedule_flush();
      return;
    }
    for (auto& [id, l] : links) {
      if (l.handle && l.handle.address() == dm.source) {
        l.handle = nullptr;
        limiter("lost-" + std::to_string(id.value), [&](std::uint64_t suppressed) {
          log_line("{}: lost the connection to node {}{}", name, id.value,
                   suppressed ? fmt::format(" ({} more times in the last minute)", suppressed) : std::string());
        });
        raft().peer_connection_lost(id);
        fail_passed_on_if([&](node_id l) { return l == id; });
        retry(id);
        schedule_flush();
      }
    }
  }

  // transport: a message to a peer, over its link (dropped while there is none).
  void send(const message& m) override {
    auto it = links.find(m.to);
    if (it == links.end()) {
      // A server outside the founding list (added later): we cannot reach it yet.
      limiter("no-route-" + std::to_string(m.to.value), [&](std::uint64_t) {
        log_line("{}: no address for node {}; dropping messages to it", name, m.to.value);
      });
      return;
    }
    if (!it->second.handle) {
      connect(m.to);
      return;
    }
    auto bytes = wire::encode(m, opts.cluster_id);
    auto tag = auth::tag(opts.keys, bytes);
    self->send(it->second.handle, peer_atom::value, std::move(bytes), std::move(tag));
  }

  void on_peer_bytes(const std::string& bytes, const std::string& tag) {
    if (opts.keys.enabled() && !auth::check_tag(opts.keys, bytes, tag)) {
      auto sender = self->current_sender();
      auto from = sender ? caf::to_string(sender->node()) : std::string("unknown");
      limiter(from + "/unauthenticated", [&](std::uint64_t suppressed) {
        log_line("{}: refusing a peer message without the cluster secret's tag from {}; {} more like it in the last "
                 "minute",
                 name, from, suppressed);
      });
      return;
    }
    auto decoded = wire::decode(bytes, opts.cluster_id);
    if (!decoded) {
      auto sender = self->current_sender();
      auto key = (sender ? caf::to_string(sender->node()) : std::string("unknown")) + "/" +
                 client::code_name(decoded.error().code);
      limiter(key, [&](std::uint64_t suppressed) {
        log_line("{}: on_peer_message: ignoring ({}) from {}; {} more like it in the last minute", name,
                 decoded.error().message(), sender ? caf::to_string(sender->node()) : "unknown", suppressed);
      });
      return;
    }
    if (decoded->to != opts.raft.id) return;
    if (auto it = links.find(decoded->from); it != links.end()) it->second.backoff_ms = 0;
    drv->receive(*decoded);
    schedule_flush();
  }

  // --- the ready loop ----------------------------------------------------------

  void schedule_flush() {
    if (flush_scheduled) return;
    flush_scheduled = true;
    // Goes to the back of the mailbox: everything already queued is handled
    // first, so proposals and acks arriving together share one ready.
    self->send(self, flush_atom::value);
  }

  void flush() {
    flush_scheduled = false;
    auto applied = drv->applied();
    drv->flush();
    if (drv->applied() != applied) hub->after_apply();
    sync_links();
  }

  // (pushsub_atom, id, subscription): what needs the member key when
  // authentication is on, like the registry's requests.
  std::string on_subscribe(std::uint64_t id, const std::string& request) {
    auto sender = caf::actor_cast<caf::actor>(self->current_sender());
    if (opts.keys.enabled()) {
      auto it = authenticated.find(sender.address());
      if (it == authenticated.end() || it->second == auth::level::none) {
        return "unauthenticated: this cluster requires credentials: the cluster secret or a member key";
      }
    }
    return hub->subscribe(sender, id, request);
  }

  void report_role(const ready::role_change& rc) {
    if (rc.role == role::leader) {
      log_line("{}: leader in term {}", name, rc.term.value);
    } else if (last_role.role == role::leader || rc.leader != last_role.leader) {
      log_line("{}: {} in term {}, leader {}", name, to_string(rc.role), rc.term.value,
               rc.leader == no_node ? std::string("unknown") : std::to_string(rc.leader.value));
    }
    // Requests passed on to a leader that is no longer the one we know (a
    // frozen or cut-off leader keeps its connection open) get no answer.
    if (rc.leader != last_role.leader) fail_passed_on_if([&](node_id l) { return l != rc.leader; });
    last_role = rc;
    for (const auto& l : role_listeners) tell_role(l);
  }

  // log_writer: the storage actor carries out one job at a time.
  void write(storage_job job) override {
    self->request(storage, caf::infinite, write_atom::value, std::move(job))
        .then([this](persisted_atom, std::uint64_t done, const std::string& err) {
          drv->written(done, err);
          schedule_flush();
        });
  }

  // --- clients --------------------------------------------------------------------

  client::failure failure(errc code, const std::string& detail) {
    client::failure f{client::code_name(code), make_error(code, detail).message(), 0, {}};
    auto leader = raft().leader();
    if (leader != no_node && leader != opts.raft.id) {
      f.leader_id = leader.value;
      auto it = opts.members.find(leader);
      if (it != opts.members.end()) f.leader_address = it->second.text();
    }
    return f;
  }

  // What a request needs: changing who votes or leads, or injecting faults,
  // takes the cluster secret; the registry needs at least the member key.
  static auth::level required(const client::request& r) {
    return client::traits_of(r).needs_secret ? auth::level::master : auth::level::member;
  }

  // --- authentication (auth.hpp): a challenge per client connection ---------------

  std::string on_auth_hello() {
    auto sender = self->current_sender();
    if (!sender) return {};
    auto addr = caf::actor_cast<caf::actor_addr>(sender);
    // Watched from its first challenge on, so both maps forget it when it goes.
    if (!challenges.count(addr) && !authenticated.count(addr)) self->monitor(caf::actor_cast<caf::actor>(sender));
    return challenges[addr] = auth::random_nonce();
  }

  std::string on_auth_proof(const std::string& proof) {
    auto sender = self->current_sender();
    if (!sender) return "none";
    auto addr = caf::actor_cast<caf::actor_addr>(sender);
    auto it = challenges.find(addr);
    if (it == challenges.end() || !opts.keys.enabled()) return "none";
    auto granted = auth::verify(opts.keys, opts.cluster_id, it->second, proof);
    challenges.erase(it);  // one answer per challenge
    if (granted == auth::level::none) {
      limiter(caf::to_string(sender->node()) + "/bad-proof", [&](std::uint64_t suppressed) {
        log_line("{}: refusing a client from {}: wrong credentials; {} more like it in the last minute", name,
                 caf::to_string(sender->node()), suppressed);
      });
      return "none";
    }
    authenticated[addr] = granted;
    return auth::to_string(granted);
  }

  caf::result<std::string> on_client(const std::string& bytes, bool forwarded) {
    auto decoded = wire::decode_request(bytes, opts.cluster_id);
    if (!decoded) return wire::encode_response(failure(decoded.error().code, decoded.error().detail));
    // A passed-on request was checked by the follower that passed it on.
    if (opts.keys.enabled() && !forwarded) {
      auto sender = self->current_sender();
      auto it = sender ? authenticated.find(caf::actor_cast<caf::actor_addr>(sender)) : authenticated.end();
      auto have = it == authenticated.end() ? auth::level::none : it->second;
      auto need = required(*decoded);
      if (static_cast<int>(have) < static_cast<int>(need)) {
        return wire::encode_response(failure(
            errc::unauthenticated, need == auth::level::master
                                       ? "this request needs the cluster secret (--secret-file)"
                                       : "this cluster requires credentials: the cluster secret or a member key "
                                         "(--secret-file)"));
      }
    }
    if (stopping) return wire::encode_response(failure(errc::unavailable, "shutting down"));
    // A follower passes writes and linearizable reads to the leader it knows
    // (once: a passed-on request is never passed on again), so a client may
    // talk to any master.
    auto traits = client::traits_of(*decoded);
    // A master that cannot write refuses writes itself, so that its clients
    // learn why and move on (raft_client tries another master).
    if (traits.appends_entries) {
      if (drv->storage_error()) return refused(*drv->storage_error());
    }
    if (traits.passed_to_leader && !forwarded && raft().role() != role::leader && raft().leader() != no_node) {
      auto it = links.find(raft().leader());
      if (it != links.end() && it->second.handle) {
        return pass_on(raft().leader(), it->second.handle, bytes, traits.changes_state);
      }
    }
    return std::visit([&](auto& req) { return handle(req); }, *decoded);
  }

  caf::result<std::string> pass_on(node_id leader, const caf::actor& to, const std::string& bytes, bool changes_state) {
    auto id = next_pass_id++;
    passed_on[id] = passed_on_wait{leader, changes_state, self->make_response_promise()};
    self->request(to, caf::infinite, forward_atom::value, bytes, auth::tag(opts.keys, "forward|" + bytes))
        .then(
            [this, id](const std::string& reply) {
              if (auto it = passed_on.find(id); it != passed_on.end()) {
                it->second.promise.deliver(reply);
                passed_on.erase(it);
              }
            },
            [this, id](caf::error&) { fail_passed_on(id); });
    return passed_on[id].promise;
  }

  // Fails every request passed on to a leader for which `gone(leader)`.
  template <class Pred>
  void fail_passed_on_if(Pred gone) {
    std::vector<std::uint64_t> lost;
    for (const auto& [id, w] : passed_on) {
      if (gone(w.leader)) lost.push_back(id);
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
    it->second.promise.deliver(wire::encode_response(
        it->second.changes_state ? failure(errc::outcome_unknown, why) : failure(errc::unavailable, why)));
    passed_on.erase(it);
  }

  // A proposal's answer to its client.
  commit_callback answer_commit(caf::response_promise promise) {
    return [this, promise](expected<commit> c) mutable {
      promise.deliver(c ? wire::encode_response(client::committed{c->index.value, c->term.value, std::move(c->result)})
                        : wire::encode_response(failure(c.error().code, c.error().detail)));
    };
  }

  // New entries need this server's disk: a master that cannot write refuses
  // them itself, so that its clients learn why and move on.
  std::string refused(const error& e) {
    if (e.code == errc::disk_full || e.code == errc::map_full || e.code == errc::io_error) {
      return wire::encode_response(failure(e.code, "this master cannot write to its disk (" + e.detail +
                                                       "); ask another master, or retry once space returns"));
    }
    return wire::encode_response(failure(e.code, e.detail));
  }

  caf::result<std::string> handle(client::propose& p) {
    auto promise = self->make_response_promise();
    auto id = drv->propose(std::move(p.command), answer_commit(promise));
    // (The promise took over the request: an answer goes through it.)
    if (!id) promise.deliver(refused(id.error()));
    schedule_flush();
    return promise;
  }

  caf::result<std::string> handle(client::read& r) {
    auto promise = self->make_response_promise();
    auto ok = drv->read([this, promise, query = std::move(r.query)](expected<void> safe) mutable {
      promise.deliver(safe ? wire::encode_response(client::read_result{drv->applied().value, machine->query(query)})
                           : wire::encode_response(failure(safe.error().code, safe.error().detail)));
    });
    if (!ok) promise.deliver(wire::encode_response(failure(ok.error().code, ok.error().detail)));
    schedule_flush();
    return promise;
  }

  caf::result<std::string> handle(client::change_membership& c) {
    membership_change change;
    change.what = c.kind == 0 ? membership_change::kind::add_learner
                  : c.kind == 1 ? membership_change::kind::promote
                                : membership_change::kind::remove;
    change.subject = server{node_id{c.id}, c.address, suffrage::learner};
    if (change.what == membership_change::kind::add_learner) {
      auto ep = parse_endpoint(c.address, "address");
      if (!ep) return wire::encode_response(failure(errc::invalid_argument, ep.error().detail));
    }
    auto promise = self->make_response_promise();
    auto id = drv->propose_membership(change, answer_commit(promise));
    // (The promise took over the request: an answer goes through it.)
    if (!id) promise.deliver(refused(id.error()));
    schedule_flush();
    return promise;
  }

  // Servers added by membership changes get a link like the founders'.
  void sync_links() {
    for (const auto& s : raft().current_configuration().servers) {
      if (s.id == opts.raft.id || links.count(s.id)) continue;
      auto ep = parse_endpoint(s.address, "configuration");
      if (!ep) continue;
      links[s.id].address = *ep;
      log_line("{}: node {} at {} joined the configuration", name, s.id.value, ep->text());
      connect(s.id);
    }
  }

  caf::result<std::string> handle(client::stale_read& r) {
    return wire::encode_response(client::read_result{drv->applied().value, machine->query(r.query)});
  }

  caf::result<std::string> handle(client::status_request&) {
    client::status s;
    s.id = opts.raft.id.value;
    s.role = to_string(raft().role());
    s.term = raft().term().value;
    s.leader_id = raft().leader().value;
    if (auto it = opts.members.find(raft().leader()); it != opts.members.end()) s.leader_address = it->second.text();
    s.commit_index = raft().log().commit_index().value;
    s.applied_index = drv->applied().value;
    s.last_index = raft().log().last_index().value;
    s.digest = machine->digest();
    if (drv->storage_error()) s.storage_error = drv->storage_error()->message();
    return wire::encode_response(s);
  }

  caf::result<std::string> handle(client::transfer_leadership& t) {
    auto ok = drv->transfer_leadership(t.target ? std::optional<node_id>(node_id{t.target}) : std::nullopt);
    if (!ok) return wire::encode_response(failure(ok.error().code, ok.error().detail));
    schedule_flush();
    return wire::encode_response(client::ok{});
  }

  caf::result<std::string> handle(client::set_faults& f) {
    faults.drop_to.clear();
    faults.drop_from.clear();
    for (auto id : f.drop_to) faults.drop_to.insert(node_id{id});
    for (auto id : f.drop_from) faults.drop_from.insert(node_id{id});
    log_line("{}: fault hook: dropping traffic to {} peer(s), from {} peer(s)", name, faults.drop_to.size(),
             faults.drop_from.size());
    return wire::encode_response(client::ok{});
  }

  caf::result<std::string> handle(client::keepalive& k) {
    if (raft().role() != role::leader) return wire::encode_response(failure(errc::not_leader, "heartbeats go to the leader"));
    if (!service) return wire::encode_response(failure(errc::not_found, "no session " + std::to_string(k.session)));
    auto sender = self->current_sender();
    if (service->on_keepalive(k.session, k.payload, static_cast<std::uint64_t>(steady_now_ms()))) {
      return answer_keepalive(k, sender, false);
    }
    // "No such session" ends the client's session for good, so it is said
    // only as a linearizable read would be: this server may not have applied
    // its predecessor's last entries yet, or may be deposed without knowing
    // it. ReadIndex (thesis 6.4) confirms leadership and the applied state.
    auto promise = self->make_response_promise();
    auto ok = drv->read([this, promise, k, sender](expected<void> safe) mutable {
      promise.deliver(safe ? answer_keepalive(k, sender, true)
                           : wire::encode_response(failure(safe.error().code, safe.error().detail)));
    });
    if (!ok) promise.deliver(wire::encode_response(failure(ok.error().code, ok.error().detail)));
    schedule_flush();
    return promise;
  }

  // A heartbeat's answer; `confirmed`: the registry is as of a confirmed read.
  std::string answer_keepalive(const client::keepalive& k, const caf::strong_actor_ptr& sender, bool confirmed) {
    if (confirmed && !(raft().role() == role::leader && service &&
                       service->on_keepalive(k.session, k.payload, static_cast<std::uint64_t>(steady_now_ms())))) {
      return wire::encode_response(failure(errc::not_found, "no session " + std::to_string(k.session)));
    }
    // The connection that carries a session's heartbeats: when it breaks
    // (its process died) the session is expired after a short grace.
    // A connection it left (the client moved to another relay) no longer
    // speaks for it: its break must not expire a session heard elsewhere.
    if (sender) {
      auto addr = caf::actor_cast<caf::actor_addr>(sender);
      auto& on = session_connection[k.session];
      if (on && on != addr) {
        if (auto old = client_sessions.find(on); old != client_sessions.end()) old->second.erase(k.session);
      }
      on = addr;
      auto [it, fresh] = client_sessions.emplace(addr, std::set<std::uint64_t>{});
      if (fresh) self->monitor(caf::actor_cast<caf::actor>(sender));
      it->second.insert(k.session);
    }
    return wire::encode_response(client::ok{});
  }

  caf::result<std::string> handle(client::stall_storage& s) {
    faults.stall_until_ms = s.ms ? steady_now_ms() + s.ms : 0;
    log_line("{}: fault hook: storage stalled for {} ms", name, s.ms);
    return wire::encode_response(client::ok{});
  }

  // --- time -------------------------------------------------------------------------

  void on_tick() {
    drv->tick();
    if (++ticks_since_progress * opts.tick_ms >= 1000) {
      ticks_since_progress = 0;
      // Progress only while a leader is known: a master cut off from the
      // others falls silent, so its subscribers move to one that is not.
      if (raft().leader() != no_node) hub->progress();
    }
    if (service && ++ticks_since_prune * opts.tick_ms >= 1000) prune_client_sessions();
    if (stopping) continue_stop(steady_now_ms());
    schedule_flush();
    self->delayed_send(self, milliseconds(opts.tick_ms), tick_atom::value);
  }

  // Sessions that ended while their connection stays open (a long-lived
  // client that opens and closes sessions) are forgotten, once a second.
  void prune_client_sessions() {
    ticks_since_prune = 0;
    for (auto it = session_connection.begin(); it != session_connection.end();) {
      if (service->has_session(it->first)) {
        ++it;
        continue;
      }
      if (auto c = client_sessions.find(it->second); c != client_sessions.end()) c->second.erase(it->first);
      it = session_connection.erase(it);
    }
  }

  void continue_stop(std::int64_t now) {
    bool handed_over = raft().role() != role::leader;
    // A write waiting for space is abandoned: nothing acknowledged needs it.
    bool writes_done = drv->writes_done() || drv->storage_error();
    if ((handed_over || now >= stop_deadline_ms) && writes_done) {
      log_line("{}: stopped ({})", name, handed_over ? "not leading" : "leadership not handed over in time");
      stop_promise.deliver(caf::unit);
      // A non-normal reason, so that the linked storage actor stops too.
      self->quit(caf::exit_reason::user_shutdown);
    }
  }

  void on_stop() {
    if (stopping) return;
    stopping = true;
    stop_deadline_ms = steady_now_ms() + opts.shutdown_transfer_ms;
    if (raft().role() == role::leader && !raft().best_transfer_target()) {
      stop_deadline_ms = steady_now_ms();  // nobody to hand over to: do not wait
    }
    drv->prepare_stop();
    schedule_flush();
  }
};

}  // namespace

caf::behavior peer_actor(caf::event_based_actor* self, std::shared_ptr<peer_setup> setup) {
  auto st = std::make_shared<state>();
  st->self = self;
  st->opts = setup->options;
  st->machine = setup->machine;
  st->service = setup->service;
  st->hub = std::make_unique<push_hub>(self, setup->push);
  st->storage = setup->storage;
  st->name = "node " + std::to_string(st->opts.raft.id.value);
  st->rng.seed(st->opts.raft.seed ^ static_cast<std::uint64_t>(steady_now_ms()));
  auto applied = setup->durable.snapshot ? setup->durable.snapshot->meta.last_index : index_t{0};
  configuration bootstrap;  // empty for a joining server: it waits to be added
  if (!st->opts.join) {
    for (const auto& [id, ep] : st->opts.members) bootstrap.servers.push_back({id, ep.text(), suffrage::voter});
  }
  driver_options dopts;
  dopts.name = st->name;
  dopts.snapshot_every_entries = st->opts.snapshot_every_entries;
  dopts.storage_stall_ms = st->opts.storage_stall_ms > 0 ? st->opts.storage_stall_ms
                                                         : st->opts.raft.election_timeout_min_ticks * st->opts.tick_ms;
  driver::parts parts;
  parts.writer = st.get();
  parts.net = st.get();
  parts.machine = st->machine.get();
  parts.clock = &st->clock;
  parts.service = st->service.get();
  parts.faults = &st->faults;
  parts.log = [](const std::string& line) { log_line("{}", line); };
  parts.on_role = [s = st.get()](const ready::role_change& rc) { s->report_role(rc); };
  parts.on_fatal = [self](const std::string&) { self->quit(caf::exit_reason::user_shutdown); };
  st->drv = std::make_unique<driver>(
      dopts, std::make_unique<core>(st->opts.raft, std::move(setup->durable), bootstrap), std::move(parts), applied);
  for (const auto& [id, ep] : st->opts.members) {
    if (id != st->opts.raft.id) st->links[id].address = ep;
  }
  self->set_down_handler([st](caf::down_msg& dm) { st->on_down(dm); });
  // The storage actor dies with us.
  self->link_to(st->storage);
  for (const auto& [id, l] : st->links) st->connect(id);
  self->delayed_send(self, milliseconds(st->opts.tick_ms), tick_atom::value);
  st->schedule_flush();
  return {
      [st](peer_atom, const std::string& bytes, const std::string& tag) { st->on_peer_bytes(bytes, tag); },
      [st](client_atom, const std::string& bytes) -> caf::result<std::string> { return st->on_client(bytes, false); },
      [st](forward_atom, const std::string& bytes, const std::string& tag) -> caf::result<std::string> {
        if (st->opts.keys.enabled() && !auth::check_tag(st->opts.keys, "forward|" + bytes, tag)) {
          return wire::encode_response(st->failure(errc::unauthenticated, "a passed-on request without the secret's tag"));
        }
        return st->on_client(bytes, true);
      },
      [st](auth_atom) { return st->on_auth_hello(); },
      [st](pushsub_atom, std::uint64_t id, const std::string& request) { return st->on_subscribe(id, request); },
      [st](unsub_atom, std::uint64_t id) {
        st->hub->unsubscribe(caf::actor_cast<caf::actor_addr>(st->self->current_sender()), id);
      },
      [st](auth_atom, const std::string& proof) { return st->on_auth_proof(proof); },
      [st](tick_atom) {
        if (st->from_here()) st->on_tick();
      },
      [st](storage_failed_atom, std::uint32_t code, const std::string& detail) {
        // Only from our own storage actor (this actor's port is public).
        if (st->self->current_sender() != caf::actor_cast<caf::strong_actor_ptr>(st->storage)) return;
        st->drv->storage_failed(static_cast<errc>(code), detail);
        st->schedule_flush();
      },
      [st](flush_atom) {
        if (st->from_here()) st->flush();
      },
      [st](reconnect_atom, std::uint64_t id) {
        if (st->from_here()) st->connect(node_id{id});
      },
      [st](subscribe_atom, const caf::actor& listener) {
        if (!st->from_here()) return;
        st->role_listeners.push_back(listener);
        st->tell_role(listener);
      },
      [st](stop_atom) -> caf::result<caf::unit_t> {
        if (!st->from_here()) return caf::make_error(caf::sec::unexpected_message);
        st->stop_promise = st->self->make_response_promise();
        st->on_stop();
        return st->stop_promise;
      },
  };
}

}  // namespace conclave::raft
