#include "bench/conclave_system.hpp"

#include <fmt/core.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "bench/load.hpp"
#include "bench/watch.hpp"
#include "roles/config.hpp"
#include "roles/member_agent.hpp"
#include "roles/node.hpp"
#include "roles/push_client.hpp"
#include "roles/registry_reads.hpp"
#include "roles/scheduling.hpp"
#include "roles/server.hpp"
#include "schema/registry_codec.hpp"
#include "test/process_cluster.hpp"

namespace conclave::bench {

namespace {

using namespace std::chrono_literals;
using test::process_cluster;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

registry::command put_command(const std::string& key, std::string value = "v") {
  return registry::put{key, std::move(value), 0, std::nullopt};
}

// The value of a committed registry command (a session id, a fencing token).
std::optional<std::uint64_t> committed_value(const expected<client::committed>& r) {
  if (!r) return std::nullopt;
  auto res = wire::decode_result(r->result);
  if (!res || (res->outcome.code != registry::code::ok && res->outcome.code != registry::code::queued)) return std::nullopt;
  return res->outcome.value;
}

caf::actor_system_config& client_system_config() {
  static caf::actor_system_config cfg = [] {
    caf::actor_system_config c;
    c.load<caf::io::middleman>();
    c.set("logger.verbosity", caf::atom("quiet"));
    configure_scheduling(c, 2);
    return c;
  }();
  return cfg;
}

std::uint64_t steady_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now().time_since_epoch()).count());
}

// A worker's member agent (the code `conclave -r worker` runs) on a thread
// of this process; publishes when the leader last answered its heartbeat.
class agent_worker {
 public:
  agent_worker(caf::actor_system& sys, const process_cluster& c, int n) {
    opts_.cluster_id = c.cluster_id;
    for (const auto& m : c.members()) opts_.masters.push_back(m.address);
    opts_.me.id = "bench-engine-worker-" + std::to_string(n);
    opts_.me.role = registry::member_role::worker;
    opts_.me.host = "127.0.0.1";
    opts_.heartbeat_ms = std::stoi(default_settings().at("member-heartbeat-ms"));
    opts_.contact_out = std::make_shared<std::atomic<std::uint64_t>>(0);
    thread_ = std::thread([this, &sys] { run_member_agent(sys, opts_, stop_, exit_code_); });
  }
  ~agent_worker() {
    stop_ = true;
    thread_.join();
  }
  std::uint64_t last_contact_ms() const { return opts_.contact_out->load(); }

 private:
  agent_options opts_;
  std::atomic<bool> stop_{false};
  std::atomic<int> exit_code_{0};
  std::thread thread_;
};

// The embedded scenario's load: `threads` threads, each alternating a put
// of its own key and a linearizable get of it, closed loop, for `seconds`.
// `put(t, key, value)` and `get(t, key)` are thread t's calls.
struct call_load {
  std::size_t ops = 0, errors = 0;
  double seconds = 0;
  std::vector<double> latency_ms;

  std::string line() const {
    return fmt::format("load {} {} {:.3f} {:.3f} {:.3f}\n", ops, errors, seconds, percentile(latency_ms, 0.5),
                       percentile(latency_ms, 0.99));
  }
};

call_load run_calls(int threads, double seconds, const std::function<bool(int, const std::string&, const std::string&)>& put,
                    const std::function<std::optional<std::string>(int, const std::string&)>& get) {
  std::vector<call_load> per(static_cast<std::size_t>(threads));
  auto start = clock_type::now();
  auto until = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      auto& mine = per[static_cast<std::size_t>(t)];
      // At least one put and get each, however late the thread starts.
      for (std::uint64_t n = 0; n == 0 || clock_type::now() < until; ++n) {
        auto key = fmt::format("/bench/embedded/{}/{}", t, n % 64);
        auto value = fmt::format("{:0>100}", n);
        auto t0 = clock_type::now();
        bool ok = put(t, key, value);
        mine.latency_ms.push_back(ms_since(t0));
        t0 = clock_type::now();
        auto got = get(t, key);
        mine.latency_ms.push_back(ms_since(t0));
        mine.ops += 2;
        mine.errors += (ok ? 0 : 1) + (got == value ? 0 : 1);
      }
    });
  }
  for (auto& w : workers) w.join();
  call_load all;
  all.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  for (auto& p : per) {
    all.ops += p.ops;
    all.errors += p.errors;
    all.latency_ms.insert(all.latency_ms.end(), p.latency_ms.begin(), p.latency_ms.end());
  }
  return all;
}

// Whether this process's parent (conclave-bench) is gone.
bool orphaned(pid_t parent) { return ::getppid() != parent; }

}  // namespace

