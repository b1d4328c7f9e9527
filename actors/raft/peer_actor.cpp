#include "actors/raft/peer_actor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "actors/log.hpp"
#include "actors/raft/link_actor.hpp"
#include "actors/raft/push_hub.hpp"
#include "actors/raft/storage_actor.hpp"
#include "actors/raft/trace_message.hpp"
#include "schema/client_codec.hpp"
#include "schema/codec.hpp"
#include "schema/push_codec.hpp"

namespace conclave::raft {

client::failure refusal(errc code, const std::string& detail, node_id leader, const node_options& opts) {
  client::failure f{client::code_name(code), make_error(code, detail).message(), 0, {}};
  if (leader != no_node && leader != opts.raft.id) {
    f.leader_id = leader.value;
    if (auto it = opts.members.find(leader); it != opts.members.end()) f.leader_address = it->second.text();
  }
  return f;
}

namespace {

using std::chrono::milliseconds;

struct steady_clock final : clock_source {
  std::int64_t now_ms() const override { return steady_now_ms(); }
};

// Faults a test injects through the gateway's fault channel; installed in
// the driver only when the server runs with fault-injection = true.
struct process_faults final : fault_injection {
  std::set<node_id> drop_to, drop_from;
  std::int64_t stall_until_ms = 0;
  bool drop_outgoing(const message& m) override { return drop_to.count(m.to) > 0; }
  bool drop_incoming(const message& m) override { return drop_from.count(m.from) > 0; }
  bool disk_stalled(std::int64_t now_ms) override { return now_ms < stall_until_ms; }
};

struct link {
  endpoint address;
  link_interface actor;  // spawned once the gateway is known (links speak in its name)
  caf::actor remote;     // the peer's gateway, while the link is connected
  bool backing_off = false;  // the link failed since the peer last spoke: its next message resets the backoff
  metrics::peer_stats* stats = nullptr;
  // The heartbeat whose answer is awaited, to time the round trip: its
  // sequence number and when it left.
  std::optional<std::pair<std::uint64_t, std::chrono::steady_clock::time_point>> probe;
};

struct state : log_writer, transport {
  peer_interface::pointer self;
  node_options opts;
  std::string name;  // "node N", for logs
  std::unique_ptr<driver> drv;
  std::unique_ptr<push_hub> hub;
  int ticks_since_progress = 0;
  std::shared_ptr<state_machine> machine;
  std::shared_ptr<leader_service> service;
  std::shared_ptr<push_service> push;
  std::shared_ptr<metrics::sink> stats;
  node_id seen_leader;  // the last leader known, and its term (leader changes seen)
  term_t seen_leader_term;
  caf::actor storage;
  caf::actor gateway;
  steady_clock clock;
  process_faults faults;
  std::map<node_id, link> links;
  // The gateway of each lower id's last hello, also of those not (yet) in the
  // configuration: a passive link spawned later starts from it.
  std::map<node_id, caf::actor> hellos;
  log_limiter limiter;

  // The route last told to the gateway: the leader, and its gateway while
  // connected to it (null when this server leads or the link is down).
  bool route_told = false;
  node_id route_leader;
  caf::actor route_via;

  bool flush_scheduled = false;
  bool stopping = false;
  std::int64_t stop_deadline_ms = 0;
  caf::response_promise stop_promise;
  ready::role_change last_role{role::follower, term_t{}, node_id{}};
  std::vector<caf::actor> role_listeners;

  core& raft() { return drv->raft(); }

  // --- links -------------------------------------------------------------------------

  void open_link(node_id id) {
    auto& l = links[id];
    if (!l.stats) l.stats = &stats->peer(id.value);
    if (!gateway || l.actor) return;
    link_setup s;
    s.self = opts.raft.id;
    s.peer = id;
    s.address = l.address;
    s.name = name;
    s.cluster_id = opts.cluster_id;
    s.keys = opts.keys;
    s.reconnect_min_ms = opts.reconnect_min_ms;
    s.reconnect_max_ms = opts.reconnect_max_ms;
    s.seed = opts.raft.seed ^ static_cast<std::uint64_t>(steady_now_ms());
    s.owner = caf::actor_cast<peer_interface>(self);
    s.gateway = gateway;
    l.actor = self->spawn<caf::linked>(link_actor, std::move(s));
    if (auto h = hellos.find(id); h != hellos.end()) self->send(l.actor, hello_atom::value, h->second);
  }

