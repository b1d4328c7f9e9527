#include "roles/node.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
#include "actors/registry/registry_machine.hpp"
#include "actors/registry/registry_push.hpp"
#include "actors/registry/registry_service.hpp"
#include "roles/etcd_api.hpp"
#include "roles/etcd_gateway.hpp"
#include "roles/force_new_cluster.hpp"
#include "roles/health_endpoint.hpp"
#include "roles/http_listener.hpp"
#include "roles/local_caller.hpp"
#include "roles/member_agent.hpp"
#include "roles/metrics_endpoint.hpp"
#include "roles/push_client.hpp"
#include "roles/raft_client.hpp"
#include "roles/registry_reads.hpp"
#include "roles/server.hpp"
#include "roles/status_page.hpp"
#include "schema/registry_codec.hpp"

namespace conclave {

using namespace std::chrono_literals;

struct node::impl {
  caf::actor_system& sys;
  node_config cfg;
  raft::gateway_interface gateway;
  raft::peer_interface peer;
  caf::actor role_listener;
  std::atomic<bool> stop{false};
  std::atomic<int> agent_exit{0};
  std::atomic<std::uint64_t> session{0};
  // Callers waiting on this node's state (its session, a pushed lock grant,
  // stopping) wait on `changed`; whoever changes that state notifies it.
  std::mutex state_mutex;
  std::condition_variable changed;
  void notify() {
    { std::lock_guard<std::mutex> guard(state_mutex); }
    changed.notify_all();
  }
  std::thread agent;
  // Watches, lock waits and member listeners: pushed by a master.
  std::unique_ptr<push_client> push;
  local_master local;  // masters: their own peer, reached in-process
  // Blocking calls share raft_clients, one call per client at a time: a call
  // takes the idle client returned last (it knows the leader) or creates one,
  // up to `parallel-calls`; beyond that it waits until one is returned.
  std::mutex pool_mutex;
  std::condition_variable pool_returned;
  std::vector<std::unique_ptr<raft_client>> idle;
  std::size_t clients = 0;
  std::atomic<bool> leading{false};
  std::atomic<bool> peer_failed{false};
  bool stopping_peer = false;
  std::atomic<std::uint64_t> term{0};
  std::mutex callbacks_mutex;
  std::function<void(std::uint64_t)> on_start;
  std::function<void()> on_stop;
  std::function<void(std::uint64_t, std::uint64_t)> on_leader;
  std::atomic<std::uint64_t> last_leader{0};
  std::mutex commands_mutex;  // guards handing_over
  bool handing_over = false;  // a commands() call is handing commands over
  std::uint64_t accepted_term = 0, accepted_token = 0;  // the newest command accepted
  std::uint64_t handled_seq = 0;  // every event up to this seq has been run or skipped by commands()
  std::unique_ptr<local_caller> caller;  // masters with client-listen: the etcd API's calls to this master
  std::unique_ptr<etcd::server> etcd;  // masters with client-listen: etcd's v3 API
  std::unique_ptr<push_client> etcd_push;  // its watches (their own delivery thread: a slow stream delays no member push)
  std::unique_ptr<etcd::gateway> json_gateway;  // masters with http-listen and client-listen: etcd's JSON gateway onto `etcd`
  std::unique_ptr<http_listener> http;          // masters with http-listen: status page, metrics, health, JSON gateway
  std::unique_ptr<status_feed> status;          // masters with http-listen: the status page's snapshots
  std::unique_ptr<push_client> status_push;     // ... woken by this master's registry pushes
  std::shared_ptr<metrics::sink> stats = std::make_shared<metrics::sink>();  // masters: what the server measures

  explicit impl(caf::actor_system& s) : sys(s) {}

  // A client taken from the pool for one call.
  struct lease {
    impl& owner;
    std::unique_ptr<raft_client> client;
    raft_client* operator->() { return client.get(); }
    ~lease() {
      {
        std::lock_guard<std::mutex> guard(owner.pool_mutex);
        owner.idle.push_back(std::move(client));
      }
      owner.pool_returned.notify_one();
    }
  };

