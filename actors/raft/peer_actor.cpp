#include "actors/raft/peer_actor.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <map>
#include <random>
#include <set>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
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

struct state {
  caf::event_based_actor* self;
  node_options opts;
  std::unique_ptr<core> raft;
  std::shared_ptr<state_machine> machine;
  std::shared_ptr<leader_service> service;
  caf::actor storage;
  std::shared_ptr<std::atomic<std::int64_t>> stall_until_ms;
  std::string name;  // "node N", for logs

  std::map<node_id, link> links;
  // Heartbeating clients: the sessions each connection carries, so that a
  // broken connection (a dead process) is reported at once. A session lives
  // on the connection it was last heard on, only (session_connection).
  std::map<caf::actor_addr, std::set<std::uint64_t>> client_sessions;
  std::map<std::uint64_t, caf::actor_addr> session_connection;
  int ticks_since_prune = 0;
  // Client connections that proved a key (auth.hpp), and open challenges.
  std::map<caf::actor_addr, auth::level> authenticated;
  std::map<caf::actor_addr, std::string> challenges;
  std::set<node_id> drop_to, drop_from;  // fault hook
  std::mt19937_64 rng;
  log_limiter limiter;

  // persistence pipeline: one job in flight, the next one accumulating
  bool write_in_flight = false;
  std::int64_t write_started_ms = 0;
  std::deque<storage_job> queued;                       // in order; the last one may still grow
  std::deque<std::vector<message>> after_persist;       // messages of each queued job
  std::vector<message> in_flight_after_persist;
  bool stall_reported = false;
  // Set while the storage actor cannot write for want of space (it retries
  // the write in flight): leadership held (core), no new entries accepted.
  std::optional<error> storage_error;
  std::int64_t storage_failed_ms = 0;

  index_t applied;
  index_t last_snapshot;
  std::map<std::uint64_t, proposal_wait> proposals;  // by log index
  std::map<std::uint64_t, read_wait> reads;          // by read id
  std::uint64_t next_read_id = 1;
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

  // Whether the message being handled comes from this process. The actor's
  // port is public: timer, control and subscription messages from elsewhere
  // are dropped (peers and clients speak peer_atom, forward_atom,
  // client_atom and auth_atom, which carry their own checks).
  bool from_here() const {
    auto sender = self->current_sender();
    return sender && sender->node() == self->node();
  }

