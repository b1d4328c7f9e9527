// Fault injection in the manner of Jepsen: a real cluster of conclave
// processes (masters and workers) on loopback, clients doing concurrent KV
// reads, writes and compare-and-sets on a few keys, try-lock/release on one
// lock and blocking waits (first come, first served hand-off) on another,
// some of whose sessions stop their keepalives on purpose, while a nemesis
// kills (-9) and restarts masters and the leader, freezes them
// (SIGSTOP/SIGCONT, the leader also for longer than a session TTL), moves
// leadership (transfer-leader; with 5 masters master 1 is the preferred
// leader and takes leadership back after every leader fault), partitions
// them through the transport fault hook (halves, isolated leader, bridge,
// one-way) and fills the disk of a master or of the leader (each master's
// data directory is a small tmpfs of its own when the test may mount one,
// i.e. runs as root). Every operation is recorded as invoke and
// ok/fail/info with monotonic timestamps in a JSON Lines history, with the
// workers' registry entries as a client saw them; test/jepsen/checker.py
// judges it: linearizable per key, never two lock holders at once, fencing
// tokens increasing in request order, no session lost while kept alive, no
// worker declared dead.
//
// At the end every fault is healed; every session the clients closed or
// let lapse must be gone and both locks free; every key is read back, then
// all masters are killed at once and restarted and every key read back
// again: an acknowledged write that did not survive shows up as a stale
// read. After every kill, mdb_stat must still read the killed master's LMDB
// log.
//
//   fault_test [--masters N] [--seconds S] [--seed N] [doctest options]
// Without --masters it runs the CI schedule: 3 masters, then 5. The
// history is kept as jepsen-history-m<N>-seed<S>.jsonl in the working dir.
#define DOCTEST_CONFIG_IMPLEMENT  // own main(), for --masters, --seconds and --seed
#include <doctest/doctest.h>
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "roles/registry_reads.hpp"
#include "schema/registry_codec.hpp"
#include "test/certificates.hpp"
#include "test/process_cluster.hpp"
#include "test/net_lab.hpp"
#include "test/skip.hpp"
#include "test/small_disk.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct run_options {
  int masters = 0;  // 0: the CI schedule (3, then 5)
  int seconds = 40;
  std::uint64_t seed = 1;
} options;

// The history: one JSON object per line, in the order events happened.
class history {
 public:
  int new_process() { return next_process_++; }
  std::int64_t now_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start_).count();
  }
  void add(const std::string& fields) {
    std::lock_guard<std::mutex> guard(m_);
    lines_.push_back("{" + fields + ",\"time_ns\":" + std::to_string(now_ns()) + "}");
  }
  std::size_t count(const std::string& needle) {
    std::lock_guard<std::mutex> guard(m_);
    return static_cast<std::size_t>(
        std::count_if(lines_.begin(), lines_.end(), [&](const auto& l) { return l.find(needle) != std::string::npos; }));
  }
  void write(const std::string& path) {
    std::lock_guard<std::mutex> guard(m_);
    std::ofstream out(path);
    for (const auto& l : lines_) out << l << "\n";
  }

 private:
  std::atomic<int> next_process_{0};
  std::mutex m_;
  std::vector<std::string> lines_;
  clock_type::time_point start_ = clock_type::now();
};

std::string json_str(const std::string& s) { return "\"" + s + "\""; }

std::vector<raft::endpoint> endpoints(const process_cluster& c) {
  std::vector<raft::endpoint> eps;
  for (const auto& m : c.members()) eps.push_back(m.address);
  return eps;
}

// A registry command's outcome, or nothing when it was not committed.
std::optional<wire::registry_result> decode(const expected<client::committed>& r) {
  if (!r) return std::nullopt;
  auto d = wire::decode_result(r->result);
  if (!d) return std::nullopt;
  return *d;
}

std::string read_fields(int process, const std::string& type, const std::string& key) {
  return fmt::format("\"process\":{},\"type\":\"{}\",\"f\":\"read\",\"key\":{}", process, type, json_str(key));
}

// One linearizable read, recorded; the version it saw.
std::optional<std::uint64_t> recorded_read(raft_client& c, history& h, int process, const std::string& key,
                                           std::chrono::milliseconds deadline) {
  h.add(read_fields(process, "invoke", key));
  auto r = ask(c, registry::get_key{key}, deadline);
  if (r) {
    auto version = r->value ? r->value->version : 0;
    h.add(read_fields(process, "ok", key) + fmt::format(",\"value\":{},\"version\":{}",
                                                        r->value ? json_str(r->value->value) : std::string("null"),
                                                        version));
    return version;
  }
  h.add(read_fields(process, "fail", key));  // a read changes nothing
  return std::nullopt;
}