  lease take() {
    {
      std::unique_lock<std::mutex> guard(pool_mutex);
      pool_returned.wait(guard, [&] { return !idle.empty() || clients < cfg.parallel_calls; });
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return lease{*this, std::move(c)};
      }
      ++clients;
    }
    auto c = std::make_unique<raft_client>(sys, cfg.agent.cluster_id, cfg.agent.masters);
    c->set_keys(cfg.agent.keys);
    c->set_local(local);
    return lease{*this, std::move(c)};
  }

  // A registry query through a pooled client: linearizable, or with
  // `stale` from the first master that answers.
  template <class Q>
  expected<typename Q::result> ask(const Q& q, bool stale) {
    auto client = take();
    // Stale: up to 2 s for each master in turn.
    auto deadline = stale ? std::chrono::milliseconds(2000 * cfg.agent.masters.size()) : std::chrono::milliseconds(10s);
    return conclave::ask(*client.client, q, deadline, stale);
  }

  expected<registry::outcome> run(const registry::command& c) {
    auto client = take();
    auto r = client->propose(wire::encode_command(c), 10s);
    if (!r) return r.error();
    auto res = wire::decode_result(r->result);
    if (!res) return res.error();
    return res->outcome;
  }
};

node::node(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

namespace {

// The status page's feed: this master's status in-process, the other
// masters' over the network, the registry as applied here; woken by the
// pushes this master sends (every key change, member changes, and the
// watch's progress each second) and by role changes.
void start_status_page(node::impl& n) {
  status_feed::sources src;
  src.self = n.cfg.raft.raft.id.value;
  src.self_at = n.local.at;
  auto* raw = &n;
  src.status_of = [raw](const raft::endpoint& at) {
    auto client = raw->take();
    return client->status(at);
  };
  src.registry = [raw]() -> expected<registry::state_result> {
    auto client = raw->take();
    return ask_at(*client.client, raw->local.at, registry::state_query{true}, true, 2s);
  };
  src.failed = [raw] { return raw->peer_failed.load(); };
  {
    // The role listener calls the feed under callbacks_mutex.
    std::lock_guard<std::mutex> guard(n.callbacks_mutex);
    n.status = std::make_unique<status_feed>(std::move(src));
    if (n.last_leader) n.status->on_role(n.term, n.last_leader);
  }
  const auto& masters = n.cfg.agent.masters;
  auto here = std::find_if(masters.begin(), masters.end(),
                           [&](const raft::endpoint& m) { return m.text() == n.local.at.text(); }) -
              masters.begin();
  if (here == static_cast<std::ptrdiff_t>(masters.size())) here = 0;
  n.status_push = std::make_unique<push_client>(n.sys, n.cfg.agent.cluster_id, masters, n.cfg.agent.keys,
                                                static_cast<std::size_t>(here), n.local);
  auto* feed = n.status.get();
  n.status_push->subscribe([] { return registry::subscription{registry::watch_subscription{"", std::nullopt}}; },
                           [feed](const registry::push&) { feed->poke(); });
  n.status_push->subscribe([] { return registry::subscription{registry::members_subscription{}}; },
                           [feed](const registry::push&) { feed->poke(); });
}

}  // namespace

expected<std::unique_ptr<node>> node::start(caf::actor_system& sys, const settings& values) {
  auto cfg = parse_settings(values);
  if (!cfg) return cfg.error();
  // The log form is the process's: only a node given log-format changes it.
  if (values.count("log-format")) set_log_format(cfg->log);
  set_log_source(cfg->is_master() ? cfg->raft.raft.id.value : 0, cfg->agent.me.id);
  // The native links take their TLS from the actor system (use_peer_tls): the one the settings name.
  if (cfg->peer_tls.enabled() && (!sys.has_openssl_manager() || sys.config().openssl_certificate != cfg->peer_tls.cert)) {
    return make_error(errc::invalid_argument, "peer-cert-file: the actor system needs CAF's OpenSSL manager with "
                                              "these files (conclave::use_peer_tls)");
  }
  if (!cfg->peer_tls.enabled() && sys.has_openssl_manager()) {
    return make_error(errc::invalid_argument, "peer-cert-file: not set, but the actor system loaded CAF's OpenSSL "
                                              "manager (its links would all use TLS)");
  }
  auto p = std::make_unique<impl>(sys);
  p->cfg = *cfg;
  p->cfg.agent.on_session = [raw = p.get()](std::uint64_t s) {
    raw->session = s;
    raw->notify();
  };
  if (cfg->is_master()) {
    if (auto ok = check_identity(cfg->raft.data_dir, cfg->raft.cluster_id, cfg->raft.raft.id.value); !ok) {
      return ok.error();
    }
    if (cfg->force_new_cluster) {
      auto forced = force_new_cluster(cfg->raft);
      if (!forced) return make_error(forced.error().code, "force-new-cluster: " + forced.error().message());
      log_line("node {}: {}; add masters back with --join true and conclavectl add-master, and start this one "
               "without force-new-cluster from now on", cfg->raft.raft.id.value, *forced);
    }
    server_setup setup;
    setup.options = cfg->raft;
    setup.listen = cfg->listen;
    registry::limits limits;
    limits.history = cfg->watch_history;
    auto machine = std::make_shared<registry::registry_machine>(limits);
    registry::liveness_config live;
    live.suspect_after_ms = 3 * static_cast<std::uint64_t>(cfg->agent.heartbeat_ms);
    setup.machine = machine;
    setup.service = std::make_shared<registry::registry_service>(machine, live);
    setup.push = std::make_shared<registry::registry_push>(machine, cfg->raft.cluster_id);
    setup.stats = p->stats;
    auto started = start_server(sys, setup);
    if (!started) return started.error();
    p->gateway = started->gateway;
    p->peer = started->peer;
    // Role changes from the peer actor drive the leader-only callbacks.
    auto* raw = p.get();
    auto peer = p->peer;
    p->role_listener = sys.spawn([raw, peer](caf::event_based_actor* self) -> caf::behavior {
      self->monitor(peer);
      self->set_down_handler([raw](caf::down_msg&) {
        if (!raw->stop) {
          raw->peer_failed = true;
          raw->stats->server_stopped = true;
        }
      });
      return {[raw](role_atom, bool leading, std::uint64_t term, std::uint64_t leader) {
        bool was = raw->leading.exchange(leading);
        raw->term = term;
        std::lock_guard<std::mutex> guard(raw->callbacks_mutex);
        if (leader != raw->last_leader && raw->on_leader) raw->on_leader(leader, term);
        if (raw->status) raw->status->on_role(term, leader);
        raw->last_leader = leader;
        if (leading && !was && raw->on_start) raw->on_start(term);
        if (!leading && was && raw->on_stop) raw->on_stop();
      }};
    });
    // The peer actor tells the listener every role change.
    caf::send_as(p->role_listener, p->peer, subscribe_atom::value, p->role_listener);
    p->cfg.agent.known_leader = [raw] { return raw->last_leader.load(); };
    // Requests and subscriptions to this master stay in the process.
    p->local = local_master{cfg->raft.self(), caf::actor_cast<caf::actor>(p->gateway)};
    p->cfg.agent.local = p->local;
  }
  // Subscriptions go to one master; members spread over them by name.
  p->push = std::make_unique<push_client>(sys, cfg->agent.cluster_id, cfg->agent.masters, cfg->agent.keys,
                                          std::hash<std::string>{}(cfg->agent.me.id), p->local);
  auto* raw = p.get();
  std::unique_ptr<node> n(new node(std::move(p)));
  if (raw->cfg.client_listen) {
    // etcd's API: writes, reads and lease keepalives go through this master
    // without blocking a thread (local_caller; a follower passes them on to
    // the leader), serializable reads are answered here. Its rarer calls
    // (status, membership, leadership) use the pooled blocking clients.
    raw->caller = std::make_unique<local_caller>(sys, cfg->agent.cluster_id, raw->local, cfg->agent.keys);
    etcd::backend b;
    b.propose = [raw](const registry::command& c, std::chrono::milliseconds deadline,
                      std::function<void(expected<client::committed>)> done) {
      raw->caller->to_leader(client::propose{wire::encode_command(c)}, deadline,
                             [done = std::move(done)](expected<client::response> r) {
                               done(reply_as<client::committed>(std::move(r)));
                             });
    };
    b.read = [raw](const registry::query& q, bool serializable, std::chrono::milliseconds deadline,
                   std::function<void(expected<client::read_result>)> done) {
      auto finish = [done = std::move(done)](expected<client::response> r) {
        done(reply_as<client::read_result>(std::move(r)));
      };
      auto bytes = wire::encode_query(q);
      if (serializable) raw->caller->call(client::stale_read{std::move(bytes)}, deadline, std::move(finish));
      else raw->caller->to_leader(client::read{std::move(bytes)}, deadline, std::move(finish));
    };
    b.term = [raw] { return raw->term.load(); };
    b.status = [raw]() -> expected<client::status> {
      auto client = raw->take();
      return client->status(raw->local.at);
    };
    b.transfer = [raw](std::uint64_t server_id, std::chrono::milliseconds deadline) -> expected<void> {
      auto client = raw->take();
      auto r = client->to_leader(client::transfer_leadership{server_id}, deadline);
      if (!r) return r.error();
      if (auto* f = std::get_if<client::failure>(&*r)) return error_of(*f);
      return {};
    };
    b.keepalive = [raw](std::uint64_t id, std::chrono::milliseconds deadline, std::function<void(expected<bool>)> done) {
      raw->caller->to_leader(client::keepalive{id, {}, true}, deadline,
                             [done = std::move(done)](expected<client::response> r) {
                               if (!r) return done(r.error());
                               if (auto* f = std::get_if<client::failure>(&*r)) {
                                 if (f->code == client::code_name(errc::not_found)) return done(false);
                                 return done(error_of(*f));
                               }
                               done(true);
                             });
    };
    raw->etcd_push = std::make_unique<push_client>(sys, cfg->agent.cluster_id, cfg->agent.masters, cfg->agent.keys, 0,
                                                   raw->local);
    b.subscribe = [raw](std::function<registry::subscription()> resume,
                        std::function<void(const registry::push&)> on_push) {
      return raw->etcd_push->subscribe(std::move(resume), std::move(on_push));
    };
    b.unsubscribe = [raw](std::uint64_t id) { raw->etcd_push->unsubscribe(id); };
    b.change_membership = [raw](std::uint8_t kind, std::uint64_t id, const std::string& address,
                                std::chrono::milliseconds deadline) -> expected<void> {
      auto client = raw->take();
      auto r = client->to_leader(client::change_membership{kind, id, address}, deadline);
      if (!r) return r.error();
      if (auto* f = std::get_if<client::failure>(&*r)) return error_of(*f);
      return {};
    };
    b.disk_bytes = [dir = raw->cfg.raft.data_dir] {
      std::uint64_t total = 0;
      std::error_code ec;
      for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
           !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec)) total += it->file_size(ec);
      }
      return total;
    };
    b.cluster = raw->cfg.raft.cluster_id;
    b.stats = raw->stats;
    b.keys = raw->cfg.agent.keys;
    const auto& cluster = raw->cfg.raft.cluster_id;
    auto s = etcd::server::start(*raw->cfg.client_listen, etcd::cluster_number(cluster),
                                 etcd::member_number(cluster, raw->cfg.raft.raft.id.value), std::move(b),
                                 raw->cfg.client_tls);
    if (!s) return s.error();  // n stops what started
    raw->etcd = std::move(*s);
    raw->cfg.agent.me.labels[etcd::server_id_label] = std::to_string(raw->cfg.raft.raft.id.value);
    raw->cfg.agent.me.labels[etcd::client_url_label] =
        (raw->cfg.client_tls.enabled() ? "https://" : "http://") + raw->cfg.client_listen->host + ":" + std::to_string(raw->etcd->port());
    log_line("node {}: etcd API listening on {}:{}", raw->cfg.raft.raft.id.value, raw->cfg.client_listen->host,
             raw->etcd->port());
  }
  if (raw->cfg.http_listen) {
    std::vector<http_listener::routes> routes{metrics_routes(raw->stats), health_routes(raw->stats)};
    if (raw->etcd) {
      raw->json_gateway = std::make_unique<etcd::gateway>(raw->etcd->in_process_channel());
      routes.push_back(raw->json_gateway->routes());
    }
    start_status_page(*raw);
    routes.push_back(status_routes(*raw->status));
    auto h = http_listener::start(*raw->cfg.http_listen, routes, raw->cfg.client_tls);
    if (!h) return h.error();
    raw->http = std::move(*h);
    log_line("node {}: HTTP listening on {}:{}", raw->cfg.raft.raft.id.value, raw->cfg.http_listen->host,
             raw->http->port());
  }
  // The member registers once its listeners are up: their addresses are in its labels.
  raw->agent = std::thread([raw] { run_member_agent(raw->sys, raw->cfg.agent, raw->stop, raw->agent_exit); });
  return n;
}

