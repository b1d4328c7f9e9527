#include "roles/node.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <mutex>
#include <thread>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
#include "actors/registry/registry_machine.hpp"
#include "actors/registry/registry_service.hpp"
#include "roles/member_agent.hpp"
#include "roles/raft_client.hpp"
#include "roles/server.hpp"
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
  std::shared_ptr<std::atomic<std::uint64_t>> session = std::make_shared<std::atomic<std::uint64_t>>(0);
  std::thread agent;
  std::mutex watchers_mutex;  // watch() and on_members() may be called from any thread
  std::vector<std::thread> watchers;
  std::mutex client_mutex;
  std::unique_ptr<raft_client> client;
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

  explicit impl(caf::actor_system& s) : sys(s) {}

  expected<registry::registry_state> binary_query(const std::string& q, bool stale) {
    std::lock_guard<std::mutex> guard(client_mutex);
    expected<client::read_result> r = make_error(errc::unavailable, "no endpoint answered");
    if (stale) {
      for (const auto& ep : client->endpoints()) {
        auto a = client->call(ep, client::stale_read{"bin:" + q}, 2000ms);
        if (a && std::holds_alternative<client::read_result>(*a)) {
          r = std::get<client::read_result>(*a);
          break;
        }
      }
    } else {
      r = client->read("bin:" + q, 10s);
    }
    if (!r) return r.error();
    return wire::decode_registry_snapshot(r->result);
  }

  expected<registry::outcome> run(const registry::command& c) {
    std::lock_guard<std::mutex> guard(client_mutex);
    auto r = client->propose(wire::encode_command(c), 10s);
    if (!r) return r.error();
    auto res = wire::decode_result(r->result);
    if (!res) return res.error();
    return res->outcome;
  }
};

node::node(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

expected<std::unique_ptr<node>> node::start(caf::actor_system& sys, const settings& values) {
  auto cfg = parse_settings(values);
  if (!cfg) return cfg.error();
  auto p = std::make_unique<impl>(sys);
  p->cfg = *cfg;
  p->cfg.agent.session_out = p->session;
  if (cfg->is_master()) {
    if (auto ok = check_identity(cfg->raft.data_dir, cfg->raft.cluster_id, cfg->raft.raft.id.value); !ok) {
      return ok.error();
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
        if (!raw->stop) raw->peer_failed = true;
      });
      return {[raw](role_atom, bool leading, std::uint64_t term, std::uint64_t leader) {
        bool was = raw->leading.exchange(leading);
        raw->term = term;
        std::lock_guard<std::mutex> guard(raw->callbacks_mutex);
        if (leader != raw->last_leader && raw->on_leader) raw->on_leader(leader, term);
        raw->last_leader = leader;
        if (leading && !was && raw->on_start) raw->on_start(term);
        if (!leading && was && raw->on_stop) raw->on_stop();
      }};
    });
    // The peer actor tells the listener every role change.
    caf::send_as(p->role_listener, p->peer, subscribe_atom::value, p->role_listener);
    p->cfg.agent.known_leader = [raw] { return raw->last_leader.load(); };
  }
  p->client = std::make_unique<raft_client>(sys, cfg->agent.cluster_id, cfg->agent.masters);
  p->client->set_keys(cfg->agent.keys);
  auto* raw = p.get();
  p->agent = std::thread([raw] { run_member_agent(raw->sys, raw->cfg.agent, raw->stop, raw->agent_exit); });
  return std::unique_ptr<node>(new node(std::move(p)));
}