std::unique_ptr<small_disks> make_disks(int masters) {
  auto disks = std::make_unique<small_disks>(masters, 32 << 20);
  if (!disks->mounted()) MESSAGE("no disk-full faults: " << disks->why_not());
  return disks;
}

// Each master on its own disk and in its own network namespace, where the
// machine allows.
process_cluster::layout place(const small_disks& disks, const net_lab& net, int masters, const certificates* tls) {
  process_cluster::layout where;
  if (tls) where.client_tls = tls->client_files();
  where.data_dirs = disks.data_dirs();
  for (int i = 1; net.ready() && i <= masters; ++i) {
    where.hosts[static_cast<std::uint64_t>(i)] = net.host(i);
    where.launchers[static_cast<std::uint64_t>(i)] = net.launcher(i);
  }
  return where;
}

std::unique_ptr<net_lab> make_net(int masters) {
  auto net = std::make_unique<net_lab>(masters);
  if (!net->ready()) MESSAGE("no real link cuts: " << net->why_not());
  return net;
}

// The workers: never stopped by the test, so never rightly declared dead.
const std::vector<std::string> worker_names = {"w1", "w2"};

// The masters' flags: with 5 masters, master 1 is the preferred leader, so
// every fault that takes leadership from it ends with a handover back.
// With `tls`, every native link is TLS (README "TLS").
std::vector<std::string> master_flags(int masters, const certificates* tls) {
  std::vector<std::string> flags = {"-r", "master", "--fault-injection", "true"};
  if (masters >= 5) flags.insert(flags.end(), {"--preferred-leader", "1"});
  if (tls) {
    auto more = tls->peer_flags();
    flags.insert(flags.end(), more.begin(), more.end());
  }
  return flags;
}

// Reads the member list once and records each worker's status and
// session; whether every worker was seen alive.
bool observe_workers(raft_client& c, history& h) {
  auto r = ask(c, registry::members_query{}, 1000ms);
  if (!r) return false;
  bool all_alive = true;
  for (const auto& w : worker_names) {
    auto m = std::find_if(r->members.begin(), r->members.end(), [&](const registry::member& x) { return x.id == w; });
    if (m == r->members.end()) {
      all_alive = false;
      continue;
    }
    h.add(fmt::format("\"type\":\"observe\",\"f\":\"member\",\"member\":{},\"status\":{},\"session\":{}", json_str(w),
                      json_str(registry::to_string(m->status)), m->session));
    all_alive = all_alive && m->status == registry::member_status::alive;
  }
  return all_alive;
}

struct fault {
  std::string kind;
  std::uint64_t target = 0;  // the master it hit, when one
  std::chrono::milliseconds lasts{0};
};

struct fault_cluster {
  // Both outlive the processes (members are destroyed in reverse order).
  std::unique_ptr<small_disks> disks;
  std::unique_ptr<net_lab> net;
  process_cluster cluster;
  std::vector<pid_t> workers;
  std::mt19937_64 rng;
  std::vector<std::string> round;  // the kinds still to inject in this round
  std::map<std::string, int> faults;  // injected, by kind
  std::vector<std::string> mdb_stat_failures;

  fault_cluster(int masters, std::uint64_t seed, const certificates* tls)
      : disks(make_disks(masters)),
        net(make_net(masters)),
        cluster(masters, master_flags(masters, tls), conclave_binary(), place(*disks, *net, masters, tls)),
        rng(seed) {
    REQUIRE(cluster.wait_for_leader(20s));
    for (const auto& w : worker_names) {
      std::vector<std::string> args{cluster.binary(), "-r", "worker", "--name", w, "--peers", cluster.peers(),
                                    "--cluster-id", cluster.cluster_id};
      if (tls) {
        auto more = tls->worker_flags();
        args.insert(args.end(), more.begin(), more.end());
      }
      workers.push_back(cluster.spawn(args, "worker-" + w + ".log"));
    }
  }

  std::uint64_t random_master() {
    return std::uniform_int_distribution<std::uint64_t>(1, cluster.members().size())(rng);
  }

  std::uint64_t leader_or_random() {
    for (const auto& m : cluster.members()) {
      auto s = m.pid > 0 ? cluster.client().call(m.address, client::status_request{}, 200ms) : expected<client::response>(
                                                                                                   make_error(errc::unavailable, ""));
      if (s && std::holds_alternative<client::status>(*s) && std::get<client::status>(*s).role == "leader") return m.id;
    }
    return random_master();
  }