node::~node() {
  impl_->stop = true;
  impl_->notify();
  // The JSON gateway's calls go to the etcd API: its streams end first, and the
  // listener waits for its requests to end.
  if (impl_->json_gateway) impl_->json_gateway->stop();
  if (impl_->status) impl_->status->stop();
  impl_->http.reset();
  impl_->json_gateway.reset();
  impl_->status_push.reset();
  {
    // Out of the role listener's reach first; its thread ends outside the lock.
    std::unique_ptr<status_feed> feed;
    {
      std::lock_guard<std::mutex> guard(impl_->callbacks_mutex);
      feed = std::move(impl_->status);
    }
  }
  impl_->etcd.reset();  // its requests use the pool, the caller and the master: they end first
  impl_->caller.reset();
  impl_->etcd_push.reset();
  // Leadership first (a quick handover), then the member leaves.
  if (impl_->peer) stop_server(impl_->sys, server_handles{impl_->gateway, impl_->peer});
  if (impl_->agent.joinable()) impl_->agent.join();
  impl_->push.reset();  // no watch or listener callback runs after this
  // The role listener uses impl_: it is gone before impl_ is.
  if (impl_->role_listener) {
    caf::scoped_actor self{impl_->sys};
    self->monitor(impl_->role_listener);
    self->send_exit(impl_->role_listener, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {});
    impl_->role_listener = nullptr;
  }
}