struct conclave_system::impl {
  process_cluster cluster;
  int workers;
  std::string self_exe;
  std::map<int, pid_t> worker_pids;
  registry::session_id session = 0;
  // The timed scenarios' and the loads' client, on the scheduler the
  // conclave program uses (roles/scheduling.hpp).
  std::unique_ptr<caf::actor_system> client_system;
  std::unique_ptr<raft_client> bench_client;
  raft_client& client() { return *bench_client; }
  std::vector<registry::session_id> contenders;
  // lock-handoff: the contenders wait for their grants as node::lock does,
  // each subscribed (at the leader) to its lock since it queued.
  struct grants {
    std::mutex m;
    std::condition_variable cv;
    std::map<registry::session_id, clock_type::time_point> at;  // when each contender's grant arrived
  };
  std::shared_ptr<grants> granted = std::make_shared<grants>();
  std::unique_ptr<push_client> pushes;
  std::uint64_t pushes_at = 0;  // the master it was opened at
  std::map<registry::session_id, std::uint64_t> queued_at;  // each waiting contender's acquire index
  std::map<registry::session_id, std::uint64_t> grant_subscription;  // its subscription's id
  std::optional<double> new_leader_ms;
  std::unique_ptr<caf::actor_system> load_system;  // the member agents of failover-workers
  std::vector<std::unique_ptr<agent_worker>> engine_workers;

  impl(int masters, int workers_, std::string binary, std::string self, bool etcd_api)
      // (The fault channel is on for the leader-cutoff scenario.)
      : cluster(masters, master_flags(etcd_api), std::move(binary)),
        workers(workers_),
        self_exe(std::move(self)) {
    client_system = std::make_unique<caf::actor_system>(client_system_config());
    {
      std::vector<raft::endpoint> eps;
      for (const auto& m : cluster.members()) eps.push_back(m.address);
      bench_client = std::make_unique<raft_client>(*client_system, cluster.cluster_id, eps);
    }
    if (!cluster.wait_for_leader(20s)) throw std::runtime_error("conclave: no leader within 20 s");
    if (etcd_api) {
      auto until = clock_type::now() + 20s;
      while (etcd_api_servers().size() < cluster.members().size() && clock_type::now() < until)
        std::this_thread::sleep_for(20ms);
      if (etcd_api_servers().size() < cluster.members().size())
        throw std::runtime_error("conclave: a master did not log \"etcd API listening on\" within 20 s");
    }
    for (int w = 1; w <= workers; ++w) start_worker(w);
    wait_members(masters + workers);
  }

  static std::vector<std::string> master_flags(bool etcd_api) {
    std::vector<std::string> flags = {"-r", "master", "--fault-injection", "true"};
    if (etcd_api) flags.insert(flags.end(), {"--client-listen", "127.0.0.1:0"});
    return flags;
  }

  // Each running master's etcd API address, from the last "etcd API
  // listening on HOST:PORT" of its log (a restarted master takes a new port).
  std::vector<etcd_api_server> etcd_api_servers() {
    const std::string said = "etcd API listening on ";
    std::vector<etcd_api_server> out;
    for (const auto& m : cluster.members()) {
      if (m.pid <= 0) continue;
      auto log = cluster.log_of(m.id);
      auto at = log.rfind(said);
      if (at == std::string::npos) continue;
      at += said.size();
      out.push_back({log.substr(at, log.find('\n', at) - at), m.pid});
    }
    return out;
  }

  void start_worker(int w) {
    auto name = "bench-worker-" + std::to_string(w);
    worker_pids[w] = cluster.spawn(
        {cluster.binary(), "-r", "worker", "--name", name, "--peers", cluster.peers(), "--cluster-id", cluster.cluster_id},
        name + ".log");
  }

  void wait_members(int alive) {
    auto until = clock_type::now() + 20s;
    while (clock_type::now() < until) {
      auto r = ask(client(), registry::members_query{registry::member_status::alive}, 2s);
      if (r && static_cast<int>(r->members.size()) >= alive) return;
      std::this_thread::sleep_for(50ms);
    }
  }

  bool write(const std::string& key, std::chrono::milliseconds deadline) {
    return client().propose(wire::encode_command(put_command(key)), deadline).has_value();
  }

  std::optional<std::uint64_t> propose_value(const registry::command& c) {
    return committed_value(client().propose(wire::encode_command(c), 5s));
  }

  // Polls every master but `old` (each answers status itself, never passing
  // it on, so nothing waits on a request lost with the old leader) until one
  // leads, and then until that one acknowledges a write.
  std::optional<double> until_new_leader_writes(std::uint64_t old, clock_type::time_point start) {
    new_leader_ms.reset();
    while (ms_since(start) < 15000) {
      for (const auto& m : cluster.members()) {
        if (m.id == old || m.pid <= 0) continue;
        auto s = client().call(m.address, client::status_request{}, 100ms);
        if (!s || !std::holds_alternative<client::status>(*s) || std::get<client::status>(*s).role != "leader") continue;
        if (!new_leader_ms) new_leader_ms = ms_since(start);
        auto r = client().call(m.address, client::propose{wire::encode_command(put_command("/bench/after"))}, 2000ms);
        if (r && std::holds_alternative<client::committed>(*r)) return ms_since(start);
      }
    }
    return std::nullopt;
  }

  // Puts the cluster back together after a leader fault.
  void restore(std::uint64_t old, int sig) {
    if (sig == SIGSTOP) cluster.signal(old, SIGCONT);
    if (sig == SIGKILL || sig == SIGTERM) {
      while (cluster.running(old)) std::this_thread::sleep_for(5ms);
      cluster.start(old);
    }
    std::this_thread::sleep_for(700ms);
  }