  // The LMDB log of a killed master must still be readable.
  void check_log(std::uint64_t id) {
    static const bool have_mdb_stat = std::system("command -v mdb_stat >/dev/null 2>&1") == 0;
    if (!have_mdb_stat) return;
    auto cmd = "mdb_stat -a " + cluster.at(id).data_dir + "/log >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) mdb_stat_failures.push_back("master " + std::to_string(id));
  }

  void kill(std::uint64_t id) {
    if (!cluster.running(id)) return;
    cluster.signal(id, SIGKILL);
    check_log(id);
  }

  void set_faults(std::uint64_t id, const std::vector<std::uint64_t>& drop_to, const std::vector<std::uint64_t>& drop_from) {
    if (cluster.running(id)) (void)cluster.set_faults(id, drop_to, drop_from, 500ms);
  }

  // Masters in `a` and in `b` cannot reach each other (both directions).
  void partition(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
    for (auto id : a) set_faults(id, b, b);
    for (auto id : b) set_faults(id, a, a);
  }

  // Every kind once per round, in a random order, so that even a short run
  // sees most kinds; the first round starts with the two that sessions and
  // locks meet most (a long leader freeze, a leadership transfer), so that
  // every CI run has them.
  std::string next_kind() {
    bool first = faults.empty();
    if (round.empty()) {
      round = {"kill", "kill-leader", "freeze", "freeze-leader", "freeze-leader-long", "transfer-leader",
               "partition-halves", "isolate-leader", "one-way"};
      if (cluster.members().size() >= 5) round.push_back("bridge");
      if (disks->mounted()) round.insert(round.end(), {"disk-full", "disk-full-leader"});
      if (net->ready()) {
        round.insert(round.end(),
                     {"net-halves", "net-isolate-leader", "net-one-way", "net-unplug", "net-unplug-leader"});
      }
      std::shuffle(round.begin(), round.end(), rng);
      if (first) {
        std::stable_partition(round.begin(), round.end(),
                              [](const std::string& k) { return k != "freeze-leader-long" && k != "transfer-leader"; });
      }
    }
    auto kind = round.back();
    round.pop_back();
    return kind;
  }

  // Injects the next fault; it lasts 0.5-3 s, a long leader freeze 3-6 s
  // (longer than a session's TTL of 2 s).
  fault inject() {
    auto n = cluster.members().size();
    fault f{next_kind(), 0, std::chrono::milliseconds(500 + rng() % 2500)};
    const auto& kind = f.kind;
    std::vector<std::uint64_t> ids;
    for (std::uint64_t i = 1; i <= n; ++i) ids.push_back(i);
    std::shuffle(ids.begin(), ids.end(), rng);
    if (kind == "kill") kill(f.target = ids[0]);
    if (kind == "kill-leader") kill(f.target = leader_or_random());
    if (kind == "freeze") cluster.signal(f.target = ids[0], SIGSTOP);
    if (kind == "freeze-leader") cluster.signal(f.target = leader_or_random(), SIGSTOP);
    if (kind == "freeze-leader-long") {
      cluster.signal(f.target = leader_or_random(), SIGSTOP);
      f.lasts = std::chrono::milliseconds(3000 + rng() % 3000);
    }
    if (kind == "transfer-leader") {
      // What `conclavectl transfer-leader ID` asks of the leader.
      auto l = leader_or_random();
      f.target = ids[0] != l ? ids[0] : ids[1];
      (void)cluster.client().call(cluster.at(l).address, client::transfer_leadership{f.target}, 500ms);
    }
    if (kind == "partition-halves") {
      std::vector<std::uint64_t> minority(ids.begin(), ids.begin() + static_cast<long>(n / 2));
      std::vector<std::uint64_t> majority(ids.begin() + static_cast<long>(n / 2), ids.end());
      partition(minority, majority);
    }
    if (kind == "isolate-leader") {
      auto l = f.target = leader_or_random();
      std::vector<std::uint64_t> rest;
      for (auto id : ids) {
        if (id != l) rest.push_back(id);
      }
      partition({l}, rest);
    }
    if (kind == "bridge") {
      // ids[0] and ids[1] | ids[2] (the bridge, sees everyone) | ids[3] and ids[4]
      partition({ids[0], ids[1]}, {ids[3], ids[4]});
    }
    if (kind == "disk-full" || kind == "disk-full-leader") {
      f.target = kind == "disk-full" ? ids[0] : leader_or_random();
      (*disks)[f.target].fill();
      // A large write needs fresh pages on every master's disk (small ones
      // often fit in pages LMDB freed earlier); its key is not checked.
      (void)cluster.client().propose(
          wire::encode_command(registry::put{"nemesis-ballast", std::string(256 << 10, 'b'), 0, std::nullopt}), 1000ms);
    }
    if (kind == "net-halves") {
      auto half = static_cast<long>(n / 2);
      for (auto a = ids.begin(); a != ids.begin() + half; ++a) {
        for (auto b = ids.begin() + half; b != ids.end(); ++b) {
          net->cut(static_cast<int>(*a), static_cast<int>(*b));
          net->cut(static_cast<int>(*b), static_cast<int>(*a));
        }
      }
    }
    if (kind == "net-isolate-leader") {
      // Cut from the other masters only: clients and workers still reach it.
      auto l = static_cast<int>(f.target = leader_or_random());
      for (auto id : ids) {
        if (static_cast<int>(id) == l) continue;
        net->cut(l, static_cast<int>(id));
        net->cut(static_cast<int>(id), l);
      }
    }
    if (kind == "net-one-way") net->cut(static_cast<int>(ids[0]), static_cast<int>(ids[1]));
    if (kind == "net-unplug") net->unplug(static_cast<int>(f.target = ids[0]));
    if (kind == "net-unplug-leader") net->unplug(static_cast<int>(f.target = leader_or_random()));
    if (kind == "one-way") {
      set_faults(ids[0], {ids[1]}, {});  // ids[0] -> ids[1] dropped
      set_faults(ids[1], {}, {ids[0]});
    }
    ++faults[kind];
    return f;
  }