const std::string& node::member_id() const { return impl_->cfg.agent.me.id; }
bool node::is_master() const { return impl_->cfg.is_master(); }
raft::gateway_interface node::gateway() const { return impl_->gateway; }
int node::exit_code() const { return impl_->agent_exit.load(); }
bool node::failed() const { return impl_->peer_failed.load(); }
bool node::leading() const { return impl_->leading; }
std::uint64_t node::term() const { return impl_->term; }
registry::session_id node::session() const { return impl_->session.load(); }

void node::on_leadership(std::function<void(std::uint64_t)> start, std::function<void()> stop) {
  std::lock_guard<std::mutex> guard(impl_->callbacks_mutex);
  impl_->on_start = std::move(start);
  impl_->on_stop = std::move(stop);
  if (impl_->leading && impl_->on_start) impl_->on_start(impl_->term);
}

expected<std::vector<registry::member>> node::members(std::optional<registry::member_status> only, bool stale) {
  auto r = impl_->ask(registry::members_query{only}, stale);
  if (!r) return r.error();
  return std::move(r->members);
}

expected<std::optional<registry::key_value>> node::get(const std::string& key, bool stale) {
  auto r = impl_->ask(registry::get_key{key}, stale);
  if (!r) return r.error();
  return std::move(r->value);
}