  // From the fault until a master other than the old leader acknowledged a write.
  std::optional<double> leader_fault(const std::string& kind) {
    auto old = cluster.wait_for_leader(10s);
    if (!old) {
      fmt::print(stderr, "conclave-bench: {}: no leader within 10 s before the fault\n", kind);
      return std::nullopt;
    }
    for (int i = 0; i < 3; ++i) write("/bench/warm", 5s);
    std::this_thread::sleep_for(300ms);
    auto start = clock_type::now();
    int sig = 0;
    if (kind == "leader-crash") sig = SIGKILL;
    if (kind == "leader-freeze") sig = SIGSTOP;
    if (kind == "leader-stop") sig = SIGTERM;
    if (sig == SIGSTOP) cluster.signal(*old, sig);
    if (sig == SIGKILL || sig == SIGTERM) std::thread([this, old, sig] { cluster.signal(*old, sig); }).detach();
    if (kind == "leader-cutoff") (void)cluster.isolate(*old);
    auto t = until_new_leader_writes(*old, start);
    if (!t) {
      fmt::print(stderr, "conclave-bench: {}: no master but {} {} within 15 s of the fault\n", kind, *old,
                 new_leader_ms ? "acknowledged a write" : "led");
    }
    if (kind == "leader-cutoff") (void)cluster.heal(*old);
    restore(*old, sig);
    return t;
  }

  // From kill -9 of a worker until every master's own registry says it is dead.
  std::optional<double> worker_crash() {
    int w = 1;
    auto name = "bench-worker-" + std::to_string(w);
    std::this_thread::sleep_for(300ms);  // a few heartbeats since it (re)started
    auto start = clock_type::now();
    ::kill(worker_pids[w], SIGKILL);
    std::optional<double> t;
    while (!t && ms_since(start) < 15000) {
      bool everywhere = true;
      for (const auto& m : cluster.members()) {
        auto r = ask_at(client(), m.address, registry::members_query{registry::member_status::dead}, true, 500ms);
        auto listed = [&](const registry::member& x) { return x.id == name; };
        if (!r || std::none_of(r->members.begin(), r->members.end(), listed)) {
          everywhere = false;
          break;
        }
      }
      if (everywhere) t = ms_since(start);
      else std::this_thread::sleep_for(2ms);
    }
    cluster.wait_exit(worker_pids[w], 1s);
    start_worker(w);
    wait_members(static_cast<int>(cluster.members().size()) + workers);
    return t;
  }

  // Failover as an engine sees it (1): kill -9 of the leader until every
  // worker's heartbeat has been answered by the new leader.
  std::optional<double> failover_workers() {
    if (!load_system) load_system = std::make_unique<caf::actor_system>(test::client_config());
    while (engine_workers.size() < 8) {
      engine_workers.push_back(std::make_unique<agent_worker>(*load_system, cluster, static_cast<int>(engine_workers.size())));
    }
    auto old = cluster.wait_for_leader(10s);
    if (!old) return std::nullopt;
    std::this_thread::sleep_for(600ms);  // registered and heartbeating
    auto start = clock_type::now();
    auto start_ms = steady_ms();
    std::thread([this, old] { cluster.signal(*old, SIGKILL); }).detach();
    std::optional<double> t;
    while (!t && ms_since(start) < 15000) {
      bool all = std::all_of(engine_workers.begin(), engine_workers.end(),
                             [&](const auto& w) { return w->last_contact_ms() > start_ms; });
      if (all) t = ms_since(start);
      else std::this_thread::sleep_for(1ms);
    }
    restore(*old, SIGKILL);
    return t;
  }

  // Failover as an engine sees it (2): the leader's host dies with the
  // engine on it, which held a lock (its session kept alive through that
  // leader); from kill -9 of both until a queued contender holds the lock
  // with a larger fencing token.
  std::optional<double> failover_lock() {
    auto old = cluster.wait_for_leader(10s);
    if (!old) return std::nullopt;
    auto log = cluster.path("lock-holder.log");
    std::remove(log.c_str());
    auto holder = cluster.spawn({self_exe, "--lock-holder", cluster.at(*old).address.text(), cluster.cluster_id,
                                 "engine-lock", "2000", "100"},
                                "lock-holder.log");
    std::uint64_t old_token = 0;
    for (auto until = clock_type::now() + 10s; !old_token && clock_type::now() < until; std::this_thread::sleep_for(5ms)) {
      auto text = test::file_text(log);
      if (auto p = text.find("holding "); p != std::string::npos) old_token = std::strtoull(text.c_str() + p + 8, nullptr, 10);
    }
    auto contender = propose_value(registry::open_session{"bench-contender", 30000});
    if (!old_token || !contender || !propose_value(registry::acquire_lock{"engine-lock", *contender, true})) {
      ::kill(holder, SIGKILL);
      cluster.wait_exit(holder, 2s);
      return std::nullopt;
    }
    std::this_thread::sleep_for(300ms);
    auto start = clock_type::now();
    ::kill(holder, SIGKILL);
    std::thread([this, old] { cluster.signal(*old, SIGKILL); }).detach();
    std::optional<double> t;
    while (!t && ms_since(start) < 15000) {
      auto r = ask(client(), registry::lock_query{"engine-lock"}, 500ms);
      if (r && r->value && r->value->holder == *contender && r->value->token > old_token) t = ms_since(start);
      if (!t) std::this_thread::sleep_for(2ms);
    }
    cluster.wait_exit(holder, 2s);
    (void)propose_value(registry::close_session{*contender, false});
    restore(*old, SIGKILL);
    return t;
  }