  // Undoes every fault: restarts killed masters, resumes frozen ones,
  // clears every transport fault, gives every disk its space back.
  void heal() {
    disks->free_all();
    if (net->ready()) net->heal();
    for (const auto& m : cluster.members()) {
      if (m.pid > 0) ::kill(m.pid, SIGCONT);
    }
    for (const auto& m : cluster.members()) {
      if (m.pid <= 0) cluster.start(m.id);
    }
    std::this_thread::sleep_for(200ms);
    for (const auto& m : cluster.members()) set_faults(m.id, {}, {});
  }
};

// KV client: reads, writes of unique values, and compare-and-sets on the
// version it last read, on the keys of the current 10-second epoch.
void kv_client(caf::actor_system& sys, fault_cluster& f, history& h, std::uint64_t seed, const std::atomic<bool>& stop,
               std::set<std::string>& keys_used, std::mutex& keys_mutex) {
  raft_client c(sys, f.cluster.cluster_id, endpoints(f.cluster));
  std::mt19937_64 rng(seed);
  int process = h.new_process();
  std::map<std::string, std::uint64_t> seen_version;
  auto start = clock_type::now();
  for (int n = 0; !stop; ++n) {
    auto epoch = std::chrono::duration_cast<std::chrono::seconds>(clock_type::now() - start).count() / 10;
    auto key = fmt::format("k{}-{}", epoch, rng() % 3);
    {
      std::lock_guard<std::mutex> guard(keys_mutex);
      keys_used.insert(key);
    }
    auto dice = rng() % 10;
    if (dice < 5) {
      if (auto v = recorded_read(c, h, process, key, 1000ms)) seen_version[key] = *v;
      continue;
    }
    bool cas = dice >= 8;
    auto value = fmt::format("v{}-{}", process, n);
    auto base = fmt::format("\"process\":{},\"f\":\"{}\",\"key\":{},\"value\":{}", process, cas ? "cas" : "write",
                            json_str(key), json_str(value));
    std::optional<std::uint64_t> expected_version;
    if (cas) {
      expected_version = seen_version[key];
      base += fmt::format(",\"expected_version\":{}", *expected_version);
    }
    h.add(base + ",\"type\":\"invoke\"");
    auto r = c.propose(wire::encode_command(registry::put{key, value, 0, expected_version}), 1000ms);
    auto res = decode(r);
    if (res && res->outcome.code == registry::code::ok) {
      h.add(base + ",\"type\":\"ok\"" + (cas ? ",\"applied\":true" : ""));
    } else if (res && cas && res->outcome.code == registry::code::version_mismatch) {
      h.add(base + ",\"type\":\"ok\",\"applied\":false");
    } else if (res || (!r && r.error().code != errc::outcome_unknown)) {
      h.add(base + ",\"type\":\"fail\"");  // refused: never applied
    } else {
      h.add(base + ",\"type\":\"info\"");  // may or may not have been applied
      process = h.new_process();
    }
  }
}