node::~node() {
  impl_->stop = true;
  // Leadership first (a quick handover), then the member leaves.
  if (impl_->peer) stop_server(impl_->sys, impl_->peer);
  if (impl_->agent.joinable()) impl_->agent.join();
  std::vector<std::thread> watchers;
  {
    std::lock_guard<std::mutex> guard(impl_->watchers_mutex);
    watchers.swap(impl_->watchers);
  }
  for (auto& w : watchers) w.join();
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
registry::session_id node::session() const { return impl_->session->load(); }

void node::on_leadership(std::function<void(std::uint64_t)> start, std::function<void()> stop) {
  std::lock_guard<std::mutex> guard(impl_->callbacks_mutex);
  impl_->on_start = std::move(start);
  impl_->on_stop = std::move(stop);
  if (impl_->leading && impl_->on_start) impl_->on_start(impl_->term);
}

expected<std::vector<registry::member>> node::members(std::optional<registry::member_status> only, bool stale) {
  auto st = impl_->binary_query(std::string("members") + (only ? std::string(" ") + registry::to_string(*only) : ""),
                                stale);
  if (!st) return st.error();
  std::vector<registry::member> out;
  for (auto& [id, m] : st->members) out.push_back(m);
  return out;
}

expected<std::optional<registry::key_value>> node::get(const std::string& key, bool stale) {
  auto st = impl_->binary_query("get " + key, stale);
  if (!st) return st.error();
  if (st->keys.empty()) return std::optional<registry::key_value>();
  return std::optional<registry::key_value>(st->keys.begin()->second);
}

expected<std::vector<std::pair<std::string, registry::key_value>>> node::list(const std::string& prefix, bool stale) {
  auto st = impl_->binary_query("list " + prefix, stale);
  if (!st) return st.error();
  return std::vector<std::pair<std::string, registry::key_value>>(st->keys.begin(), st->keys.end());
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
  auto st = impl_->binary_query("changes " + std::to_string(after) + " " + prefix, false);
  if (!st) return st.error();
  if (st->history_floor > after) return std::optional<std::vector<registry::change>>();
  return std::optional<std::vector<registry::change>>(std::vector<registry::change>(st->history.begin(), st->history.end()));
}

void node::watch(const std::string& prefix, std::function<void(const registry::change&)> on_change,
                 std::function<void(const registry::watch_listing&)> on_compacted,
                 std::optional<registry::revision> after) {
  assert(on_change);
  assert(on_compacted);
  auto* p = impl_.get();
  std::lock_guard<std::mutex> guard(p->watchers_mutex);
  p->watchers.emplace_back([p, prefix, on_change, on_compacted, after] {
    raft_client c(p->sys, p->cfg.agent.cluster_id, p->cfg.agent.masters);
    c.set_keys(p->cfg.agent.keys);
    registry::watch_cursor cursor(prefix, after);
    while (!p->stop) {
      auto r = c.read("bin:" + cursor.query(), 2000ms);
      if (r) {
        if (auto st = wire::decode_registry_snapshot(r->result)) cursor.take(*st, on_change, on_compacted);
      }
      std::this_thread::sleep_for(50ms);
    }
  });
}

expected<node::lock_grant> node::lock(const std::string& name, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (session() == 0) {
    if (std::chrono::steady_clock::now() >= until) return make_error(errc::unavailable, "not registered yet");
    std::this_thread::sleep_for(20ms);
  }
  auto s = session();
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
  // Queued: wait for the grant until `timeout`, then cancel the wait until
  // the lock as the registry has it shows this session neither holding nor
  // waiting (a cancel may cross a grant: then the grant is returned).
  for (;;) {
    if (session() != s) return session_ended();
    auto st = impl_->binary_query("lock " + name, false);
    if (!st) {
      if (impl_->stop) return st.error();  // leaving: the session closes with the node
      std::this_thread::sleep_for(20ms);
      continue;
    }
    auto it = st->locks.find(name);
    if (it != st->locks.end() && it->second.holder == s) return lock_grant{name, it->second.token};
    bool waiting = it != st->locks.end() &&
                   std::find(it->second.waiters.begin(), it->second.waiters.end(), s) != it->second.waiters.end();
    bool time_left = std::chrono::steady_clock::now() < until;
    if (!waiting) {
      return make_error(errc::unavailable, (time_left ? "no longer waiting for lock '" : "timed out waiting for lock '") +
                                               name + "'");
    }
    if (time_left) {
      std::this_thread::sleep_for(20ms);
      continue;
    }
    (void)impl_->run(registry::cancel_lock_wait{name, s});
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
  auto st = impl_->binary_query("events " + member_id(), false);
  if (!st) return st.error();
  return std::vector<registry::event>(st->events.begin(), st->events.end());
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
        log_line("member {}: refusing a command from a deposed leader (term {}, token {} after term {}, token {})",
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
      log_line("member {}: acknowledging events up to {} failed ({}); the next call acknowledges them", member_id(),
               p.handled_seq, ok.error().message());
    }
  }
  return ran;
}

void node::on_leader_change(std::function<void(std::uint64_t, std::uint64_t)> callback) {
  std::lock_guard<std::mutex> guard(impl_->callbacks_mutex);
  impl_->on_leader = std::move(callback);
  if (impl_->last_leader && impl_->on_leader) impl_->on_leader(impl_->last_leader, impl_->term);
}

void node::on_members(std::function<void(const std::vector<registry::member>&)> callback) {
  auto* p = impl_.get();
  std::lock_guard<std::mutex> guard(p->watchers_mutex);
  p->watchers.emplace_back([this, p, callback] {
    std::string last;
    while (!p->stop) {
      auto list = members(std::nullopt, false);
      if (list) {
        std::string digest;
        for (const auto& m : *list) digest += m.id + ":" + registry::to_string(m.status) + ";";
        if (digest != last) callback(*list);
        last = digest;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(p->cfg.agent.heartbeat_ms, 100)));
    }
  });
}

}  // namespace conclave