  std::optional<double> lock_cycle() {
    if (!session) {
      auto s = propose_value(registry::open_session{"bench", 600000});
      if (!s) return std::nullopt;
      session = *s;
    }
    auto start = clock_type::now();
    auto a = propose_value(registry::acquire_lock{"bench-lock", session, true});
    auto b = propose_value(registry::release_lock{"bench-lock", session});
    if (!a || !b) return std::nullopt;
    return ms_since(start);
  }

  // Tells `granted` when the contender's queued acquire (at log index
  // `after`) is granted.
  void wait_for_grant(registry::session_id contender, std::uint64_t after) {
    queued_at[contender] = after;
    grant_subscription[contender] = pushes->subscribe([contender, after] { return registry::subscription{registry::lock_subscription{"bench-handoff", contender, after}}; },
                      [g = granted, contender](const registry::push& p) {
                        if (p.kind != registry::push_kind::granted) return;
                        auto now = clock_type::now();
                        std::lock_guard<std::mutex> guard(g->m);
                        g->at.emplace(contender, now);
                        g->cv.notify_all();
                      });
  }

  // One lock, four contenders: from the holder's release until the next
  // contender is told it holds the lock (first come, first served). The
  // contenders wait as node::lock does: the master they are subscribed at
  // pushes the grant when it applies the release (the release and the grant
  // are one command, one commit).
  std::optional<double> lock_handoff() {
    auto leader = cluster.wait_for_leader(10s);
    if (!leader) return std::nullopt;
    if (!pushes || pushes_at != *leader) {
      std::vector<raft::endpoint> eps;
      std::size_t first = 0;
      for (const auto& m : cluster.members()) {
        if (m.id == *leader) first = eps.size();
        eps.push_back(m.address);
      }
      pushes.reset();
      grant_subscription.clear();
      pushes = std::make_unique<push_client>(*client_system, cluster.cluster_id, eps, auth::keys{}, first);
      pushes_at = *leader;
      for (auto c : contenders) {
        if (auto it = queued_at.find(c); it != queued_at.end()) wait_for_grant(c, it->second);
      }
      std::this_thread::sleep_for(200ms);  // (the subscriptions reach the master)
    }
    bool added = false;
    while (contenders.size() < 4) {
      auto s = propose_value(registry::open_session{"contender", 600000});
      if (!s) return std::nullopt;
      auto q = propose_value(registry::acquire_lock{"bench-handoff", *s, true});
      if (!q) return std::nullopt;
      contenders.push_back(*s);
      if (contenders.size() > 1) wait_for_grant(*s, *q);
      added = true;
    }
    if (added) std::this_thread::sleep_for(200ms);
    auto holder = contenders.front();
    auto next = contenders[1];
    auto start = clock_type::now();
    if (!propose_value(registry::release_lock{"bench-handoff", holder})) return std::nullopt;
    std::optional<double> t;
    {
      std::unique_lock<std::mutex> guard(granted->m);
      if (granted->cv.wait_for(guard, 5s, [&] { return granted->at.count(next) > 0; })) {
        t = std::chrono::duration<double, std::milli>(granted->at[next] - start).count();
      }
      granted->at.erase(next);
    }
    queued_at.erase(next);
    if (auto it = grant_subscription.find(next); it != grant_subscription.end()) {
      pushes->unsubscribe(it->second);
      grant_subscription.erase(it);
    }
    // The released contender queues again at the back, waiting for its grant.
    if (auto q = propose_value(registry::acquire_lock{"bench-handoff", holder, true})) wait_for_grant(holder, *q);
    std::rotate(contenders.begin(), contenders.begin() + 1, contenders.end());
    return t;
  }

  std::optional<double> one_write() {
    auto start = clock_type::now();
    if (!write("/bench/write", 5s)) return std::nullopt;
    return ms_since(start);
  }

  caf::actor leader_handle() {
    auto leader = cluster.wait_for_leader(10s);
    if (!leader) return {};
    auto handle = client_system->middleman().remote_actor(cluster.at(*leader).address.host, cluster.at(*leader).address.port);
    return handle ? *handle : caf::actor{};
  }

  throughput writes(int clients, double seconds, std::uint64_t key_space = 64) {
    auto handle = leader_handle();
    if (!handle) return {clients, 0, {}, 1};
    std::string value(100, 'v');
    return run_load(*client_system, handle, cluster.cluster_id, clients, seconds,
                      [value, key_space](int who, std::uint64_t n) {
                        return wire::encode_command(
                            put_command("/bench/load/" + std::to_string(who) + "/" + std::to_string(n % key_space), value));
                      });
  }

  std::uint64_t applied(std::uint64_t id) {
    auto s = cluster.status(id);
    return s ? s->applied_index : 0;
  }