// The lock clients' sessions that have not surely ended: at the end of the
// run, with every fault healed, each must be gone (closed by its client, or
// expired because its keepalives stopped).
class session_book {
 public:
  void opened(registry::session_id s) {
    std::lock_guard<std::mutex> guard(m_);
    open_.insert(s);
  }
  void ended(registry::session_id s) {
    std::lock_guard<std::mutex> guard(m_);
    open_.erase(s);
  }
  std::set<registry::session_id> open() {
    std::lock_guard<std::mutex> guard(m_);
    return open_;
  }

 private:
  std::mutex m_;
  std::set<registry::session_id> open_;
};

// A lock client's session, kept alive from a background thread (a
// keepalive round through the leader of up to 400 ms, then 200 ms until the
// next) until stop_heartbeats() or the leader says it is gone.
class kept_session {
 public:
  kept_session(caf::actor_system& sys, fault_cluster& f, registry::session_id id) : id(id) {
    thread_ = std::thread([this, &sys, &f] {
      raft_client k(sys, f.cluster.cluster_id, endpoints(f.cluster));
      while (!done_ && !lost_) {
        if (heartbeating_) {
          auto r = k.to_leader(client::keepalive{this->id, {}}, 400ms);
          if (r && std::holds_alternative<client::failure>(*r) && std::get<client::failure>(*r).code == "not_found") {
            lost_ = true;
          }
        }
        std::this_thread::sleep_for(200ms);
      }
    });
  }
  ~kept_session() {
    done_ = true;
    thread_.join();
  }
  void stop_heartbeats() { heartbeating_ = false; }
  bool heartbeating() const { return heartbeating_; }
  bool lost() const { return lost_; }  // a keepalive was answered "no such session"

  const registry::session_id id;

 private:
  std::atomic<bool> done_{false}, lost_{false}, heartbeating_{true};
  std::thread thread_;
};

// Whether `session` still exists (a linearizable read), or nothing if no answer came.
std::optional<bool> session_exists(raft_client& c, registry::session_id session) {
  auto r = ask(c, registry::session_query{session}, 1000ms);
  if (!r) return std::nullopt;
  return r->value.has_value();
}

// A lock's state as the registry has it (free: holder 0, no waiters).
std::optional<registry::lock> read_lock(raft_client& c, const std::string& name) {
  auto r = ask(c, registry::lock_query{name}, 1000ms);
  if (!r) return std::nullopt;
  return r->value.value_or(registry::lock{});
}

struct lock_client_stats {
  std::atomic<int> zombies{0};          // sessions that stopped their keepalives on purpose
  std::atomic<int> vanished_waits{0};   // queued requests gone while their session lived
};

