// Fault injection in the manner of Jepsen: a real cluster of conclave
// processes (masters and workers) on loopback, clients doing concurrent KV
// reads, writes and compare-and-sets on a few keys and try-lock/release on
// a lock, while a nemesis kills (-9) and restarts masters and the leader,
// freezes them (SIGSTOP/SIGCONT), partitions them through the transport
// fault hook (halves, isolated leader, bridge, one-way) and fills the disk
// of a master or of the leader (each master's data directory is a small
// tmpfs of its own when the test may mount one, i.e. runs as root). Every operation is
// recorded as invoke and ok/fail/info with monotonic timestamps in a JSON
// Lines history, which test/jepsen/checker.py judges: linearizable per key,
// never two lock holders at once, fencing tokens only ever increasing.
//
// At the end every fault is healed, every key read back, then all masters
// are killed at once and restarted and every key read back again: an
// acknowledged write that did not survive shows up as a stale read. After
// every kill, mdb_stat must still read the killed master's LMDB log.
//
//   fault_test [--masters N] [--seconds S] [--seed N] [doctest options]
// Without --masters it runs the CI schedule: 3 masters, then 5. The
// history is kept as jepsen-history-m<N>-seed<S>.jsonl in the working dir.
#define DOCTEST_CONFIG_IMPLEMENT  // own main(), for --masters, --seconds and --seed
#include <doctest/doctest.h>
#include <fmt/core.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "schema/registry_codec.hpp"
#include "test/process_cluster.hpp"
#include "test/net_lab.hpp"
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
  void add(const std::string& fields) {
    std::lock_guard<std::mutex> guard(m_);
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start_).count();
    lines_.push_back("{" + fields + ",\"time_ns\":" + std::to_string(ns) + "}");
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

// "get KEY" answers null or {"key":..,"value":"..","version":N,...}.
bool parse_get(const std::string& json, std::string& value, std::uint64_t& version) {
  if (json == "null") {
    value.clear();
    version = 0;
    return true;
  }
  auto v = json.find("\"value\":\"");
  auto n = json.find("\"version\":");
  if (v == std::string::npos || n == std::string::npos) return false;
  value = json.substr(v + 9, json.find('"', v + 9) - (v + 9));
  version = std::strtoull(json.c_str() + n + 10, nullptr, 10);
  return true;
}

std::string read_fields(int process, const std::string& type, const std::string& key) {
  return fmt::format("\"process\":{},\"type\":\"{}\",\"f\":\"read\",\"key\":{}", process, type, json_str(key));
}