expected<std::vector<std::pair<std::string, registry::key_value>>> node::list(const std::string& prefix, bool stale) {
  auto r = impl_->ask(registry::list_prefix{prefix}, stale);
  if (!r) return r.error();
  return std::move(r->keys);
}

expected<registry::outcome> node::put(const std::string& key, const std::string& value,
                                      std::optional<std::uint64_t> if_version, bool ephemeral) {
  return impl_->run(registry::put{key, value, ephemeral ? session() : 0, if_version});
}

expected<registry::outcome> node::remove(const std::string& key, std::optional<std::uint64_t> if_version) {
  return impl_->run(registry::remove_key{key, if_version});
}

expected<std::optional<std::vector<registry::change>>> node::changes(registry::revision after,
                                                                    const std::string& prefix) {
  auto r = impl_->ask(registry::changes_query{after, prefix}, false);
  if (!r) return r.error();
  if (r->compacted) return std::optional<std::vector<registry::change>>();
  return std::optional<std::vector<registry::change>>(std::move(r->changes));
}

void node::watch(const std::string& prefix, std::function<void(const registry::change&)> on_change,
                 std::function<void(const registry::watch_listing&)> on_compacted,
                 std::optional<registry::revision> after) {
  assert(on_change);
  assert(on_compacted);
  // Touched only on the push client's thread (handler and resume run there).
  auto cursor = std::make_shared<registry::watch_cursor>(prefix, after);
  impl_->push->subscribe([cursor] { return registry::subscription{cursor->subscription()}; },
                         [cursor, on_change, on_compacted](const registry::push& p) {
                           cursor->take(p, on_change, on_compacted);
                         });
}