// Lock client on `lock`. Each session (at most 8 requests; an unknown
// outcome or a lost session starts a new one, and a new process in the
// history) requests the lock, holds it a moment, releases it. A `queue`
// client mostly waits: a queued request is granted when the lock is handed
// over, which it sees by reading the lock. One of its sessions in three
// stops its keepalives on purpose at some request: then its session must
// expire, its place in the queue go and its lock pass to the next waiter
// with a higher token; it acts as holder until it sees the session gone.
void lock_client(caf::actor_system& sys, fault_cluster& f, history& h, std::uint64_t seed, const std::string& lock,
                 bool queue, const std::atomic<bool>& stop, session_book& book, lock_client_stats& stats) {
  raft_client c(sys, f.cluster.cluster_id, endpoints(f.cluster));
  std::mt19937_64 rng(seed);
  while (!stop) {
    auto opened = decode(c.propose(wire::encode_command(registry::open_session{"fault-test", 2000}), 1000ms));
    if (!opened || opened->outcome.code != registry::code::ok) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    auto session = opened->outcome.value;
    book.opened(session);
    kept_session ks(sys, f, session);
    int process = h.new_process();
    int stops_heartbeats_at = queue && rng() % 3 == 0 ? static_cast<int>(rng() % 4) : -1;
    auto base = [&](const char* f) { return fmt::format("\"process\":{},\"f\":\"{}\",\"lock\":{}", process, f, json_str(lock)); };
    bool lost = false, unknown = false;
    // The session ended: the client learnt it from `how`. For diagnosis, a
    // client that kept it alive reads whether it really is gone.
    auto session_lost = [&](const char* how) {
      std::string exists = "null";
      if (ks.heartbeating()) {
        if (auto e = session_exists(c, session)) exists = *e ? "true" : "false";
      }
      h.add(base("session_lost") +
            fmt::format(",\"type\":\"info\",\"heartbeating\":{},\"how\":\"{}\",\"exists_after\":{}",
                        ks.heartbeating() ? "true" : "false", how, exists));
      lost = true;
      book.ended(session);
    };
    // Waits (even past the end of the run, as the lock may have passed on)
    // until the session is gone; false if it outlived the wait.
    auto await_expiry = [&] {
      auto until = clock_type::now() + 15s;
      while (clock_type::now() < until) {
        if (session_exists(c, session) == false) return true;
        std::this_thread::sleep_for(100ms);
      }
      return false;
    };
    for (int n = 0; n < 8 && !stop && !lost && !unknown; ++n) {
      if (n == stops_heartbeats_at) {
        ks.stop_heartbeats();
        ++stats.zombies;
      }
      bool wait = queue && rng() % 4 != 0;
      h.add(base("acquire") + fmt::format(",\"type\":\"invoke\",\"wait\":{}", wait ? "true" : "false"));
      auto r = c.propose(wire::encode_command(registry::acquire_lock{lock, session, wait}), 1000ms);
      auto res = decode(r);
      std::optional<registry::revision> token;
      std::string queued;
      if (res && res->outcome.code == registry::code::ok) {
        token = res->outcome.value;
      } else if (res && res->outcome.code == registry::code::queued) {
        // Handed over in the queue's order; seen by reading the lock.
        queued = fmt::format(",\"queued_ns\":{}", h.now_ns());
        while (!token && !stop && !ks.lost()) {
          auto l = read_lock(c, lock);
          if (l && l->holder == session) {
            token = l->token;
          } else if (l && std::find(l->waiters.begin(), l->waiters.end(), session) == l->waiters.end()) {
            break;  // no longer waiting: the session ended (or the registry lost the request)
          } else {
            std::this_thread::sleep_for(20ms);
          }
        }
        if (!token) {
          h.add(base("acquire") + ",\"type\":\"info\"");  // may have been granted and lost unseen
          unknown = true;
          if (ks.lost()) {
            session_lost("keepalive");
          } else {
            std::optional<bool> exists;
            while (!exists && !stop) exists = session_exists(c, session);
            if (exists == false) session_lost("lock-read");
            if (exists == true) ++stats.vanished_waits;
          }
          break;
        }
      } else if (res && res->outcome.code == registry::code::no_session) {
        h.add(base("acquire") + ",\"type\":\"fail\"");
        session_lost("acquire");
        break;
      } else if (res || (!r && r.error().code != errc::outcome_unknown)) {
        h.add(base("acquire") + ",\"type\":\"fail\"");  // held (a try), or refused
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50));
        continue;
      } else {
        h.add(base("acquire") + ",\"type\":\"info\"");
        unknown = true;
        break;
      }
      h.add(base("acquire") + fmt::format(",\"type\":\"ok\",\"token\":{}{}", *token, queued));
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
      // Without keepalives the session expires and the lock passes on; till
      // this client sees that (below), it believes it holds the lock.
      if (!ks.heartbeating()) break;
      if (ks.lost()) {
        session_lost("keepalive");
        break;
      }
      h.add(base("release") + ",\"type\":\"invoke\"");
      auto rel = c.propose(wire::encode_command(registry::release_lock{lock, session}), 1000ms);
      auto rres = decode(rel);
      if (rres && rres->outcome.code == registry::code::ok) {
        h.add(base("release") + ",\"type\":\"ok\"");
      } else if (rres && (rres->outcome.code == registry::code::not_holder ||
                          rres->outcome.code == registry::code::no_session)) {
        // The session ended while this client thought it held the lock:
        // the hold ended whenever that happened.
        h.add(base("release") + ",\"type\":\"fail\"");
        session_lost("release");
      } else if (rres || (!rel && rel.error().code != errc::outcome_unknown)) {
        h.add(base("release") + ",\"type\":\"fail\"");
        unknown = true;
      } else {
        h.add(base("release") + ",\"type\":\"info\"");
        unknown = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50));
    }
    // A session that stopped its keepalives is left to expire; any other is
    // closed, which releases whatever it still holds and leaves the queue.
    if (!lost && !ks.heartbeating() && await_expiry()) session_lost("session-read");
    if (!lost && ks.heartbeating()) {
      auto closed = decode(c.propose(wire::encode_command(registry::close_session{session, false}), 1000ms));
      if (closed && closed->outcome.code == registry::code::no_session) session_lost("close");
      if (closed && closed->outcome.code == registry::code::ok) book.ended(session);
    }
  }
}