  // A lower id's link connected and said hello (the gateway checked it): our
  // link to it sends over that connection.
  void on_hello(node_id from, const caf::actor& remote) {
    if (!passive_link(opts.raft.id, from) || !remote) return;
    hellos[from] = remote;
    if (auto it = links.find(from); it != links.end() && it->second.actor) {
      self->send(it->second.actor, hello_atom::value, remote);
    }
  }

  // Servers added by membership changes get a link like the founders'.
  void sync_links() {
    for (const auto& s : raft().current_configuration().servers) {
      if (s.id == opts.raft.id || links.count(s.id)) continue;
      auto ep = parse_endpoint(s.address, "configuration");
      if (!ep) continue;
      links[s.id].address = *ep;
      log_line("{}: node {} at {} joined the configuration", name, s.id.value, ep->text());
      open_link(s.id);
    }
  }

  void on_link(node_id id, caf::actor remote) {
    auto it = links.find(id);
    if (it == links.end()) return;
    bool was_connected = static_cast<bool>(it->second.remote);
    it->second.remote = remote;
    if (!remote) {
      it->second.backing_off = true;
      if (was_connected) {
        drv->connection_lost(id);
        schedule_flush();
      }
    }
    tell_route();
  }

  // transport: a message to a peer, over its link (which drops it while unconnected).
  void send(const message& m) override {
    auto it = links.find(m.to);
    if (it == links.end()) {
      // A server outside the founding list (added later): we cannot reach it yet.
      limiter("no-route-" + std::to_string(m.to.value), [&](std::uint64_t) {
        log_warning("{}: no address for node {}; dropping messages to it", name, m.to.value);
      });
      return;
    }
    auto& l = it->second;
    if (!l.actor) return;
    auto bytes = wire::encode(m, opts.cluster_id);
    if (l.stats) l.stats->sent_bytes += bytes.size();
    // A heartbeat (no entries: the follower answers without writing) is timed
    // to its answer, one at a time per peer.
    if (auto* a = std::get_if<append_entries>(&m.body); a && a->entries.empty() && !l.probe) {
      l.probe.emplace(a->sequence, std::chrono::steady_clock::now());
    }
    if (stage_trace::enabled()) {
      trace_message(m, stage_trace::stage::entries_sent, stage_trace::stage::ack_sent, stage_trace::now_ns());
    }
    self->send(l.actor, peer_atom::value, std::move(bytes));
  }

  void on_peer_message(const message& m) {
    if (stage_trace::enabled()) {
      trace_message(m, stage_trace::stage::entries_received, stage_trace::stage::ack_received, stage_trace::now_ns());
    }
    if (auto it = links.find(m.from); it != links.end()) {
      auto& l = it->second;
      if (l.backing_off && l.actor) {
        self->send(l.actor, heard_atom::value);
        l.backing_off = false;
      }
      // The timed heartbeat's answer (or a later one: the heartbeat was lost).
      auto* r = std::get_if<append_entries_reply>(&m.body);
      if (r && l.probe && r->sequence >= l.probe->first) {
        if (r->sequence == l.probe->first && l.stats) {
          l.stats->round_trip.observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - l.probe->second).count());
        }
        l.probe.reset();
      }
    }
    drv->receive(m);
    schedule_flush();
  }

  // Tells the gateway where requests for the leader go, when that changes.
  void tell_route() {
    auto leader = raft().leader();
    caf::actor via;
    if (auto it = links.find(leader); leader != opts.raft.id && it != links.end()) via = it->second.remote;
    if (!gateway || (route_told && leader == route_leader && via == route_via)) return;
    route_told = true;
    route_leader = leader;
    route_via = via;
    // As itself (a typed actor sends to an untyped one only this way): the
    // gateway takes routes only from its peer actor.
    caf::send_as(caf::actor_cast<caf::actor>(self), gateway, route_atom::value, leader.value, via);
  }