  // Restarts `id` and waits until it has applied the leader's commit index.
  std::optional<double> restart_until_caught_up(std::uint64_t id, std::uint64_t leader) {
    auto target = cluster.status(leader);
    if (!target) return std::nullopt;
    auto start = clock_type::now();
    cluster.start(id);
    while (ms_since(start) < 600000 && !stop_requested) {
      if (applied(id) >= target->commit_index) return ms_since(start);
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }
};

conclave_system::conclave_system(int masters, int workers, std::string binary, std::string self_exe, bool etcd_api)
    : impl_(std::make_unique<impl>(masters, workers, std::move(binary), std::move(self_exe), etcd_api)) {}

conclave_system::~conclave_system() {
  impl_->engine_workers.clear();
}

std::string conclave_system::name() const { return "conclave"; }

std::string conclave_system::description() const {
  const auto& d = default_settings();
  return fmt::format(
      "{} masters (-r master) and {} workers (-r worker) with conclave's defaults (tick {} ms, heartbeat {} ticks, "
      "election timeout {} ticks, member heartbeat {} ms, session TTL {} ms); driven through its client protocol "
      "(CAF middleman, Cap'n Proto) from an actor system of the bench's own on conclave's scheduler "
      "(roles/scheduling.hpp); CAF keeps one connection per pair of processes, which the load's clients share",
      impl_->cluster.members().size(), impl_->workers, d.at("tick-ms"), d.at("heartbeat-ticks"), d.at("election-ticks"),
      d.at("member-heartbeat-ms"), d.at("session-ttl-ms"));
}

bool conclave_system::supports(const std::string&) const { return true; }

std::optional<double> conclave_system::trial(const std::string& s) {
  if (s.rfind("leader-", 0) == 0) return impl_->leader_fault(s);
  if (s == "worker-crash") return impl_->worker_crash();
  if (s == "failover-workers") return impl_->failover_workers();
  if (s == "failover-lock") return impl_->failover_lock();
  if (s == "lock-cycle") return impl_->lock_cycle();
  if (s == "lock-handoff") return impl_->lock_handoff();
  if (s == "write") return impl_->one_write();
  return std::nullopt;
}

std::optional<double> conclave_system::last_new_leader_ms() const { return impl_->new_leader_ms; }

std::optional<std::uint64_t> conclave_system::raft_term() {
  std::optional<std::uint64_t> term;
  for (const auto& m : impl_->cluster.members()) {
    if (auto s = impl_->cluster.status(m.id)) term = std::max(term.value_or(0), s->term);
  }
  return term;
}

throughput conclave_system::writes(int clients, double seconds) { return impl_->writes(clients, seconds); }

std::vector<pid_t> conclave_system::server_pids() const {
  std::vector<pid_t> pids;
  for (const auto& m : impl_->cluster.members()) {
    if (m.pid > 0) pids.push_back(m.pid);
  }
  return pids;
}

std::vector<etcd_api_server> conclave_system::etcd_api_servers() { return impl_->etcd_api_servers(); }

std::optional<scale_result> conclave_system::scale(int sessions, double seconds) {
  auto& c = impl_->cluster;
  auto leader = c.wait_for_leader(10s);
  if (!leader) return std::nullopt;
  // Simulated workers, up to 2,500 per process, each heartbeat its own
  // request, at the default member heartbeat interval.
  constexpr int per_process = 2500;
  auto interval = default_settings().at("member-heartbeat-ms");
  auto ttl = default_settings().at("session-ttl-ms");
  int processes = std::max(1, (sessions + per_process - 1) / per_process);
  std::vector<std::pair<pid_t, std::string>> swarms;
  for (int p = 0; p < processes; ++p) {
    int count = sessions / processes + (p < sessions % processes ? 1 : 0);
    auto out = c.path("swarm-" + std::to_string(p) + ".out");
    std::remove(out.c_str());
    auto pid = c.spawn({impl_->self_exe, "--swarm", c.at(*leader).address.text(), c.cluster_id,
                        "sim-" + std::to_string(p) + "-", std::to_string(count), interval, ttl,
                        std::to_string(seconds + 8), out},
                       "swarm-" + std::to_string(p) + ".log");
    swarms.emplace_back(pid, out);
  }
  auto all_registered = [&] {
    return std::all_of(swarms.begin(), swarms.end(),
                       [](const auto& s) { return test::file_text(s.second).find("registered") != std::string::npos; });
  };
  for (auto until = clock_type::now() + 120s; !all_registered() && clock_type::now() < until && !stop_requested;) {
    std::this_thread::sleep_for(50ms);
  }
  scale_result r;
  r.sessions = sessions;
  r.interval_ms = std::stod(interval);
  if (!all_registered()) {
    for (auto& s : swarms) {
      ::kill(s.first, SIGKILL);
      c.wait_exit(s.first, 5s);
    }
    return std::nullopt;
  }
  std::this_thread::sleep_for(1s);
  auto leader_pid = c.at(*leader).pid;
  auto cpu0 = test::cpu_seconds(leader_pid);
  auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  r.leader_cpu_pct = 100.0 * (test::cpu_seconds(leader_pid) - cpu0) / (ms_since(t0) / 1000.0);
  if (auto d = impl_->worker_crash()) r.detect_ms = *d;
  std::vector<std::string> reports;
  for (auto& s : swarms) {
    c.wait_exit(s.first, std::chrono::milliseconds(static_cast<int>(seconds * 1000) + 60000));
    reports.push_back(test::file_text(s.second));
  }
  add_heartbeat_reports(reports, r);
  return r;
}

// The watch scenario: watcher processes (two per master), each a host
// embedding one node (role worker) whose `peers` names one master, with its
// share of the watches made through node::watch; the writes go to the leader.
std::optional<watch_result> conclave_system::watch(const watch_plan& plan) {
  auto& c = impl_->cluster;
  const std::string prefix = "/bench/watch/", key = prefix + "k";
  auto leader = c.wait_for_leader(10s);
  if (!leader) return std::nullopt;
  auto base = impl_->propose_value(put_command(key, "base"));
  if (!base) return std::nullopt;
  const int processes = 2 * static_cast<int>(c.members().size());
  watcher_children children;
  auto start = [&] {
    for (int p = 0; p < processes; ++p) {
      const auto& m = c.members()[static_cast<std::size_t>(p) % c.members().size()];
      auto name = "bench-watcher-" + std::to_string(p);
      children.outs.push_back(c.path(name + ".out"));
      std::remove(children.outs.back().c_str());
      children.pids.push_back(c.spawn({impl_->self_exe, "--watch-node", std::to_string(m.id) + "=" + m.address.text(),
                                       c.cluster_id, name, prefix, std::to_string(*base),
                                       std::to_string(watchers_in(p, processes, plan.watchers)),
                                       std::to_string(plan.writes + 1), children.outs.back()},
                                      name + ".log"));
    }
    return children;
  };
  auto r = run_watch(plan, c.at(*leader).pid, server_pids(), start, [&](int k) {
    return c.client().propose(wire::encode_command(put_command(key, std::to_string(k))), 5s).has_value();
  });
  r.hosting = fmt::format(
      "{} watcher processes (process p on master p mod {}), each embedding one node (role worker, --threads 1) whose "
      "peers name only its master, with ~{} watches through node::watch; writes to the leader",
      processes, c.members().size(), plan.watchers / processes);
  // They end by themselves once every write arrived; 10 s for all of them.
  auto until = clock_type::now() + 10s;
  for (auto pid : children.pids) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now());
    if (!c.wait_exit(pid, std::max(left, std::chrono::milliseconds(1)))) {
      ::kill(pid, SIGKILL);
      c.wait_exit(pid, 5s);
    }
  }
  return r;
}