expected<node::lock_grant> node::lock(const std::string& name, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  {
    // The member agent registers (and tells us) on its own.
    std::unique_lock<std::mutex> guard(impl_->state_mutex);
    if (!impl_->changed.wait_until(guard, until, [&] { return session() != 0 || impl_->stop; })) {
      return make_error(errc::unavailable, "not registered yet");
    }
  }
  auto s = session();
  if (s == 0) return make_error(errc::unavailable, "the node is stopping");
  auto session_ended = [&] {
    return make_error(errc::unavailable, "the member's session ended while it waited for lock '" + name + "'");
  };
  // Once an acquire's outcome is unknown, it may still commit later: the
  // acquire is sent again, whatever the error, until one commits (acquiring is
  // idempotent, and a committed resend settles every earlier attempt in the
  // log) or the server refuses it for good. Then the call knows what it holds.
  auto o = impl_->run(registry::acquire_lock{name, s, true});
  bool unknown = false;
  auto unsettled = [](errc code) {
    return code == errc::outcome_unknown || code == errc::unavailable || code == errc::disk_full ||
           code == errc::map_full;
  };
  while (!o && !impl_->stop && unsettled(o.error().code) && (unknown || o.error().code == errc::outcome_unknown)) {
    unknown = true;
    if (session() != s) return session_ended();
    if (o.error().code != errc::outcome_unknown) std::this_thread::sleep_for(20ms);  // no leader yet
    o = impl_->run(registry::acquire_lock{name, s, true});
  }
  if (!o) return o.error();
  if (o->code == registry::code::ok) return lock_grant{name, o->value};
  if (o->code != registry::code::queued) {
    return make_error(errc::unavailable, std::string(registry::to_string(o->code)) + ": " + o->detail);
  }
  // Queued: the master pushes the grant (or the end of the wait) when it
  // applies it.
  auto w = std::make_shared<std::optional<registry::push>>();  // guarded by state_mutex
  auto* state = impl_.get();
  auto queued_at = o->value;
  auto sub = impl_->push->subscribe(
      [name, s, queued_at] { return registry::subscription{registry::lock_subscription{name, s, queued_at}}; },
                                    [w, state](const registry::push& p) {
                                      if (p.kind != registry::push_kind::granted && p.kind != registry::push_kind::gone) {
                                        return;
                                      }
                                      {
                                        std::lock_guard<std::mutex> guard(state->state_mutex);
                                        if (!*w) *w = p;
                                      }
                                      state->changed.notify_all();
                                    });
  std::optional<registry::push> outcome;
  {
    // Woken by the push, by the end of the member's session, or by stopping.
    std::unique_lock<std::mutex> guard(impl_->state_mutex);
    impl_->changed.wait_until(guard, until, [&] { return w->has_value() || impl_->stop || session() != s; });
    outcome = *w;
  }
  impl_->push->unsubscribe(sub);
  if (outcome && outcome->kind == registry::push_kind::granted) {
    return lock_grant{name, outcome->state.locks.at(name).token};
  }
  if (session() != s) return session_ended();
  if (outcome) return make_error(errc::unavailable, "no longer waiting for lock '" + name + "'");
  // Timed out (or stopping): cancel the wait until the registry shows this
  // session neither holding nor waiting (a cancel may cross a grant: then
  // the grant is returned).
  for (;;) {
    auto cancelled = impl_->run(registry::cancel_lock_wait{name, s});
    auto r = impl_->ask(registry::lock_query{name}, false);
    if (!cancelled || !r) {
      if (impl_->stop) return make_error(errc::unavailable, "the node is stopping");  // the session closes with it
      if (session() != s) return session_ended();
      std::this_thread::sleep_for(20ms);  // no leader: ask again
      continue;
    }
    const auto& l = r->value;
    if (l && l->holder == s) return lock_grant{name, l->token};
    bool waiting = l && std::find(l->waiters.begin(), l->waiters.end(), s) != l->waiters.end();
    if (!waiting) return make_error(errc::unavailable, "timed out waiting for lock '" + name + "'");
  }
}