// Records the workers' registry entries every 200 ms.
void member_observer(caf::actor_system& sys, fault_cluster& f, history& h, const std::atomic<bool>& stop) {
  raft_client c(sys, f.cluster.cluster_id, endpoints(f.cluster));
  while (!stop) {
    (void)observe_workers(c, h);
    std::this_thread::sleep_for(200ms);
  }
}

// The checker's verdict: 0 valid, 1 a violation, 2 a malformed history.
int check(const std::string& path) {
  const char* checker = std::getenv("CONCLAVE_CHECKER");
  auto cmd = fmt::format("python3 {} {}", checker ? checker : "test/jepsen/checker.py", path);
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

// With `tls`, every native link is TLS: masters, workers and the test's clients.
void run(int masters, int seconds, std::uint64_t seed, const certificates* tls = nullptr) {
  fault_cluster f(masters, seed, tls);
  // One actor system for every client thread (each with its own connections).
  auto tls_config = tls ? tls_client_config(tls->client_files()) : nullptr;
  caf::actor_system sys{tls_config ? *tls_config : client_config()};
  history h;
  raft_client c(sys, f.cluster.cluster_id, endpoints(f.cluster));
  auto registered = clock_type::now() + 20s;
  while (!observe_workers(c, h) && clock_type::now() < registered) std::this_thread::sleep_for(100ms);
  REQUIRE_MESSAGE(observe_workers(c, h), "the workers did not register");
  std::atomic<bool> stop{false}, stop_observer{false};
  std::set<std::string> keys;
  std::mutex keys_mutex;
  session_book book;
  lock_client_stats stats;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] { kv_client(sys, f, h, seed * 100 + static_cast<std::uint64_t>(i), stop, keys, keys_mutex); });
  }
  for (int i = 0; i < 6; ++i) {
    bool queue = i >= 3;
    clients.emplace_back([&, i, queue] {
      lock_client(sys, f, h, seed * 100 + 50 + static_cast<std::uint64_t>(i), queue ? "the-queue" : "the-lock", queue,
                  stop, book, stats);
    });
  }
  std::thread observer([&] { member_observer(sys, f, h, stop_observer); });
  // The nemesis: a fault for 0.5-3 s (or longer), then healed for 0.5-2 s.
  auto until = clock_type::now() + std::chrono::seconds(seconds);
  while (clock_type::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + f.rng() % 1500));
    auto fault = f.inject();
    h.add(fmt::format("\"type\":\"nemesis\",\"f\":\"start\",\"fault\":{},\"target\":{},\"ms\":{}", json_str(fault.kind),
                      fault.target, fault.lasts.count()));
    std::this_thread::sleep_for(fault.lasts);
    f.heal();
    h.add("\"type\":\"nemesis\",\"f\":\"heal\"");
  }
  stop = true;
  for (auto& t : clients) t.join();
  stop_observer = true;
  observer.join();

  // Every fault is healed and every client gone: every session of theirs
  // must end (closed, or expired without keepalives), so both locks are
  // free, and the workers are alive (suspect only for a while). Sessions
  // last 2 s; 15 s is a bound for "never".
  REQUIRE(f.cluster.wait_for_leader(20s));
  std::set<registry::session_id> sessions_left;
  std::vector<std::string> locks_held;
  auto settle = clock_type::now() + 15s;
  bool workers_alive = false;
  do {
    std::this_thread::sleep_for(200ms);
    workers_alive = observe_workers(c, h);
    sessions_left.clear();
    for (auto s : book.open()) {
      if (session_exists(c, s) != false) sessions_left.insert(s);
    }
    locks_held.clear();
    for (const auto* name : {"the-lock", "the-queue"}) {
      auto l = read_lock(c, name);
      if (!l || l->holder != 0 || !l->waiters.empty()) locks_held.push_back(name);
    }
  } while ((!workers_alive || !sessions_left.empty() || !locks_held.empty()) && clock_type::now() < settle);
  std::vector<std::string> workers_gone;
  for (std::size_t w = 0; w < f.workers.size(); ++w) {
    int status = 0;
    if (::waitpid(f.workers[w], &status, WNOHANG) == f.workers[w]) {
      workers_gone.push_back(fmt::format("{} (status {})", worker_names[w], status));
    }
  }

  // Read back every key after healing, and again after all masters were
  // killed at once and restarted.
  int reader = h.new_process();
  for (const auto& k : keys) recorded_read(c, h, reader, k, 10000ms);
  for (const auto& m : f.cluster.members()) f.kill(m.id);
  h.add("\"type\":\"nemesis\",\"f\":\"start\",\"fault\":\"kill-all\"");
  ++f.faults["kill-all"];
  f.heal();
  REQUIRE(f.cluster.wait_for_leader(20s));
  raft_client after(sys, f.cluster.cluster_id, endpoints(f.cluster));
  reader = h.new_process();
  for (const auto& k : keys) recorded_read(after, h, reader, k, 10000ms);

  auto path = fmt::format("jepsen-history-m{}-seed{}.jsonl", masters, seed);
  h.write(path);
  std::string fault_list;
  for (const auto& [k, n] : f.faults) fault_list += fmt::format(" {}={}", k, n);
  // How often a full disk really stopped a master's writes (a fill can
  // pass unnoticed while LMDB still has freed pages to reuse), and who led.
  auto occurrences = [](const std::string& text, const std::string& needle) {
    int n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  int refused = 0;
  std::string leaders;
  for (const auto& m : f.cluster.members()) {
    auto text = f.cluster.log_of(m.id);
    refused += occurrences(text, "storage write failed");
    leaders += fmt::format(" m{} {}", m.id, occurrences(text, ": leader in term"));
  }
  if (f.disks->mounted()) fault_list += fmt::format(" (writes stopped by a full disk: {})", refused);
  MESSAGE(fmt::format("{} masters, {} s, seed {}: {} ok, {} fail, {} info operations; {} keys; {} lock grants handed "
                      "to a waiter; {} sessions stopped their keepalives; terms led:{}; faults:{}; history {}",
                      masters, seconds, seed, h.count("\"type\":\"ok\""), h.count("\"type\":\"fail\""),
                      h.count("\"type\":\"info\""), keys.size(), h.count("\"queued_ns\""), stats.zombies.load(),
                      leaders, fault_list, path));
  CHECK_MESSAGE(f.mdb_stat_failures.empty(), "mdb_stat failed after a kill: " << f.mdb_stat_failures.front());
  CHECK_MESSAGE(h.count("\"f\":\"read\",\"key\"") > 0, "no reads recorded");
  CHECK_MESSAGE(h.count("\"token\":") > 0, "no lock was ever acquired");
  CHECK_MESSAGE(h.count("\"queued_ns\"") > 0, "no lock was ever handed to a waiter");
  CHECK_MESSAGE(stats.vanished_waits == 0,
                stats.vanished_waits << " queued lock requests vanished while their session was alive");
  CHECK_MESSAGE(sessions_left.empty(), sessions_left.size() << " lock client sessions still exist 15 s after their "
                                                               "clients closed them or stopped their keepalives, e.g. "
                                                            << *sessions_left.begin());
  CHECK_MESSAGE(locks_held.empty(), "lock '" << locks_held.front() << "' is still held or waited for after every "
                                                                       "client left");
  CHECK_MESSAGE(workers_alive, "a worker is not alive 15 s after the last fault was healed (the history has its "
                               "status)");
  CHECK_MESSAGE(workers_gone.empty(), "worker " << workers_gone.front() << " exited during the run");
  int verdict = check(path);
  std::string found = verdict == 1 ? "a violation" : "a malformed history";
  CHECK_MESSAGE(verdict == 0, "the checker found " << found << "; the history is kept in " << path);
}

}  // namespace