int watch_node_main(int argc, char** argv) {
  if (argc != 9) {
    fmt::print(stderr, "usage: conclave-bench --watch-node ID=HOST:PORT CLUSTER_ID NAME PREFIX AFTER COUNT WRITES OUT\n");
    return 2;
  }
  std::string master = argv[1], cluster_id = argv[2], name = argv[3], prefix = argv[4];
  registry::revision after = std::strtoull(argv[5], nullptr, 10);
  int count = std::atoi(argv[6]);
  watch_recorder recorder(count, std::atoi(argv[7]), argv[8]);
  caf::actor_system sys{server_system_config(1)};
  auto n = node::start(sys, {{"role", "worker"}, {"name", name}, {"peers", master}, {"cluster-id", cluster_id}});
  if (!n) {
    fmt::print(stderr, "watch node: {}\n", n.error().message());
    return 1;
  }
  for (int w = 0; w < count; ++w) {
    (*n)->watch(
        prefix, [&recorder, w](const registry::change& ch) { recorder.delivered(w, ch.value); },
        [](const registry::watch_listing&) { fmt::print(stderr, "watch node: a watch fell behind the history\n"); },
        after);
  }
  recorder.watching();
  const pid_t parent = ::getppid();
  while (!recorder.complete() && ::getppid() == parent) std::this_thread::sleep_for(20ms);
  n->reset();  // the member leaves; its watches end before the recorder goes
  return 0;
}