  // --- the ready loop ----------------------------------------------------------------

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
    auto started_ns = stage_trace::enabled() ? stage_trace::now_ns() : 0;
    drv->flush();
    if (started_ns && drv->applied() > applied) {
      stage_trace::mark(stage_trace::stage::apply_started, applied.value + 1, drv->applied().value, started_ns);
      stage_trace::mark_range(stage_trace::stage::applied, applied.value + 1, drv->applied().value);
    }
    if (drv->applied() != applied) hub->after_apply();
    sync_links();
    publish_stats();
  }

  // Raft's numbers for the exporter, after each round.
  void publish_stats() {
    auto& s = *stats;
    s.is_leader = raft().role() == role::leader;
    s.has_leader = raft().leader() != no_node;
    s.term = raft().term().value;
    s.commit_index = raft().log().commit_index().value;
    s.applied_index = drv->applied().value;
    s.last_index = raft().log().last_index().value;
    s.updated_ms = steady_now_ms();
  }

  // The applied state's gauges (members, sessions, locks, watches), about once a second.
  void sample_state() {
    auto gauges = machine->gauges();
    if (push) {
      auto more = push->gauges();
      gauges.insert(gauges.end(), more.begin(), more.end());
    }
    stats->set_state_gauges(std::move(gauges));
  }

  void report_role(const ready::role_change& rc) {
    if (rc.role == role::leader) {
      log_line("{}: leader in term {}", name, rc.term.value);
    } else if (last_role.role == role::leader || rc.leader != last_role.leader) {
      log_line("{}: {} in term {}, leader {}", name, to_string(rc.role), rc.term.value,
               rc.leader == no_node ? std::string("unknown") : std::to_string(rc.leader.value));
    }
    if (rc.role == role::candidate && (last_role.role != role::candidate || rc.term != last_role.term)) {
      stats->elections_started++;
    }
    if (rc.role == role::leader && last_role.role != role::leader) {
      for (auto& [id, l] : links) l.probe.reset();  // a new leadership numbers its heartbeats anew
    }
    if (rc.leader != no_node && (rc.leader != seen_leader || rc.term != seen_leader_term)) {
      stats->leader_changes_seen++;
      seen_leader = rc.leader;
      seen_leader_term = rc.term;
    }
    last_role = rc;
    for (const auto& l : role_listeners) tell_role(l);
    tell_route();
  }

  void tell_role(const caf::actor& to) {
    caf::anon_send(to, role_atom::value, raft().role() == role::leader, raft().term().value, raft().leader().value);
  }

  // log_writer: the storage actor carries out one job at a time.
  void write(storage_job job) override {
    std::uint64_t first = 0, last = 0;
    if (!job.batch.entries.empty()) {
      first = job.batch.entries.front().index.value;
      last = job.batch.entries.back().index.value;
      stage_trace::mark_range(stage_trace::stage::storage_queued, first, last);
    }
    self->request(storage, caf::infinite, write_atom::value, std::move(job))
        .then([this, first, last](persisted_atom, std::uint64_t done, const std::string& err) {
          if (last) stage_trace::mark_range(stage_trace::stage::persisted, first, last);
          drv->written(done, err);
          schedule_flush();
        });
  }

  // --- what the gateway asks ---------------------------------------------------------

  client::response fail(errc code, const std::string& detail) { return refusal(code, detail, raft().leader(), opts); }
  client::response shutting_down() { return fail(errc::unavailable, "shutting down"); }

  // New entries need this server's disk: a master that cannot write refuses
  // them itself, so that its clients learn why and move on.
  client::response refused(const error& e) {
    if (e.code == errc::disk_full || e.code == errc::map_full || e.code == errc::io_error) {
      return fail(e.code, "this master cannot write to its disk (" + e.detail +
                              "); ask another master, or retry once space returns");
    }
    return fail(e.code, e.detail);
  }

  // A proposal's answer to its client.
  commit_callback answer_commit(caf::typed_response_promise<client::response> promise) {
    // Pending while the driver holds the callback (it drops those it refuses at once).
    stats->proposals_pending++;
    std::shared_ptr<void> pending(nullptr, [s = stats](void*) { s->proposals_pending--; });
    return [this, promise, pending](expected<commit> c) mutable {
      (c ? stats->proposals_committed : stats->proposals_failed)++;
      promise.deliver(c ? client::response{client::committed{c->index.value, c->term.value, std::move(c->result)}}
                        : fail(c.error().code, c.error().detail));
    };
  }

  // A proposal refused at once failed, unless this follower knows the
  // leader: then the gateway passes it on there.
  void count_refusal(const error& e) {
    if (e.code != errc::not_leader || raft().leader() == no_node) stats->proposals_failed++;
  }

  caf::result<client::response> propose(std::string& command) {
    if (stopping) return shutting_down();
    auto promise = self->make_response_promise<client::response>();
    auto id = drv->propose(std::move(command), answer_commit(promise));
    if (id) stage_trace::mark(stage_trace::stage::proposed, id->index.value);
    // (The promise took over the request: an answer goes through it.)
    if (!id) {
      promise.deliver(refused(id.error()));
      count_refusal(id.error());
    }
    schedule_flush();
    return promise;
  }

  caf::result<client::response> read(std::string& query) {
    if (stopping) return shutting_down();
    auto promise = self->make_response_promise<client::response>();
    auto ok = drv->read([this, promise, query = std::move(query)](expected<void> safe) mutable {
      promise.deliver(safe ? client::response{client::read_result{drv->applied().value, machine->query(query)}}
                           : fail(safe.error().code, safe.error().detail));
    });
    if (!ok) promise.deliver(fail(ok.error().code, ok.error().detail));
    schedule_flush();
    return promise;
  }

  caf::result<client::response> stale_read(const std::string& query) {
    if (stopping) return shutting_down();
    return client::response{client::read_result{drv->applied().value, machine->query(query)}};
  }

  caf::result<client::response> change_membership(std::uint8_t kind, std::uint64_t id, const std::string& address) {
    if (stopping) return shutting_down();
    if (drv->storage_error()) return refused(*drv->storage_error());
    membership_change change;
    change.what = kind == 0   ? membership_change::kind::add_learner
                  : kind == 1 ? membership_change::kind::promote
                              : membership_change::kind::remove;
    change.subject = server{node_id{id}, address, suffrage::learner};
    if (change.what == membership_change::kind::add_learner) {
      auto ep = parse_endpoint(address, "address");
      if (!ep) return fail(errc::invalid_argument, ep.error().detail);
    }
    auto promise = self->make_response_promise<client::response>();
    auto proposed = drv->propose_membership(change, answer_commit(promise));
    // (The promise took over the request: an answer goes through it.)
    if (!proposed) {
      promise.deliver(refused(proposed.error()));
      count_refusal(proposed.error());
    }
    schedule_flush();
    return promise;
  }

  caf::result<client::response> status() {
    if (stopping) return shutting_down();
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
    for (const auto& x : raft().current_configuration().servers) {
      s.members.push_back(client::config_member{x.id.value, x.address, x.role == suffrage::learner});
    }
    std::sort(s.members.begin(), s.members.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return client::response{s};
  }

  caf::result<client::response> transfer(std::uint64_t target) {
    if (stopping) return shutting_down();
    auto ok = drv->transfer_leadership(target ? std::optional<node_id>(node_id{target}) : std::nullopt);
    if (!ok) return fail(ok.error().code, ok.error().detail);
    schedule_flush();
    return client::response{client::ok{}};
  }

  // A heartbeat for `session`: ok, or not_found when this leader's registry
  // has no such session. (The gateway ties an ok session to its connection.)
  caf::result<client::response> keepalive(std::uint64_t session, std::string& payload) {
    if (stopping) return shutting_down();
    if (raft().role() != role::leader) return fail(errc::not_leader, "heartbeats go to the leader");
    if (!service) return fail(errc::not_found, "no session " + std::to_string(session));
    if (service->on_keepalive(session, payload, static_cast<std::uint64_t>(steady_now_ms()))) {
      return client::response{client::ok{}};
    }
    // "No such session" ends the client's session for good, so it is said
    // only as a linearizable read would be: this server may not have applied
    // its predecessor's last entries yet, or may be deposed without knowing
    // it. ReadIndex (thesis 6.4) confirms leadership and the applied state.
    auto promise = self->make_response_promise<client::response>();
    auto ok = drv->read([this, promise, session, payload = std::move(payload)](expected<void> safe) mutable {
      if (!safe) {
        promise.deliver(fail(safe.error().code, safe.error().detail));
        return;
      }
      bool known = raft().role() == role::leader &&
                   service->on_keepalive(session, payload, static_cast<std::uint64_t>(steady_now_ms()));
      promise.deliver(known ? client::response{client::ok{}}
                            : fail(errc::not_found, "no session " + std::to_string(session)));
    });
    if (!ok) promise.deliver(fail(ok.error().code, ok.error().detail));
    schedule_flush();
    return promise;
  }

  // The connection that carried these sessions' heartbeats broke (its
  // process died): the leader expires them after a short grace.
  void sessions_lost(const std::vector<std::uint64_t>& sessions) {
    if (!service || raft().role() != role::leader) return;
    for (auto s : sessions) service->on_connection_lost(s, static_cast<std::uint64_t>(steady_now_ms()));
    schedule_flush();
  }

  std::vector<std::uint64_t> ended(const std::vector<std::uint64_t>& sessions) {
    std::vector<std::uint64_t> gone;
    if (!service) return gone;
    for (auto s : sessions) {
      if (!service->has_session(s)) gone.push_back(s);
    }
    return gone;
  }

  // --- time and stop -----------------------------------------------------------------

  void on_tick() {
    drv->tick();
    if (++ticks_since_progress * opts.tick_ms >= 1000) {
      ticks_since_progress = 0;
      // Progress only while a leader is known: a master cut off from the
      // others falls silent, so its subscribers move to one that is not.
      if (raft().leader() != no_node) hub->progress();
      sample_state();
    }
    if (stopping) continue_stop(steady_now_ms());
    schedule_flush();
    self->delayed_send(self, milliseconds(opts.tick_ms), tick_atom::value);
  }

  void on_stop() {
    if (stopping) return;
    stopping = true;
    stop_deadline_ms = steady_now_ms() + opts.shutdown_transfer_ms;
    if (raft().role() == role::leader && !raft().best_transfer_target()) {
      stop_deadline_ms = steady_now_ms();  // nobody to hand over to: do not wait
    }
    for (const auto& [id, l] : links) {
      if (l.actor) self->send(l.actor, stop_atom::value);
    }
    drv->prepare_stop();
    schedule_flush();
  }

  void continue_stop(std::int64_t now) {
    bool handed_over = raft().role() != role::leader;
    // A write waiting for space is abandoned: nothing acknowledged needs it.
    bool writes_done = drv->writes_done() || drv->storage_error();
    if ((handed_over || now >= stop_deadline_ms) && writes_done) {
      log_line("{}: stopped ({})", name, handed_over ? "not leading" : "leadership not handed over in time");
      stop_promise.deliver(caf::unit);
      // A non-normal reason, so that the linked storage actor, links and gateway stop too.
      self->quit(caf::exit_reason::user_shutdown);
    }
  }
};

}  // namespace