  void tell_role(const caf::actor& to) {
    self->send(to, role_atom::value, raft->role() == role::leader, raft->term().value, raft->leader().value);
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
    authenticated.erase(dm.source);
    challenges.erase(dm.source);
    if (auto it = client_sessions.find(dm.source); it != client_sessions.end()) {
      log_line("{}: a client connection carrying {} session(s) broke", name, it->second.size());
      for (auto session : it->second) {
        session_connection.erase(session);
        if (service && raft->role() == role::leader) {
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
        raft->peer_connection_lost(id);
        fail_passed_on_if([&](node_id l) { return l == id; });
        retry(id);
        schedule_flush();
      }
    }
  }

  void send(const message& m) {
    if (drop_to.count(m.to)) return;
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
    if (drop_from.count(decoded->from) || decoded->to != opts.raft.id) return;
    if (auto it = links.find(decoded->from); it != links.end()) it->second.backoff_ms = 0;
    raft->step(*decoded);
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
    while (raft->has_ready()) {
      auto r = raft->take_ready();
      if (r.role) report_role(*r.role);
      for (const auto& m : r.messages) send(m);
      if (r.snapshot && r.snapshot_from_leader) {
        machine->restore(*r.snapshot->data);
        applied = last_snapshot = r.snapshot->meta.last_index;
        log_line("{}: installed a snapshot at {} from the leader", name, applied.value);
        fail_proposals_upto(applied, "outcome unknown: a snapshot replaced the log here");
      }
      for (const auto& e : r.committed) apply(e);
      if (service && (!r.committed.empty() || (r.snapshot && r.snapshot_from_leader))) {
        service->on_applied(static_cast<std::uint64_t>(steady_now_ms()));
      }
      for (const auto& rs : r.reads) {
        auto it = reads.find(rs.id);
        if (it != reads.end()) it->second.index = rs.index;
      }
      for (auto id : r.failed_reads) {
        auto it = reads.find(id);
        if (it == reads.end()) continue;
        it->second.promise.deliver(wire::encode_response(failure(errc::not_leader, "lost leadership before the read was confirmed")));
        reads.erase(it);
      }
      serve_reads();
      if (r.persist_id != 0) enqueue(std::move(r));
      maybe_snapshot();
    }
    sync_links();
    start_write();
  }

  void report_role(const ready::role_change& rc) {
    // The core reports a role_change only when role, term or leader changed.
    bool leading = rc.role == role::leader;
    if (service && leading != (last_role.role == role::leader)) {
      service->on_role(leading, static_cast<std::uint64_t>(steady_now_ms()));
    }
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

  void enqueue(ready r) {
    // Group commit: a ready joins the last queued job unless that one is
    // already on disk's way or either carries a snapshot or compaction.
    bool simple = !r.snapshot && !r.compact;
    bool can_merge = !queued.empty() && simple && !queued.back().snapshot && !queued.back().compact;
    if (!can_merge) {
      queued.emplace_back();
      after_persist.emplace_back();
    }
    auto& job = queued.back();
    auto& msgs = after_persist.back();
    if (r.snapshot) {
      job.snapshot = std::move(r.snapshot);
      job.snapshot_from_leader = r.snapshot_from_leader;
    }
    if (r.compact) job.compact = r.compact;
    if (r.truncate_from) {
      auto from = *r.truncate_from;
      auto& entries = job.batch.entries;
      if (!entries.empty() && from > entries.front().index) {
        // The truncation cuts into entries not yet written: drop them here.
        while (!entries.empty() && entries.back().index >= from) entries.pop_back();
      } else {
        entries.clear();
        if (!job.batch.truncate_from || from < *job.batch.truncate_from) job.batch.truncate_from = from;
      }
    }
    for (auto& e : r.entries) job.batch.entries.push_back(std::move(e));
    if (r.state) job.batch.state = r.state;
    job.persist_id = r.persist_id;
    for (auto& m : r.messages_after_persist) msgs.push_back(std::move(m));
  }

  void start_write() {
    if (write_in_flight || queued.empty()) return;
    auto job = std::move(queued.front());
    queued.pop_front();
    in_flight_after_persist = std::move(after_persist.front());
    after_persist.pop_front();
    write_in_flight = true;
    write_started_ms = steady_now_ms();
    self->request(storage, caf::infinite, write_atom::value, std::move(job))
        .then([this](persisted_atom, std::uint64_t done, const std::string& err) {
          write_in_flight = false;
          if (storage_error && err.empty()) {
            log_line("{}: storage is writing again after {} ms without space; writes accepted again", name,
                     steady_now_ms() - storage_failed_ms);
            storage_error.reset();
            raft->hold_leadership(false);
          } else if (stall_reported) {
            log_line("{}: storage is writing again", name);
          }
          stall_reported = false;
          if (!err.empty()) {
            // The write did not happen; nothing it promised may be sent.
            log_line("{}: storage write failed: {}; stepping down and stopping", name, err);
            (void)raft->step_down();
            self->quit(caf::exit_reason::user_shutdown);
            return;
          }
          for (const auto& m : in_flight_after_persist) send(m);
          in_flight_after_persist.clear();
          raft->persisted(done);
          schedule_flush();
          start_write();
        });
  }

  // The disk (or the LMDB map) is full: the storage actor keeps the write and
  // tries it again. Until it succeeds this server cannot make anything
  // durable, so it must not lead (its entries could not count towards a
  // majority, and clients would wait on it) and refuses new entries with the
  // error; as a follower it cannot ack or vote either (those messages wait
  // for the write), so the others carry on without it. Nothing acknowledged
  // depended on the failed write: acks and votes follow durability.
  void on_storage_failed(errc code, const std::string& detail) {
    if (!storage_error) storage_failed_ms = steady_now_ms();
    storage_error = make_error(code, detail);
    log_line("{}: storage write failed: {}; refusing writes and not leading until space returns (retrying every {} "
             "ms)",
             name, storage_error->message(), storage_retry_ms);
    if (raft->role() == role::leader) log_line("{}: stepping down: cannot write to disk", name);
    raft->hold_leadership(true);
    schedule_flush();
  }

  // --- state machine ------------------------------------------------------------

  void apply(const log_entry& e) {
    std::string result;
    if (e.kind == entry_kind::command) result = machine->apply(e);
    applied = e.index;
    auto it = proposals.find(e.index.value);
    if (it == proposals.end()) return;
    if (it->second.term == e.term) {
      it->second.promise.deliver(wire::encode_response(client::committed{e.index.value, e.term.value, result}));
    } else {
      it->second.promise.deliver(wire::encode_response(
          failure(errc::not_leader, "lost: another leader's entry took index " + std::to_string(e.index.value))));
    }
    proposals.erase(it);
  }

  void fail_proposals_upto(index_t upto, const std::string& why) {
    while (!proposals.empty() && proposals.begin()->first <= upto.value) {
      proposals.begin()->second.promise.deliver(wire::encode_response(failure(errc::outcome_unknown, why)));
      proposals.erase(proposals.begin());
    }
  }

  void serve_reads() {
    for (auto it = reads.begin(); it != reads.end();) {
      if (it->second.index && *it->second.index <= applied) {
        auto& w = it->second;
        w.promise.deliver(w.keepalive ? answer_keepalive(*w.keepalive, w.sender, true)
                                      : wire::encode_response(client::read_result{applied.value, machine->query(w.query)}));
        it = reads.erase(it);
      } else {
        ++it;
      }
    }
  }

  void maybe_snapshot() {
    if (applied.value < last_snapshot.value + opts.snapshot_every_entries) return;
    raft->snapshot_taken(applied, std::make_shared<const std::string>(machine->snapshot()));
    last_snapshot = applied;
  }

  // --- clients --------------------------------------------------------------------

  client::failure failure(errc code, const std::string& detail) {
    client::failure f{client::code_name(code), make_error(code, detail).message(), 0, {}};
    auto leader = raft->leader();
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
      if (auto refused = refuse_new_entries()) return wire::encode_response(*refused);
    }
    if (traits.passed_to_leader && !forwarded && raft->role() != role::leader && raft->leader() != no_node) {
      auto it = links.find(raft->leader());
      if (it != links.end() && it->second.handle) {
        return pass_on(raft->leader(), it->second.handle, bytes, traits.changes_state);
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

  // New entries need this server's disk.
  std::optional<client::failure> refuse_new_entries() {
    if (!storage_error) return std::nullopt;
    return failure(storage_error->code, "this master cannot write to its disk (" + storage_error->detail +
                                            "); ask another master, or retry once space returns");
  }

  caf::result<std::string> handle(client::propose& p) {
    auto id = raft->propose(std::move(p.command));
    if (!id) return wire::encode_response(failure(id.error().code, id.error().detail));
    auto promise = self->make_response_promise();
    proposals[id->index.value] = proposal_wait{id->term, promise};
    schedule_flush();
    return promise;
  }

  caf::result<std::string> handle(client::read& r) {
    auto id = next_read_id++;
    auto ok = raft->read_index(id);
    if (!ok) return wire::encode_response(failure(ok.error().code, ok.error().detail));
    auto promise = self->make_response_promise();
    reads[id] = read_wait{std::move(r.query), promise, std::nullopt, std::nullopt, nullptr};
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
    auto id = raft->propose_membership(change);
    if (!id) return wire::encode_response(failure(id.error().code, id.error().detail));
    auto promise = self->make_response_promise();
    proposals[id->index.value] = proposal_wait{id->term, promise};
    schedule_flush();
    return promise;
  }

  // Servers added by membership changes get a link like the founders'.
  void sync_links() {
    for (const auto& s : raft->current_configuration().servers) {
      if (s.id == opts.raft.id || links.count(s.id)) continue;
      auto ep = parse_endpoint(s.address, "configuration");
      if (!ep) continue;
      links[s.id].address = *ep;
      log_line("{}: node {} at {} joined the configuration", name, s.id.value, ep->text());
      connect(s.id);
    }
  }

  caf::result<std::string> handle(client::stale_read& r) {
    return wire::encode_response(client::read_result{applied.value, machine->query(r.query)});
  }

  caf::result<std::string> handle(client::status_request&) {
    client::status s;
    s.id = opts.raft.id.value;
    s.role = to_string(raft->role());
    s.term = raft->term().value;
    s.leader_id = raft->leader().value;
    if (auto it = opts.members.find(raft->leader()); it != opts.members.end()) s.leader_address = it->second.text();
    s.commit_index = raft->log().commit_index().value;
    s.applied_index = applied.value;
    s.last_index = raft->log().last_index().value;
    s.digest = machine->digest();
    if (storage_error) s.storage_error = storage_error->message();
    return wire::encode_response(s);
  }

  caf::result<std::string> handle(client::transfer_leadership& t) {
    auto target = t.target ? std::optional<node_id>(node_id{t.target}) : raft->best_transfer_target();
    if (!target) return wire::encode_response(failure(errc::unavailable, "no voter to transfer to"));
    auto ok = raft->transfer_leadership(*target);
    if (!ok) return wire::encode_response(failure(ok.error().code, ok.error().detail));
    schedule_flush();
    return wire::encode_response(client::ok{});
  }

  caf::result<std::string> handle(client::set_faults& f) {
    drop_to = std::set<node_id>();
    drop_from = std::set<node_id>();
    for (auto id : f.drop_to) drop_to.insert(node_id{id});
    for (auto id : f.drop_from) drop_from.insert(node_id{id});
    log_line("{}: fault hook: dropping traffic to {} peer(s), from {} peer(s)", name, drop_to.size(), drop_from.size());
    return wire::encode_response(client::ok{});
  }

  caf::result<std::string> handle(client::keepalive& k) {
    if (raft->role() != role::leader) return wire::encode_response(failure(errc::not_leader, "heartbeats go to the leader"));
    if (!service) return wire::encode_response(failure(errc::not_found, "no session " + std::to_string(k.session)));
    auto sender = self->current_sender();
    if (service->on_keepalive(k.session, k.payload, static_cast<std::uint64_t>(steady_now_ms()))) {
      return answer_keepalive(k, sender, false);
    }
    // "No such session" ends the client's session for good, so it is said
    // only as a linearizable read would be: this server may not have applied
    // its predecessor's last entries yet, or may be deposed without knowing
    // it. ReadIndex (thesis 6.4) confirms leadership and the applied state.
    auto id = next_read_id++;
    auto ok = raft->read_index(id);
    if (!ok) return wire::encode_response(failure(ok.error().code, ok.error().detail));
    auto promise = self->make_response_promise();
    read_wait w{std::string(), promise, std::nullopt, k, sender};
    reads.emplace(id, std::move(w));
    schedule_flush();
    return promise;
  }

  // A heartbeat's answer; `confirmed`: the registry is as of a confirmed read.
  std::string answer_keepalive(const client::keepalive& k, const caf::strong_actor_ptr& sender, bool confirmed) {
    if (confirmed && !(raft->role() == role::leader && service &&
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
    stall_until_ms->store(s.ms ? steady_now_ms() + s.ms : 0);
    log_line("{}: fault hook: storage stalled for {} ms", name, s.ms);
    return wire::encode_response(client::ok{});
  }

  // --- time -------------------------------------------------------------------------

  void on_tick() {
    raft->tick();
    auto now = steady_now_ms();
    if (service && raft->role() == role::leader) {
      // A refused proposal (transferring, busy) is not lost: the service
      // proposes again whatever the state machine still lacks.
      for (auto& command : service->on_tick(static_cast<std::uint64_t>(now))) (void)raft->propose(std::move(command));
    }
    // A leader whose disk stopped finishing writes must not keep leading:
    // its own entries cannot become durable and clients wait on it.
    auto stall_ms = opts.storage_stall_ms > 0 ? opts.storage_stall_ms
                                              : opts.raft.election_timeout_min_ticks * opts.tick_ms;
    if (write_in_flight && now - write_started_ms > stall_ms) {
      if (!stall_reported && !storage_error) {
        log_line("{}: storage has not finished a write for {} ms", name, now - write_started_ms);
        stall_reported = true;
      }
      if (raft->role() == role::leader) {
        log_line("{}: stepping down: storage stalled", name);
        (void)raft->step_down();
      }
    }
    if (service && ++ticks_since_prune * opts.tick_ms >= 1000) prune_client_sessions();
    if (stopping) continue_stop(now);
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
    bool handed_over = raft->role() != role::leader;
    // A write waiting for space is abandoned: nothing acknowledged needs it.
    bool writes_done = (!write_in_flight && queued.empty()) || storage_error;
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
    if (raft->role() == role::leader) {
      if (auto target = raft->best_transfer_target()) {
        log_line("{}: shutting down: handing leadership to node {}", name, target->value);
        (void)raft->transfer_leadership(*target);
      } else {
        stop_deadline_ms = steady_now_ms();  // nobody to hand over to: do not wait
      }
    }
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
  st->storage = setup->storage;
  st->stall_until_ms = setup->stall_until_ms;
  st->name = "node " + std::to_string(st->opts.raft.id.value);
  st->rng.seed(st->opts.raft.seed ^ static_cast<std::uint64_t>(steady_now_ms()));
  st->applied = st->last_snapshot =
      setup->durable.snapshot ? setup->durable.snapshot->meta.last_index : index_t{0};
  configuration bootstrap;  // empty for a joining server: it waits to be added
  if (!st->opts.join) {
    for (const auto& [id, ep] : st->opts.members) bootstrap.servers.push_back({id, ep.text(), suffrage::voter});
  }
  st->raft = std::make_unique<core>(st->opts.raft, std::move(setup->durable), bootstrap);
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
      [st](auth_atom, const std::string& proof) { return st->on_auth_proof(proof); },
      [st](tick_atom) {
        if (st->from_here()) st->on_tick();
      },
      [st](storage_failed_atom, std::uint32_t code, const std::string& detail) {
        // Only from our own storage actor (this actor's port is public).
        if (st->self->current_sender() != caf::actor_cast<caf::strong_actor_ptr>(st->storage)) return;
        st->on_storage_failed(static_cast<errc>(code), detail);
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