int embedded_host_main(int argc, char** argv) {
  if (argc != 9) {
    fmt::print(stderr, "usage: conclave-bench --embedded-host ID PEERS DATA_DIR CLUSTER_ID THREADS SECONDS ROUNDS OUT\n");
    return 2;
  }
  std::string id = argv[1], peers = argv[2], dir = argv[3], cluster_id = argv[4], out = argv[8];
  int threads = std::atoi(argv[5]), rounds = std::atoi(argv[7]);
  double seconds = std::atof(argv[6]);
  const pid_t parent = ::getppid();
  auto signals = block_stop_signals();
  // The settings of `conclave -r master_and_worker`: one CAF thread.
  caf::actor_system sys{server_system_config(1)};
  auto n = node::start(sys, {{"role", "master_and_worker"}, {"id", id}, {"peers", peers}, {"data-dir", dir},
                             {"cluster-id", cluster_id}, {"name", "bench-host"}});
  if (!n) {
    fmt::print(stderr, "embedded host: {}\n", n.error().message());
    return 1;
  }
  auto& host = **n;
  while (!host.leading() && !orphaned(parent)) std::this_thread::sleep_for(5ms);
  std::ofstream(out, std::ios::app) << "leading\n";
  // `one_at_a_time`: the host's threads take turns behind one mutex, as
  // the facade made them before issue #13 (one client, one mutex).
  std::mutex turns;
  bool one_at_a_time = false;
  auto put = [&](int, const std::string& key, const std::string& value) {
    std::unique_lock<std::mutex> turn(turns, std::defer_lock);
    if (one_at_a_time) turn.lock();
    auto o = host.put(key, value);
    return o && o->code == registry::code::ok;
  };
  auto get = [&](int, const std::string& key) -> std::optional<std::string> {
    std::unique_lock<std::mutex> turn(turns, std::defer_lock);
    if (one_at_a_time) turn.lock();
    auto r = host.get(key);
    if (!r || !*r) return std::nullopt;
    return (*r)->value;
  };
  (void)run_calls(threads, std::min(seconds, 0.5), put, get);  // warm-up
  // Each round: the facade's parallel calls, the external clients (the
  // parent runs them meanwhile; "resume R" in OUT.resume ends the pause),
  // then one call at a time.
  for (int round = 0; round < rounds && !orphaned(parent); ++round) {
    one_at_a_time = false;
    std::ofstream(out, std::ios::app) << "parallel " << run_calls(threads, seconds, put, get).line();
    std::ofstream(out, std::ios::app) << "pause " << round << "\n";
    auto resume = "resume " + std::to_string(round);
    while (test::file_text(out + ".resume").find(resume) == std::string::npos && !orphaned(parent)) {
      std::this_thread::sleep_for(10ms);
    }
    one_at_a_time = true;
    std::ofstream(out, std::ios::app) << "serial " << run_calls(threads, seconds, put, get).line();
  }
  std::ofstream(out, std::ios::app) << "done\n";
  (void)wait_for_stop(signals, [&] { return orphaned(parent) ? 1 : 0; });
  n->reset();  // a leader hands over; the member leaves
  return 0;
}

int embedded_clients_main(int argc, char** argv) {
  if (argc != 6) {
    fmt::print(stderr, "usage: conclave-bench --embedded-clients HOST:PORT,... CLUSTER_ID THREADS SECONDS OUT\n");
    return 2;
  }
  std::vector<raft::endpoint> endpoints;
  std::stringstream list(argv[1]);
  for (std::string item; std::getline(list, item, ',');) {
    auto ep = raft::parse_endpoint(item, "endpoints");
    if (!ep) {
      fmt::print(stderr, "embedded clients: {}\n", ep.error().message());
      return 2;
    }
    endpoints.push_back(*ep);
  }
  std::string cluster_id = argv[2], out = argv[5];
  int threads = std::atoi(argv[3]);
  double seconds = std::atof(argv[4]);
  caf::actor_system sys{server_system_config(1)};
  std::vector<std::unique_ptr<raft_client>> clients;
  for (int t = 0; t < threads; ++t) clients.push_back(std::make_unique<raft_client>(sys, cluster_id, endpoints));
  // The facade's own calls (node::put, node::get) on a client per thread.
  auto put = [&](int t, const std::string& key, const std::string& value) {
    auto r = clients[static_cast<std::size_t>(t)]->propose(wire::encode_command(put_command(key, value)), 10s);
    if (!r) return false;
    auto res = wire::decode_result(r->result);
    return res && res->outcome.code == registry::code::ok;
  };
  auto get = [&](int t, const std::string& key) -> std::optional<std::string> {
    auto r = ask(*clients[static_cast<std::size_t>(t)], registry::get_key{key}, 10s);
    if (!r || !r->value) return std::nullopt;
    return r->value->value;
  };
  (void)run_calls(threads, std::min(seconds, 0.5), put, get);  // warm-up
  std::ofstream(out, std::ios::app) << "external " << run_calls(threads, seconds, put, get).line();
  return 0;
}