TEST_CASE("faults against 3 masters: linearizable KV, exclusive first-come locks with increasing tokens, sessions "
          "and workers outlive their leader, no acknowledged write lost") {
  if (options.masters != 0 && options.masters != 3) return;
  run(3, options.seconds, options.seed);
}

TEST_CASE("faults against 5 masters: linearizable KV, exclusive first-come locks with increasing tokens, sessions "
          "and workers outlive their leader, no acknowledged write lost") {
  if (options.masters != 0 && options.masters != 5) return;
  run(5, options.seconds, options.seed + 1);
}

TEST_CASE("faults against 3 masters with TLS on every native link: the same guarantees") {
  if (options.masters != 0 && options.masters != 3) return;
  if (::access(openssl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no openssl command to make certificates");
  certificates tls;
  REQUIRE_MESSAGE(tls.failure.empty(), tls.failure);
  run(3, options.seconds, options.seed + 2, &tls);
}

int main(int argc, char** argv) {
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--masters" && i + 1 < argc) options.masters = std::atoi(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) options.seconds = std::atoi(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) options.seed = std::strtoull(argv[++i], nullptr, 10);
    else rest.push_back(argv[i]);
  }
  doctest::Context ctx;
  ctx.applyCommandLine(static_cast<int>(rest.size()), rest.data());
  return ctx.run();
}