peer_interface::behavior_type peer_actor(peer_interface::pointer self, std::shared_ptr<peer_setup> setup) {
  auto st = std::make_shared<state>();
  st->self = self;
  st->opts = setup->options;
  st->name = "node " + std::to_string(st->opts.raft.id.value);
  stage_trace::set_node(st->opts.raft.id.value);
  st->machine = setup->machine;
  st->service = setup->service;
  st->push = setup->push;
  st->stats = setup->stats;
  st->storage = setup->storage;
  push_hub::hooks hooks;
  hooks.monitor = [self](const caf::actor& a) { self->monitor(a); };
  hooks.demonitor = [self](const caf::actor& a) { self->demonitor(a); };
  // In the gateway's name: the subscriber knows the master by its gateway.
  hooks.send = [s = st.get()](const caf::actor& to, const std::vector<std::uint64_t>& ids, std::uint8_t kind,
                              const std::string& bytes) {
    if (!s->gateway) return;
    if (ids.size() == 1) {
      caf::send_as(s->gateway, to, push_atom::value, ids.front(), kind, bytes);
    } else {
      caf::send_as(s->gateway, to, push_atom::value, wire::encode_push_ids(ids), kind, bytes);
    }
  };
  st->hub = std::make_unique<push_hub>(std::move(hooks), setup->push);
  self->set_down_handler([st](caf::down_msg& dm) { st->hub->on_down(dm.source); });
  auto applied = setup->durable.snapshot ? setup->durable.snapshot->meta.last_index : index_t{0};
  configuration bootstrap;  // empty for a joining server: it waits to be added
  if (!st->opts.join) {
    for (const auto& [id, ep] : st->opts.members) bootstrap.servers.push_back({id, ep.text(), suffrage::voter});
  }
  driver_options dopts;
  dopts.name = st->name;
  dopts.snapshot_every_entries = st->opts.snapshot_every_entries;
  dopts.membership_wait_ticks = client::membership_wait_ms / st->opts.tick_ms;
  dopts.storage_stall_ms = st->opts.storage_stall_ms > 0 ? st->opts.storage_stall_ms
                                                         : st->opts.raft.election_timeout_min_ticks * st->opts.tick_ms;
  driver::parts parts;
  parts.writer = st.get();
  parts.net = st.get();
  parts.machine = st->machine.get();
  parts.clock = &st->clock;
  parts.service = st->service.get();
  parts.faults = st->opts.fault_injection ? &st->faults : nullptr;
  parts.log = [](log_level level, const std::string& line) { write_log(level, line); };
  parts.on_role = [s = st.get()](const ready::role_change& rc) { s->report_role(rc); };
  parts.on_fatal = [self](const std::string&) { self->quit(caf::exit_reason::user_shutdown); };
  st->drv = std::make_unique<driver>(
      dopts, std::make_unique<core>(st->opts.raft, std::move(setup->durable), bootstrap), std::move(parts), applied);
  for (const auto& [id, ep] : st->opts.members) {
    if (id != st->opts.raft.id) st->links[id].address = ep;
  }
  // The storage actor dies with us.
  self->link_to(st->storage);
  self->delayed_send(self, milliseconds(st->opts.tick_ms), tick_atom::value);
  st->schedule_flush();
  return {
      [st](propose_atom, std::string& command) { return st->propose(command); },
      [st](read_atom, std::string& query) { return st->read(query); },
      [st](stale_read_atom, const std::string& query) { return st->stale_read(query); },
      [st](status_atom) { return st->status(); },
      [st](transfer_atom, std::uint64_t target) { return st->transfer(target); },
      [st](membership_atom, std::uint8_t kind, std::uint64_t id, const std::string& address) {
        return st->change_membership(kind, id, address);
      },
      [st](keepalive_atom, std::uint64_t session, std::string& payload) { return st->keepalive(session, payload); },
      [st](session_lost_atom, const std::vector<std::uint64_t>& sessions) { st->sessions_lost(sessions); },
      [st](pushsub_atom, const caf::actor& client, std::uint64_t id, const std::string& request) {
        return st->hub->subscribe(client, id, request);
      },
      [st](unsub_atom, const caf::actor& client, std::uint64_t id) { st->hub->unsubscribe(client.address(), id); },
      [st](sessions_atom, const std::vector<std::uint64_t>& sessions) { return st->ended(sessions); },
      [st](peer_atom, const message& m) { st->on_peer_message(m); },
      [st](gateway_atom, const caf::actor& gateway) {
        st->gateway = gateway;
        for (const auto& [id, l] : st->links) st->open_link(id);
        st->tell_route();
      },
      [st](fault_atom, drop_atom, std::uint64_t peer, bool outgoing, bool incoming) {
        auto& f = st->faults;
        if (outgoing) f.drop_to.insert(node_id{peer});
        else f.drop_to.erase(node_id{peer});
        if (incoming) f.drop_from.insert(node_id{peer});
        else f.drop_from.erase(node_id{peer});
        log_warning("{}: fault injection: dropping traffic to {} peer(s), from {} peer(s)", st->name, f.drop_to.size(),
                    f.drop_from.size());
      },
      [st](fault_atom, stall_atom, std::uint32_t ms) {
        st->faults.stall_until_ms = ms ? steady_now_ms() + ms : 0;
        log_warning("{}: fault injection: storage stalled for {} ms", st->name, ms);
      },
      [st](link_atom, std::uint64_t peer, const caf::actor& remote) { st->on_link(node_id{peer}, remote); },
      [st](hello_atom, std::uint64_t from, const caf::actor& remote) { st->on_hello(node_id{from}, remote); },
      [st](storage_failed_atom, std::uint32_t code, const std::string& detail) {
        st->drv->storage_failed(static_cast<errc>(code), detail);
        st->schedule_flush();
      },
      [st](subscribe_atom, const caf::actor& listener) {
        st->role_listeners.push_back(listener);
        st->tell_role(listener);
      },
      [st](stop_atom) -> caf::result<void> {
        st->stop_promise = st->self->make_response_promise();
        st->on_stop();
        return st->stop_promise;
      },
      [st](tick_atom) { st->on_tick(); },
      [st](flush_atom) { st->flush(); },
  };
}

}  // namespace conclave::raft