embedded_result conclave_system::embedded(int threads, double seconds, int rounds) {
  auto& c = impl_->cluster;
  embedded_result r;
  r.threads = threads;
  r.seconds = seconds;
  r.rounds = rounds;
  const std::uint64_t host_id = 1;
  auto wait_text = [&](const std::string& path, const std::string& what, std::chrono::milliseconds timeout) {
    for (auto until = clock_type::now() + timeout; clock_type::now() < until && !stop_requested;) {
      if (test::file_text(path).find(what) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    }
    return test::file_text(path).find(what) != std::string::npos;
  };
  auto load_time = std::chrono::milliseconds(static_cast<int>(seconds * 1000) + 60000);
  if (!c.wait_for_leader(10s)) {
    r.failure = "no leader before the host started";
    return r;
  }
  // Master 1 gives way to the host, which is made leader (the transfer is
  // retried until it leads).
  c.signal(host_id, SIGTERM);
  auto out = c.path("embedded-host.out");
  std::remove(out.c_str());
  std::remove((out + ".resume").c_str());
  auto host = c.spawn({impl_->self_exe, "--embedded-host", std::to_string(host_id), c.peers(), c.at(host_id).data_dir,
                       c.cluster_id, std::to_string(threads), fmt::format("{}", seconds), std::to_string(rounds), out},
                      "embedded-host.log");
  auto deadline = clock_type::now() + 30s;
  while (test::file_text(out).find("leading") == std::string::npos) {
    if (clock_type::now() >= deadline || stop_requested) {
      r.failure = "the host did not become leader within 30 s";
      break;
    }
    (void)c.client().to_leader(client::transfer_leadership{host_id}, 2s);
    wait_text(out, "leading", 1s);
  }
  std::uint64_t led_in = 0;
  if (auto s = c.client().status(c.at(host_id).address); s && s->role == "leader") led_in = s->term;
  std::string endpoints;
  for (const auto& m : c.members()) endpoints += (endpoints.empty() ? "" : ",") + m.address.text();
  auto clients_out = c.path("embedded-clients.out");
  std::remove(clients_out.c_str());
  for (int round = 0; round < rounds && r.failure.empty() && !stop_requested; ++round) {
    if (!wait_text(out, "pause " + std::to_string(round), load_time)) {
      r.failure = "the host's load did not finish";
      break;
    }
    auto pid = c.spawn({impl_->self_exe, "--embedded-clients", endpoints, c.cluster_id, std::to_string(threads),
                        fmt::format("{}", seconds), clients_out},
                       "embedded-clients.log");
    if (!c.wait_exit(pid, load_time)) {
      ::kill(pid, SIGKILL);
      c.wait_exit(pid, 5s);
      r.failure = "the external clients' load did not finish";
    }
    std::ofstream(out + ".resume", std::ios::app) << "resume " << round << "\n";
  }
  if (r.failure.empty() && !wait_text(out, "done", load_time)) r.failure = "the host's load did not finish";
  // The figures compare loads on one leader: say so if it changed.
  if (auto s = c.client().status(c.at(host_id).address); r.failure.empty() && (!s || s->role != "leader" || s->term != led_in)) {
    r.notes.push_back("leadership moved during the scenario (the figures mix two leaders)");
  }
  // Every round's result line: "MODE load OPS ERRORS SECONDS P50 P99".
  struct sum {
    std::size_t ops = 0, errors = 0;
    double seconds = 0;
    std::vector<double> p50s, p99s;
  };
  std::map<std::string, sum> by_mode;
  std::istringstream lines(test::file_text(out) + test::file_text(clients_out));
  for (std::string line; std::getline(lines, line);) {
    char mode[32];
    std::size_t ops = 0, errors = 0;
    double elapsed = 0, p50 = 0, p99 = 0;
    if (std::sscanf(line.c_str(), "%31s load %zu %zu %lf %lf %lf", mode, &ops, &errors, &elapsed, &p50, &p99) != 6) continue;
    auto& m = by_mode[mode];
    m.ops += ops;
    m.errors += errors;
    m.seconds += elapsed;
    m.p50s.push_back(p50);
    m.p99s.push_back(p99);
  }
  const std::pair<const char*, std::string> modes[] = {
      {"parallel", fmt::format("in-process: {} host threads through node's facade", threads)},
      {"external", fmt::format("another process: {} threads, a raft_client each (loopback TCP)", threads)},
      {"serial", fmt::format("in-process, one call at a time (as before #13: one client behind one mutex)")},
  };
  for (const auto& [mode, how] : modes) {
    auto it = by_mode.find(mode);
    if (it == by_mode.end() || it->second.seconds <= 0) continue;
    embedded_run run;
    run.how = how;
    run.ops_per_s = static_cast<double>(it->second.ops) / it->second.seconds;
    run.errors = it->second.errors;
    run.p50_ms = percentile(it->second.p50s, 0.5);
    run.p99_ms = *std::max_element(it->second.p99s.begin(), it->second.p99s.end());
    r.runs.push_back(run);
  }
  if (r.failure.empty() && r.runs.size() != 3) r.failure = "a load reported nothing";
  ::kill(host, SIGTERM);  // a leader hands over; the member leaves
  if (!c.wait_exit(host, 15s)) {
    ::kill(host, SIGKILL);
    c.wait_exit(host, 5s);
  }
  c.start(host_id);
  if (!c.wait_for_leader(20s) && r.failure.empty()) r.failure = "no leader after the host left";
  impl_->wait_members(static_cast<int>(c.members().size()) + impl_->workers);
  return r;
}

recovery_result conclave_system::recovery(std::uint64_t entries) {
  auto& c = impl_->cluster;
  recovery_result r;
  auto leader = c.wait_for_leader(10s);
  if (!leader) return r;
  std::uint64_t follower = *leader == 1 ? 2 : 1;
  c.signal(follower, SIGKILL);
  auto start_index = c.status(*leader) ? c.status(*leader)->commit_index : 0;
  // Writes over 10,000 keys until `entries` more are committed.
  while (!stop_requested) {
    auto s = c.status(*leader);
    if (!s) return r;
    if (s->commit_index >= start_index + entries) break;
    (void)impl_->writes(64, 1.0, 10000);
  }
  auto end = c.status(*leader);
  if (!end || end->commit_index < start_index + entries) return r;
  r.entries = end->commit_index - start_index;
  auto caught_up = impl_->restart_until_caught_up(follower, *leader);
  if (!caught_up) return r;
  r.catch_up_ms = *caught_up;
  r.catch_up_peak_rss_mib = test::peak_rss_mib(c.at(follower).pid);
  c.signal(follower, SIGKILL);
  auto restarted = impl_->restart_until_caught_up(follower, *leader);
  if (!restarted) return r;
  r.restart_ms = *restarted;
  r.restart_peak_rss_mib = test::peak_rss_mib(c.at(follower).pid);
  r.ok = true;
  return r;
}

}  // namespace conclave::bench