// One linearizable read, recorded; the version it saw.
std::optional<std::uint64_t> recorded_read(raft_client& c, history& h, int process, const std::string& key,
                                           std::chrono::milliseconds deadline) {
  h.add(read_fields(process, "invoke", key));
  auto r = c.read("get " + key, deadline);
  std::string value;
  std::uint64_t version = 0;
  if (r && parse_get(r->result, value, version)) {
    h.add(read_fields(process, "ok", key) + fmt::format(",\"value\":{},\"version\":{}",
                                                        version ? json_str(value) : std::string("null"), version));
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
process_cluster::layout place(const small_disks& disks, const net_lab& net, int masters) {
  process_cluster::layout where;
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

struct fault_cluster {
  // Both outlive the processes (members are destroyed in reverse order).
  std::unique_ptr<small_disks> disks;
  std::unique_ptr<net_lab> net;
  process_cluster cluster;
  std::vector<pid_t> workers;
  std::mt19937_64 rng;
  std::map<std::string, int> faults;  // injected, by kind
  std::vector<std::string> mdb_stat_failures;

  fault_cluster(int masters, std::uint64_t seed)
      : disks(make_disks(masters)),
        net(make_net(masters)),
        cluster(masters, {"-r", "master"}, conclave_binary(), place(*disks, *net, masters)),
        rng(seed) {
    REQUIRE(cluster.wait_for_leader(20s));
    for (int w = 1; w <= 2; ++w) {
      workers.push_back(cluster.spawn({cluster.binary(), "-r", "worker", "--name", "w" + std::to_string(w), "--peers",
                                       cluster.peers(), "--cluster-id", cluster.cluster_id},
                                      "worker" + std::to_string(w) + ".log"));
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

  void set_faults(std::uint64_t id, std::vector<std::uint64_t> drop_to, std::vector<std::uint64_t> drop_from) {
    client::set_faults f;
    f.drop_to = std::move(drop_to);
    f.drop_from = std::move(drop_from);
    if (cluster.running(id)) (void)cluster.client().call(cluster.at(id).address, f, 500ms);
  }

  // Masters in `a` and in `b` cannot reach each other (both directions).
  void partition(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
    for (auto id : a) set_faults(id, b, b);
    for (auto id : b) set_faults(id, a, a);
  }

  // Injects one fault; returns its name.
  std::string inject() {
    auto n = cluster.members().size();
    std::vector<std::string> kinds = {"kill", "kill-leader", "freeze", "freeze-leader", "partition-halves",
                                      "isolate-leader", "one-way"};
    if (n >= 5) kinds.push_back("bridge");
    if (disks->mounted()) {
      kinds.push_back("disk-full");
      kinds.push_back("disk-full-leader");
    }
    if (net->ready()) {
      for (const auto* k : {"net-halves", "net-isolate-leader", "net-one-way", "net-unplug", "net-unplug-leader"}) {
        kinds.push_back(k);
      }
    }
    auto kind = kinds[std::uniform_int_distribution<std::size_t>(0, kinds.size() - 1)(rng)];
    std::vector<std::uint64_t> ids;
    for (std::uint64_t i = 1; i <= n; ++i) ids.push_back(i);
    std::shuffle(ids.begin(), ids.end(), rng);
    if (kind == "kill") kill(ids[0]);
    if (kind == "kill-leader") kill(leader_or_random());
    if (kind == "freeze") cluster.signal(ids[0], SIGSTOP);
    if (kind == "freeze-leader") cluster.signal(leader_or_random(), SIGSTOP);
    if (kind == "partition-halves") {
      std::vector<std::uint64_t> minority(ids.begin(), ids.begin() + static_cast<long>(n / 2));
      std::vector<std::uint64_t> majority(ids.begin() + static_cast<long>(n / 2), ids.end());
      partition(minority, majority);
    }
    if (kind == "isolate-leader") {
      auto l = leader_or_random();
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
      (*disks)[kind == "disk-full" ? ids[0] : leader_or_random()].fill();
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
      auto l = static_cast<int>(leader_or_random());
      for (auto id : ids) {
        if (static_cast<int>(id) == l) continue;
        net->cut(l, static_cast<int>(id));
        net->cut(static_cast<int>(id), l);
      }
    }
    if (kind == "net-one-way") net->cut(static_cast<int>(ids[0]), static_cast<int>(ids[1]));
    if (kind == "net-unplug") net->unplug(static_cast<int>(ids[0]));
    if (kind == "net-unplug-leader") net->unplug(static_cast<int>(leader_or_random()));
    if (kind == "one-way") {
      set_faults(ids[0], {ids[1]}, {});  // ids[0] -> ids[1] dropped
      set_faults(ids[1], {}, {ids[0]});
    }
    ++faults[kind];
    return kind;
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

// Lock client: a session kept alive in the background, try-lock, hold a
// moment, release; an unknown outcome or a lost session starts over with a
// new session (and a new process in the history).
void lock_client(caf::actor_system& sys, fault_cluster& f, history& h, std::uint64_t seed, const std::atomic<bool>& stop) {
  raft_client c(sys, f.cluster.cluster_id, endpoints(f.cluster));
  std::mt19937_64 rng(seed);
  const std::string lock = "the-lock";
  while (!stop) {
    auto opened = decode(c.propose(wire::encode_command(registry::open_session{"fault-test", 2000}), 1000ms));
    if (!opened || opened->outcome.code != registry::code::ok) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    auto session = opened->outcome.value;
    int process = h.new_process();
    std::atomic<bool> lost{false}, done{false};
    std::thread keepalive([&] {
      raft_client k(sys, f.cluster.cluster_id, endpoints(f.cluster));
      while (!done && !lost) {
        auto r = k.to_leader(client::keepalive{session, {}}, 400ms);
        if (r && std::holds_alternative<client::failure>(*r) && std::get<client::failure>(*r).code == "not_found") lost = true;
        std::this_thread::sleep_for(200ms);
      }
    });
    auto base = [&](const char* f) { return fmt::format("\"process\":{},\"f\":\"{}\",\"lock\":{}", process, f, json_str(lock)); };
    bool unknown = false;
    while (!stop && !lost && !unknown) {
      h.add(base("acquire") + ",\"type\":\"invoke\"");
      auto r = c.propose(wire::encode_command(registry::acquire_lock{lock, session, false}), 1000ms);
      auto res = decode(r);
      if (res && res->outcome.code == registry::code::ok) {
        h.add(base("acquire") + fmt::format(",\"type\":\"ok\",\"token\":{}", res->outcome.value));
      } else if (res || (!r && r.error().code != errc::outcome_unknown)) {
        h.add(base("acquire") + ",\"type\":\"fail\"");
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50));
        continue;
      } else {
        h.add(base("acquire") + ",\"type\":\"info\"");
        unknown = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
      if (lost) break;
      h.add(base("release") + ",\"type\":\"invoke\"");
      auto rel = c.propose(wire::encode_command(registry::release_lock{lock, session}), 1000ms);
      auto rres = decode(rel);
      if (rres && rres->outcome.code == registry::code::ok) {
        h.add(base("release") + ",\"type\":\"ok\"");
      } else if (rres && (rres->outcome.code == registry::code::not_holder ||
                          rres->outcome.code == registry::code::no_session)) {
        // The session expired while this client thought it held the lock:
        // the hold ended whenever that happened.
        h.add(base("release") + ",\"type\":\"fail\"");
        lost = true;
      } else if (rres || (!rel && rel.error().code != errc::outcome_unknown)) {
        h.add(base("release") + ",\"type\":\"fail\"");
        unknown = true;
      } else {
        h.add(base("release") + ",\"type\":\"info\"");
        unknown = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 50));
    }
    if (lost) h.add(base("session_lost") + ",\"type\":\"info\"");
    done = true;
    keepalive.join();
    // Whatever this session still holds ends with it.
    (void)c.propose(wire::encode_command(registry::close_session{session, false}), 1000ms);
  }
}

// The checker's verdict: 0 valid, 1 a violation, 2 a malformed history.
int check(const std::string& path) {
  const char* checker = std::getenv("CONCLAVE_CHECKER");
  auto cmd = fmt::format("python3 {} {}", checker ? checker : "test/jepsen/checker.py", path);
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

void run(int masters, int seconds, std::uint64_t seed) {
  fault_cluster f(masters, seed);
  // One actor system for every client thread (each with its own connections).
  caf::actor_system sys{client_config()};
  history h;
  std::atomic<bool> stop{false};
  std::set<std::string> keys;
  std::mutex keys_mutex;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] { kv_client(sys, f, h, seed * 100 + static_cast<std::uint64_t>(i), stop, keys, keys_mutex); });
  }
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([&, i] { lock_client(sys, f, h, seed * 100 + 50 + static_cast<std::uint64_t>(i), stop); });
  }
  // The nemesis: a fault for 0.5-3 s, then healed for 0.5-2 s.
  auto until = clock_type::now() + std::chrono::seconds(seconds);
  while (clock_type::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + f.rng() % 1500));
    auto kind = f.inject();
    h.add(fmt::format("\"type\":\"nemesis\",\"f\":\"start\",\"fault\":{}", json_str(kind)));
    std::this_thread::sleep_for(std::chrono::milliseconds(500 + f.rng() % 2500));
    f.heal();
    h.add("\"type\":\"nemesis\",\"f\":\"heal\"");
  }
  stop = true;
  for (auto& t : clients) t.join();

  // Read back every key after healing, and again after all masters were
  // killed at once and restarted.
  raft_client c(sys, f.cluster.cluster_id, endpoints(f.cluster));
  REQUIRE(f.cluster.wait_for_leader(20s));
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
  // pass unnoticed while LMDB still has freed pages to reuse).
  int refused = 0;
  for (const auto& m : f.cluster.members()) {
    auto text = f.cluster.log_of(m.id);
    for (auto at = text.find("storage write failed"); at != std::string::npos; at = text.find("storage write failed", at + 1)) {
      ++refused;
    }
  }
  if (f.disks->mounted()) fault_list += fmt::format(" (writes stopped by a full disk: {})", refused);
  MESSAGE(fmt::format("{} masters, {} s, seed {}: {} ok, {} fail, {} info operations; {} keys; faults:{}; history {}",
                      masters, seconds, seed, h.count("\"type\":\"ok\""), h.count("\"type\":\"fail\""),
                      h.count("\"type\":\"info\""), keys.size(), fault_list, path));
  CHECK_MESSAGE(f.mdb_stat_failures.empty(), "mdb_stat failed after a kill: " << f.mdb_stat_failures.front());
  CHECK_MESSAGE(h.count("\"f\":\"read\",\"key\"") > 0, "no reads recorded");
  CHECK_MESSAGE(h.count("\"token\":") > 0, "no lock was ever acquired");
  int verdict = check(path);
  CHECK_MESSAGE(verdict == 0, "the checker found " << (verdict == 1 ? "a violation" : "a malformed history")
                                                   << "; the history is kept in " << path);
}

}  // namespace

TEST_CASE("faults against 3 masters: linearizable KV, exclusive locks with increasing tokens, no acknowledged write lost") {
  if (options.masters != 0 && options.masters != 3) return;
  run(3, options.seconds, options.seed);
}

TEST_CASE("faults against 5 masters: linearizable KV, exclusive locks with increasing tokens, no acknowledged write lost") {
  if (options.masters != 0 && options.masters != 5) return;
  run(5, options.seconds, options.seed + 1);
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