expected<void> node::unlock(const std::string& name) {
  auto o = impl_->run(registry::release_lock{name, session()});
  if (!o) return o.error();
  if (o->code != registry::code::ok) return make_error(errc::invalid_argument, o->detail);
  return {};
}

expected<std::uint64_t> node::publish(const std::string& payload, const std::string& to) {
  auto o = impl_->run(registry::publish_event{member_id(), to, payload});
  if (!o) return o.error();
  if (o->code == registry::code::full) return make_error(errc::resource_exhausted, "full: " + o->detail);
  if (o->code != registry::code::ok) return make_error(errc::invalid_argument, o->detail);
  return o->value;
}

expected<std::vector<registry::event>> node::events() {
  auto r = impl_->ask(registry::events_query{member_id()}, false);
  if (!r) return r.error();
  return std::move(r->events);
}

expected<void> node::ack_events(std::uint64_t upto) {
  auto o = impl_->run(registry::ack_events{member_id(), upto});
  if (!o) return o.error();
  return {};
}

expected<std::uint64_t> node::send_command(const std::string& to, const std::string& payload, std::uint64_t term,
                                           std::uint64_t token) {
  return publish("fenced " + std::to_string(term) + " " + std::to_string(token) + "\n" + payload, to);
}

expected<std::size_t> node::commands(const std::function<bool(const command&)>& run) {
  auto& p = *impl_;
  // One call hands commands over at a time; another call meanwhile (another
  // thread, or `run` itself) returns 0 at once. `run` is called without a
  // lock held, and the fields below are touched only by the call handing over.
  {
    std::lock_guard<std::mutex> guard(p.commands_mutex);
    if (p.handing_over) return std::size_t{0};
    p.handing_over = true;
  }
  struct done_guard {
    impl& p;
    ~done_guard() {
      std::lock_guard<std::mutex> guard(p.commands_mutex);
      p.handing_over = false;
    }
  } done{p};
  auto pending = events();
  if (!pending) return pending.error();
  std::size_t ran = 0;
  for (const auto& e : *pending) {
    // Run already (its acknowledgement failed): not again (#12).
    if (e.seq <= p.handled_seq) continue;
    if (e.payload.rfind("fenced ", 0) == 0) {
      auto nl = e.payload.find('\n');
      command c;
      c.seq = e.seq;
      std::sscanf(e.payload.c_str() + 7, "%llu %llu", reinterpret_cast<unsigned long long*>(&c.term),
                  reinterpret_cast<unsigned long long*>(&c.token));
      c.payload = nl == std::string::npos ? std::string() : e.payload.substr(nl + 1);
      if (c.term < p.accepted_term || (c.term == p.accepted_term && c.token < p.accepted_token)) {
        log_warning("member {}: refusing a command from a deposed leader (term {}, token {} after term {}, token {})",
                    member_id(), c.term, c.token, p.accepted_term, p.accepted_token);
      } else {
        // Acknowledged only once run: a command is handed over at least once.
        if (!run(c)) break;
        ++ran;
        p.accepted_term = c.term;
        p.accepted_token = c.token;
      }
    }
    p.handled_seq = e.seq;
  }
  // Pending events come in seq order: acknowledge if the first is handled.
  // An acknowledgement that fails is sent with the next call's; the commands
  // ran all the same, so the call reports them, not the failure.
  if (!pending->empty() && pending->front().seq <= p.handled_seq) {
    if (auto ok = ack_events(p.handled_seq); !ok) {
      log_warning("member {}: acknowledging events up to {} failed ({}); the next call acknowledges them", member_id(),
                  p.handled_seq, ok.error().message());
    }
  }
  return ran;
}

void node::on_commands(std::function<bool(const command&)> run) {
  auto member = member_id();
  // The push says "there is something new"; commands() hands it over with
  // its rules (the pending events as of a linearizable read, acknowledged once run).
  impl_->push->subscribe([member] { return registry::subscription{registry::events_subscription{member, 0}}; },
                         [this, run](const registry::push& p) {
                           if (p.kind != registry::push_kind::events || impl_->stop) return;
                           if (auto ran = commands(run); !ran) {
                             log_warning("member {}: handing over pushed commands failed: {}", member_id(),
                                         ran.error().message());
                           }
                         });
}

void node::on_leader_change(std::function<void(std::uint64_t, std::uint64_t)> callback) {
  std::lock_guard<std::mutex> guard(impl_->callbacks_mutex);
  impl_->on_leader = std::move(callback);
  if (impl_->last_leader && impl_->on_leader) impl_->on_leader(impl_->last_leader, impl_->term);
}

void node::on_members(std::function<void(const std::vector<registry::member>&)> callback) {
  auto last = std::make_shared<std::string>();  // touched on the push client's thread only
  impl_->push->subscribe([] { return registry::subscription{registry::members_subscription{}}; },
                         [callback, last](const registry::push& p) {
                           if (p.kind != registry::push_kind::members) return;
                           std::vector<registry::member> list;
                           std::string digest;
                           for (const auto& [id, m] : p.state.members) {
                             list.push_back(m);
                             digest += m.id + ":" + registry::to_string(m.status) + ";";
                           }
                           // A new master after a move sends the list again: only changes count.
                           if (digest == *last) return;
                           *last = digest;
                           callback(list);
                         });
}

}  // namespace conclave
