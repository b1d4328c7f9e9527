// The coordination service as real processes: conclave masters and workers
// on loopback, their registration and liveness, locks passing on when a
// holder dies, workers without masters, quorum loss, and configuration
// errors.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/tcp.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>

#include "roles/push_client.hpp"
#include "roles/registry_reads.hpp"
#include "schema/registry_codec.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"
#include "test/small_disk.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> master_flags(std::vector<std::string> more = {}) {
  std::vector<std::string> f = {"-r", "master", "--session-ttl-ms", "1000", "--member-heartbeat-ms", "100"};
  f.insert(f.end(), more.begin(), more.end());
  return f;
}

pid_t start_worker(process_cluster& c, const std::string& name, int no_master_timeout_ms = 2000,
                   const std::string& ttl_ms = "1000") {
  return c.spawn({c.binary(), "-r", "worker", "--name", name, "--peers", c.peers(), "--cluster-id", c.cluster_id,
                  "--session-ttl-ms", ttl_ms, "--no-master-timeout-ms", std::to_string(no_master_timeout_ms)},
                 name + ".log");
}

using registry::member_status;

// The members the registry lists (only those with a status, if given);
// none when it cannot be read.
struct member_list {
  std::vector<registry::member> all;
  bool has(const std::string& id) const {
    return std::any_of(all.begin(), all.end(), [&](const registry::member& m) { return m.id == id; });
  }
  // "id status, ..." for failure messages.
  std::string text() const {
    std::string out;
    for (const auto& m : all) out += (out.empty() ? "" : ", ") + m.id + " " + registry::to_string(m.status);
    return out;
  }
};

member_list members(process_cluster& c, std::optional<member_status> status = std::nullopt) {
  auto r = ask(c.client(), registry::members_query{status}, 5s);
  return r ? member_list{std::move(r->members)} : member_list{};
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

wire::registry_result run(process_cluster& c, const registry::command& cmd) {
  auto r = c.client().propose(wire::encode_command(cmd), 5s);
  REQUIRE_MESSAGE(r.has_value(), r.error().message() << "\n" << c.logs());
  auto res = wire::decode_result(r->result);
  REQUIRE(res.has_value());
  return *res;
}

}  // namespace

TEST_CASE("masters and workers register; the registry lists them with their resource usage") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  start_worker(c, "w1");
  start_worker(c, "w2");
  REQUIRE(wait_for([&] {
    auto m = members(c, member_status::alive);
    return m.has("w1") && m.has("w2") && m.has("master-1") && m.has("master-3");
  }, 10s));
  auto m = members(c);
  auto role = [&](registry::member_role r) {
    return std::any_of(m.all.begin(), m.all.end(), [&](const registry::member& x) { return x.role == r; });
  };
  CHECK(role(registry::member_role::worker));
  CHECK(role(registry::member_role::master));
  // Resource usage arrives with heartbeats (memory is never zero on a live machine).
  REQUIRE(wait_for([&] {
    auto now = members(c);
    return !now.all.empty() && std::none_of(now.all.begin(), now.all.end(), [](const registry::member& x) {
      return x.usage.memory_available_bytes == 0;
    });
  }, 5s));
}

TEST_CASE("a killed worker is declared dead and shows in the dead list; workers follow a new leader") {
  process_cluster c(3, master_flags(), conclave_binary());
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  // A 60 s TTL: only its broken connection can make it dead within the wait below.
  auto w1 = start_worker(c, "w1", 2000, "60000");
  start_worker(c, "w2");
  REQUIRE(wait_for([&] { return members(c, member_status::alive).has("w2") &&
                                members(c, member_status::alive).has("w1"); }, 10s));
  std::this_thread::sleep_for(500ms);  // a few heartbeats: the leader knows their connections
  ::kill(w1, SIGKILL);
  REQUIRE_MESSAGE(wait_for([&] { return members(c, member_status::dead).has("w1"); }, 5s),
                  c.log_of(*leader) << members(c).text() << " w1 pid " << w1);
  // Kill the leader: w2 keeps its session with the new leader (no expiry storm).
  c.signal(*leader, SIGKILL);
  REQUIRE(c.wait_for_leader(5s, *leader));
  std::this_thread::sleep_for(2500ms);  // more than the session TTL
  auto alive = members(c, member_status::alive);
  CHECK_MESSAGE(alive.has("w2"), members(c).text() << "\n" << c.logs() << "--- w2\n" << [&] {
    std::ifstream in(c.path("w2.log"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }());
}

TEST_CASE("with every master gone, every worker exits with code 3 after its timeout") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto w1 = start_worker(c, "w1", 1500);
  auto w2 = start_worker(c, "w2", 1500);
  REQUIRE(wait_for([&] { return members(c, member_status::alive).has("w2") &&
                                members(c, member_status::alive).has("w1"); }, 10s));
  for (std::uint64_t id = 1; id <= 3; ++id) c.signal(id, SIGKILL);
  auto started = std::chrono::steady_clock::now();
  for (auto pid : {w1, w2}) {
    auto status = c.wait_exit(pid, 10s);
    REQUIRE(status.has_value());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 3);
  }
  CHECK(std::chrono::steady_clock::now() - started >= 1400ms);
}

TEST_CASE("while every master's disk is full, masters answer but none leads: workers stay, and heartbeat again after") {
  small_disks disks(3, 16 << 20);
  if (!disks.mounted()) {
    CONCLAVE_SKIP(disks.why_not());
  }
  process_cluster c(3, master_flags(), conclave_binary(), {disks.data_dirs(), {}, {}});
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto w1 = start_worker(c, "w1", 1500);
  REQUIRE(wait_for([&] { return members(c, member_status::alive).has("w1"); }, 10s));
  disks.fill_all();
  // A large write makes every master's next write fail; then none can lead.
  std::string big(256 << 10, 'b');
  REQUIRE(wait_for([&] {
    auto r = c.client().propose(wire::encode_command(registry::put{"ballast", big, 0, std::nullopt}), 2s);
    return !r && r.error().code == errc::disk_full;
  }, 20s));
  std::this_thread::sleep_for(3s);  // twice the worker's no-master timeout
  CHECK_FALSE(c.wait_exit(w1, 10ms).has_value());
  for (const auto& m : c.members()) {
    auto s = c.status(m.id);
    REQUIRE(s);
    CHECK(s->role != "leader");
  }
  disks.free_all();
  REQUIRE(c.wait_for_leader(20s));
  CHECK(wait_for([&] { return members(c, member_status::alive).has("w1"); }, 10s));
  CHECK_FALSE(c.wait_exit(w1, 10ms).has_value());
}

TEST_CASE("a master cut off from the quorum under on-quorum-loss = exit exits with code 4") {
  process_cluster c(3, master_flags({"--on-quorum-loss", "exit", "--quorum-loss-timeout-ms", "800"}),
                    conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  std::this_thread::sleep_for(500ms);
  c.signal(2, SIGKILL);
  c.signal(3, SIGKILL);
  auto status = c.wait_exit(c.at(1).pid, 10s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 4);
}

TEST_CASE("a lock whose holder dies passes to the next waiter with a larger fencing token") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto a = run(c, registry::open_session{"holder", 1000}).outcome.value;
  auto b = run(c, registry::open_session{"waiter", 5000}).outcome.value;
  auto granted = run(c, registry::acquire_lock{"job", a, true});
  REQUIRE(granted.outcome.code == registry::code::ok);
  auto queued = run(c, registry::acquire_lock{"job", b, true});
  REQUIRE(queued.outcome.code == registry::code::queued);
  // The waiter heartbeats; the holder does not (it "died"): its session expires.
  std::atomic<bool> done{false};
  std::thread beats([&] {
    caf::actor_system sys{client_config()};
    raft_client k(sys, c.cluster_id, c.client().endpoints());
    while (!done) {
      (void)k.to_leader(client::keepalive{b, {}}, 300ms);
      std::this_thread::sleep_for(100ms);
    }
  });
  registry::lock held;
  bool passed = wait_for([&] {
    auto r = ask(c.client(), registry::lock_query{"job"}, 2s);
    if (r && r->value) held = *r->value;
    return held.holder == b;
  }, 10s);
  done = true;
  beats.join();
  REQUIRE_MESSAGE(passed, "held by session " << held.holder);
  CHECK(held.token > granted.outcome.value);
}

TEST_CASE("bad configuration exits with code 2 and changes nothing on disk") {
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto bin = c.binary();
  auto run_conclave = [&](std::vector<std::string> args) {
    args.insert(args.begin(), bin);
    auto pid = c.spawn(args, "bad.log");
    auto status = c.wait_exit(pid, 10s);
    REQUIRE(status.has_value());
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  };
  CHECK(run_conclave({"--no-such-key", "1"}) == 2);
  CHECK(run_conclave({"-r", "nobody", "--cluster-id", "x", "--peers", "1=127.0.0.1:1"}) == 2);
  CHECK(run_conclave({"-r", "master", "--id", "1", "--cluster-id", "x", "--data-dir", c.path("d"), "--peers",
                      "1=127.0.0.1:1,1=127.0.0.1:2"}) == 2);
  CHECK(run_conclave({"-r", "master", "--id", "1", "--cluster-id", "x", "--data-dir", c.path("d"), "--peers",
                      "1=127.0.0.1:1,2=127.0.0.1:1"}) == 2);
  CHECK(run_conclave({"-r", "master", "--id", "1", "--cluster-id", "x", "--data-dir", c.path("d"), "--peers",
                      "1=127.0.0.1:1", "--log-max-mib", "0"}) == 2);
  // The running server's data dir belongs to cluster process-test, node 1.
  auto dir = c.at(1).data_dir;
  auto before = std::filesystem::last_write_time(dir + "/IDENTITY");
  CHECK(run_conclave({"-r", "master", "--id", "1", "--cluster-id", "another", "--data-dir", dir, "--peers",
                      "1=127.0.0.1:1"}) == 2);
  CHECK(run_conclave({"-r", "master", "--id", "2", "--cluster-id", c.cluster_id, "--data-dir", dir, "--peers",
                      "2=127.0.0.1:1"}) == 2);
  CHECK(std::filesystem::last_write_time(dir + "/IDENTITY") == before);
  std::ifstream log(c.path("bad.log"));
  std::stringstream text;
  text << log.rdbuf();
  CHECK(text.str().find("unknown flag '--no-such-key'") != std::string::npos);
  CHECK(text.str().find("belongs to another cluster or server") != std::string::npos);
  CHECK(text.str().find("listed twice") != std::string::npos);
  CHECK(text.str().find("log-max-mib: '0' is not between 1 and") != std::string::npos);
}

TEST_CASE("a client given only a follower follows its hint to the leader (a worker's heartbeats do not spin on it)") {
  process_cluster c(3, master_flags(), conclave_binary());
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  auto follower = *leader % 3 + 1;
  auto session = run(c, registry::open_session{"w", 5000}).outcome.value;
  caf::actor_system sys{client_config()};
  raft_client only(sys, c.cluster_id, {c.at(follower).address});
  // A keepalive must reach the leader (sessions live on the connection the
  // leader hears them on); the follower answers not_leader, naming it.
  auto r = only.to_leader(client::keepalive{session, ""}, 3s);
  REQUIRE_MESSAGE(r.has_value(), r.error().message());
  CHECK(std::holds_alternative<client::ok>(*r));
  CHECK(only.endpoints().size() == 2);  // the leader, learned from the hint
}

TEST_CASE("any master answers: a follower passes writes and linearizable reads to the leader, stale reads it answers itself") {
  process_cluster c(3, master_flags(), conclave_binary());
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  REQUIRE(run(c, registry::put{"/k", "v", 0, std::nullopt}).outcome.code == registry::code::ok);
  auto value_is = [](const expected<registry::key_result>& r, const std::string& v) {
    return r && r->value && r->value->value == v;
  };
  CHECK(value_is(ask(c.client(), registry::get_key{"/k"}, 5s), "v"));
  auto follower = *leader == 1 ? 2u : 1u;
  // A follower passes a linearizable read and a write on to the leader.
  auto passed = ask_at(c.client(), c.at(follower).address, registry::get_key{"/k"}, false, 2s);
  CHECK_MESSAGE(value_is(passed, "v"), (passed ? std::string("no value") : passed.error().message()));
  auto write = c.client().call(c.at(follower).address,
                               client::propose{wire::encode_command(registry::put{"/k2", "w", 0, std::nullopt})});
  REQUIRE(write.has_value());
  CHECK(std::holds_alternative<client::committed>(*write));
  // And answers a stale read from what it has applied.
  CHECK(wait_for([&] { return value_is(ask_at(c.client(), c.at(follower).address, registry::get_key{"/k"}, true, 2s), "v"); },
                 5s));
}

namespace {

enum class engine_fault { leader_kill, transfer_leader, worker_freeze };

// 3 engine masters and 2 workers run 120 tasks; part-way through, `fault`.
// Every task must run exactly once (each worker logs what it executed).
void engine_survives(engine_fault fault) {
  const char* env = std::getenv("CONCLAVE_ENGINE");
  std::string engine = env ? env : "build/examples/engine";
  // Suspect after 3 heartbeats (300 ms); workers die only after 10 s of silence.
  process_cluster c(3, {"-r", "master", "--tasks", "120", "--session-ttl-ms", "1000", "--member-heartbeat-ms", "100"},
                    engine);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  std::map<std::string, pid_t> workers;
  for (auto name : {"w1", "w2"}) {
    workers[name] = c.spawn({engine, "-r", "worker", "--name", name, "--peers", c.peers(), "--cluster-id",
                             c.cluster_id, "--work-ms", fault == engine_fault::worker_freeze ? "100" : "40",
                             "--session-ttl-ms", "10000", "--member-heartbeat-ms", "100"},
                            std::string(name) + ".log");
  }
  auto done_count = [&] {
    auto r = ask(c.client(), registry::list_prefix{"/engine/done/"}, 5s);
    return r ? r->keys.size() : std::size_t{0};
  };
  REQUIRE(wait_for([&] { return done_count() >= 30; }, 60s));
  switch (fault) {
    case engine_fault::leader_kill:
      c.signal(*leader, SIGKILL);
      break;
    case engine_fault::transfer_leader: {
      // The old leader lives on: it must hand the engine over.
      REQUIRE(wait_for([&] {
        (void)c.client().to_leader(client::transfer_leadership{0}, 5s);
        auto now = c.wait_for_leader(2s);
        return now && *now != *leader;
      }, 30s));
      break;
    }
    case engine_fault::worker_freeze: {
      // Each worker in turn is frozen until it is suspect and the other has
      // moved on, but not until it is dead (its TTL is 10 s): it wakes in the
      // middle of its tasks (it spends most of its time in one: 100 ms each).
      for (const auto& freeze : {std::pair<std::string, std::size_t>{"w1", 30}, {"w2", 70}}) {
        const auto& name = freeze.first;
        REQUIRE(wait_for([&] { return done_count() >= freeze.second; }, 60s));
        ::kill(workers[name], SIGSTOP);
        bool suspect = wait_for([&] { return members(c, member_status::suspect).has(name); }, 5s);
        auto before = done_count();
        if (suspect) wait_for([&] { return done_count() >= before + 10; }, 3s);
        ::kill(workers[name], SIGCONT);
        REQUIRE_MESSAGE(suspect, name);
        CHECK(!members(c, member_status::dead).has(name));
      }
      break;
    }
  }
  REQUIRE(wait_for([&] { return done_count() == 120; }, 60s));
  // Exactly once: every task executed by one worker, one time.
  std::map<std::string, int> executed;
  for (auto name : {"w1", "w2"}) {
    std::ifstream log(c.path(std::string(name) + ".log"));
    std::string line;
    while (std::getline(log, line)) {
      auto pos = line.find("executed task ");
      if (pos != std::string::npos) ++executed[line.substr(pos + 14, 6)];
    }
  }
  CHECK(executed.size() == 120);
  for (const auto& [task, times] : executed) CHECK_MESSAGE(times == 1, "task " << task);
}

}  // namespace

TEST_CASE("the example engine loses no task and runs none twice across a leader kill") {
  engine_survives(engine_fault::leader_kill);
}

TEST_CASE("the example engine hands over on a leadership transfer (the old leader alive): every task runs once") {
  engine_survives(engine_fault::transfer_leader);
}

TEST_CASE("the example engine runs no task twice when a worker freezes briefly (suspect, not dead)") {
  engine_survives(engine_fault::worker_freeze);
}

TEST_CASE("a master started with join is added, takes part in the quorum, and a master is removed") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto port = free_port();
  auto peers = c.peers() + ",4=127.0.0.1:" + std::to_string(port);
  auto dir = c.path("node4");
  auto fourth = c.spawn({c.binary(), "-r", "master", "--id", "4", "--join", "true", "--peers", peers, "--cluster-id",
                         c.cluster_id, "--data-dir", dir, "--session-ttl-ms", "1000"},
                        "node4.log");
  std::string ctl = conclavectl_binary();
  std::string endpoints;
  for (const auto& m : c.members()) endpoints += (endpoints.empty() ? "" : ",") + m.address.text();
  auto conclavectl = [&](std::vector<std::string> args, const std::string& log) {
    std::vector<std::string> all = {ctl, "--endpoints", endpoints, "--cluster-id", c.cluster_id};
    all.insert(all.end(), args.begin(), args.end());
    auto pid = c.spawn(all, log);
    auto status = c.wait_exit(pid, 60s);
    REQUIRE(status.has_value());
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  };
  CHECK(conclavectl({"add-master", "4", "127.0.0.1:" + std::to_string(port)}, "add.log") == 0);
  // Remove master 1 and kill master 2: of the voters {2, 3, 4} only 3 and 4
  // remain, a quorum only because 4 votes.
  CHECK(conclavectl({"remove-master", "1"}, "remove.log") == 0);
  c.signal(2, SIGKILL);
  c.signal(1, SIGKILL);
  caf::actor_system sys{client_config()};
  raft_client three_and_four(sys, c.cluster_id, {c.at(3).address, raft::endpoint{"127.0.0.1", port}});
  auto r = three_and_four.propose(wire::encode_command(registry::put{"/after", "membership", 0, std::nullopt}), 15s);
  CHECK_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  (void)fourth;
}

TEST_CASE("add-master waits at the leader while the new master cannot catch up, and succeeds once it can") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  // More entries than a learner may lag behind and be promoted (64).
  for (int i = 0; i < 80; ++i) {
    auto r = c.client().propose(wire::encode_command(registry::put{"/k" + std::to_string(i), "v", 0, std::nullopt}), 5s);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  }
  auto port = free_port();
  raft::endpoint fourth_at{"127.0.0.1", port};
  auto peers = c.peers() + ",4=" + fourth_at.text();
  (void)c.spawn({c.binary(), "-r", "master", "--id", "4", "--join", "true", "--peers", peers, "--cluster-id",
                 c.cluster_id, "--data-dir", c.path("node4"), "--session-ttl-ms", "1000", "--fault-injection", "true"},
                "node4.log");
  // The new master hears nothing from the others, so its log stays empty.
  caf::actor_system sys{client_config()};
  fault_channel faults(sys, c.cluster_id);
  auto cut = [&](bool on) {
    for (std::uint64_t peer = 1; peer <= 3; ++peer) {
      if (!faults.drop(fourth_at, peer, on, on)) return false;
    }
    return true;
  };
  REQUIRE(wait_for([&] { return cut(true); }, 10s));
  std::string endpoints;
  for (const auto& m : c.members()) endpoints += (endpoints.empty() ? "" : ",") + m.address.text();
  auto ctl = c.spawn({conclavectl_binary(), "--endpoints", endpoints, "--cluster-id", c.cluster_id, "add-master", "4",
                      fourth_at.text()},
                     "add.log");
  // Still waiting well past one request's usual 1 s: the leader holds the promotion.
  CHECK_FALSE(c.wait_exit(ctl, 3s).has_value());
  REQUIRE(cut(false));
  auto status = c.wait_exit(ctl, 40s);
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  auto log = c.log_of(1) + c.log_of(2) + c.log_of(3);
  CHECK(log.find("membership change waits: server 4 is at") != std::string::npos);
  CHECK(log.find("membership change proposed at") != std::string::npos);
}

TEST_CASE("a master cut off from the quorum under on-quorum-loss = fence keeps running, fenced, and rejoins") {
  process_cluster c(3, master_flags({"--quorum-loss-timeout-ms", "600"}), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  std::this_thread::sleep_for(500ms);
  c.signal(2, SIGKILL);
  c.signal(3, SIGKILL);
  // Fenced: still running, not leading, saying so.
  REQUIRE(wait_for([&] { return c.log_of(1).find("fenced until a leader is back") != std::string::npos; }, 10s));
  CHECK_FALSE(c.wait_exit(c.at(1).pid, 500ms).has_value());
  auto s = c.status(1);
  REQUIRE(s.has_value());
  CHECK(s->role != "leader");
  // The others come back: it rejoins.
  c.start(2);
  c.start(3);
  REQUIRE(wait_for([&] { return c.log_of(1).find("no longer fenced") != std::string::npos; }, 15s));
}

TEST_CASE("a frozen worker (SIGSTOP, its connection open) turns suspect, then dead at its TTL") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto w1 = start_worker(c, "w1", 2000, "1500");
  REQUIRE(wait_for([&] { return members(c, member_status::alive).has("w1"); }, 10s));
  std::this_thread::sleep_for(300ms);
  ::kill(w1, SIGSTOP);
  REQUIRE(wait_for([&] { return members(c, member_status::suspect).has("w1"); }, 5s));
  REQUIRE(wait_for([&] { return members(c, member_status::dead).has("w1"); }, 5s));
  ::kill(w1, SIGCONT);
  // Resumed, it finds its session gone and registers again.
  REQUIRE(wait_for([&] { return members(c, member_status::alive).has("w1"); }, 10s));
}

namespace {

// What `conclavectl watch` printed: each change line and each compaction
// (with the listing after it), in output order.
struct watch_output {
  struct line {
    bool compacted = false;
    std::uint64_t rev = 0;
    std::string type, key, value;
    std::map<std::string, std::string> listing;  // compacted: the keys listed
  };
  std::vector<line> lines;
  std::vector<std::string> errors;  // what else it printed (stderr)
};

std::string json_field(const std::string& line, const std::string& name) {
  auto pos = line.find("\"" + name + "\":");
  if (pos == std::string::npos) return {};
  pos += name.size() + 3;
  if (line[pos] != '"') return line.substr(pos, line.find_first_of(",}", pos) - pos);
  return line.substr(pos + 1, line.find('"', pos + 1) - pos - 1);  // test keys and values have no escapes
}

watch_output read_watch(const std::string& path) {
  watch_output out;
  std::ifstream in(path);
  std::string text;
  while (std::getline(in, text)) {
    if (text.rfind("{", 0) != 0) {
      out.errors.push_back(text);
      continue;
    }
    watch_output::line l;
    l.rev = std::strtoull(json_field(text, "revision").c_str(), nullptr, 10);
    if (text.find("\"compacted\":true") != std::string::npos) {
      l.compacted = true;
      auto n = std::strtoull(json_field(text, "keys").c_str(), nullptr, 10);
      for (std::uint64_t i = 0; i < n && std::getline(in, text); ++i) l.listing[json_field(text, "key")] = json_field(text, "value");
    } else {
      l.type = json_field(text, "type");
      l.key = json_field(text, "key");
      l.value = json_field(text, "value");
    }
    out.lines.push_back(l);
  }
  return out;
}

// The keys a reader of the output holds: changes applied, a listing replacing all.
std::map<std::string, std::string> replay(const watch_output& w) {
  std::map<std::string, std::string> view;
  for (const auto& l : w.lines) {
    if (l.compacted) view = l.listing;
    else if (l.type == "delete") view.erase(l.key);
    else view[l.key] = l.value;
  }
  return view;
}

// Revisions only grow: no change printed twice, none older than one printed.
bool never_back(const watch_output& w) {
  std::uint64_t last = 0;
  for (const auto& l : w.lines) {
    if (l.compacted ? l.rev < last : l.rev <= last) return false;
    last = l.rev;
  }
  return true;
}

}  // namespace

TEST_CASE("conclavectl watch: past the history it prints compacted and a listing, then continues after it") {
  // A history of 4 changes; a session ending with 10 ephemeral keys deletes
  // them all at one revision, beyond what a watcher can find in it.
  process_cluster c(1, master_flags({"--watch-history", "4"}), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto keep = run(c, registry::put{"/c/keep", "k", 0, std::nullopt}).outcome;
  REQUIRE(keep.code == registry::code::ok);
  auto log = c.path("watch.log");
  c.spawn({conclavectl_binary(), "--endpoints", c.at(1).address.text(), "--cluster-id", c.cluster_id, "watch", "/c/",
           "--from", std::to_string(keep.value)},
          "watch.log");
  auto s = run(c, registry::open_session{"client", 60000}).outcome.value;
  for (int i = 0; i < 10; ++i) {
    REQUIRE(run(c, registry::put{"/c/eph" + std::to_string(i), "e", s, std::nullopt}).outcome.code == registry::code::ok);
  }
  REQUIRE(run(c, registry::close_session{s, false}).outcome.code == registry::code::ok);
  REQUIRE(run(c, registry::put{"/c/after", "a", 0, std::nullopt}).outcome.code == registry::code::ok);
  std::map<std::string, std::string> want = {{"/c/after", "a"}, {"/c/keep", "k"}};
  bool converged = wait_for([&] { return replay(read_watch(log)) == want; }, 15s);
  auto out = read_watch(log);
  std::string printed;
  for (const auto& l : out.lines) printed += (l.compacted ? "compacted " : l.type + " " + l.key + " ") + std::to_string(l.rev) + "\n";
  for (const auto& e : out.errors) printed += e + "\n";
  REQUIRE_MESSAGE(converged, printed);
  CHECK(std::any_of(out.lines.begin(), out.lines.end(), [](const auto& l) { return l.compacted; }));
  CHECK_MESSAGE(never_back(out), printed);
}

TEST_CASE("conclavectl watch --stale never repeats or goes back when a server behind answers") {
  process_cluster c(3, master_flags({"--fault-injection", "true"}), conclave_binary());
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  auto behind = *leader == 1 ? 2u : 1u;
  auto a = run(c, registry::put{"/s/a", "1", 0, std::nullopt}).outcome;
  REQUIRE(a.code == registry::code::ok);
  // `behind` has /s/a, then is cut off: it misses /s/b but still answers stale reads.
  REQUIRE(wait_for([&] {
    auto r = ask_at(c.client(), c.at(behind).address, registry::get_key{"/s/a"}, true, 2s);
    return r && r->value && r->value->value == "1";
  }, 10s));
  REQUIRE(c.isolate(behind).has_value());
  REQUIRE(run(c, registry::put{"/s/b", "2", 0, std::nullopt}).outcome.code == registry::code::ok);
  // Stale reads go to the first server that answers: the leader, then (once it is gone) `behind`.
  auto log = c.path("watch.log");
  c.spawn({conclavectl_binary(), "--stale", "--endpoints", c.at(*leader).address.text() + "," + c.at(behind).address.text(),
           "--cluster-id", c.cluster_id, "watch", "/s/", "--from", std::to_string(a.value - 1)},
          "watch.log");
  REQUIRE(wait_for([&] { return replay(read_watch(log)).count("/s/b"); }, 15s));
  c.signal(*leader, SIGKILL);
  // Give the watch time to read from `behind` (a few polls), then let it catch up.
  std::this_thread::sleep_for(2s);
  REQUIRE(c.heal(behind).has_value());
  REQUIRE(c.wait_for_leader(20s, *leader));
  REQUIRE(run(c, registry::put{"/s/c", "3", 0, std::nullopt}).outcome.code == registry::code::ok);
  REQUIRE(wait_for([&] { return replay(read_watch(log)).count("/s/c"); }, 20s));
  auto out = read_watch(log);
  std::string printed;
  for (const auto& l : out.lines) printed += l.type + " " + l.key + " " + std::to_string(l.rev) + "\n";
  CHECK_MESSAGE(never_back(out), printed);
  CHECK_MESSAGE(out.lines.size() == 3, printed);  // /s/a, /s/b, /s/c, each once
}

// --- sessions and locks of clients (conclavectl, raft_client) ----------------------

namespace {

// conclavectl against the cluster, started in the background (killed with the cluster).
pid_t start_conclavectl(process_cluster& c, std::vector<std::string> args, const std::string& log) {
  std::string endpoints;
  for (const auto& m : c.members()) endpoints += (endpoints.empty() ? "" : ",") + m.address.text();
  std::vector<std::string> all = {conclavectl_binary(), "--endpoints", endpoints, "--cluster-id", c.cluster_id};
  all.insert(all.end(), args.begin(), args.end());
  return c.spawn(all, log);
}

// A lock as the registry shows it (holder 0: free or unknown).
struct lock_view {
  bool read = false;
  std::uint64_t holder = 0, token = 0;
  std::vector<std::uint64_t> waiters;
};

lock_view read_lock(process_cluster& c, const std::string& name) {
  lock_view v;
  auto r = ask(c.client(), registry::lock_query{name}, 5s);
  if (!r) return v;
  v.read = true;
  if (r->value) {
    v.holder = r->value->holder;
    v.token = r->value->token;
    v.waiters = r->value->waiters;
  }
  return v;
}

bool exists(const std::string& path) { return std::filesystem::exists(path); }

bool alive_pid(pid_t pid) { return ::kill(pid, 0) == 0; }

// Whether `pid` runs (a zombie does not): for processes that are not our
// children, which someone else reaps.
bool running(pid_t pid) {
  auto stat = file_text("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' && stat[paren + 2] != 'X';
}

// The pid a command wrote to `path` (0 while it has not).
pid_t pid_in(const std::string& path) { return static_cast<pid_t>(std::strtol(file_text(path).c_str(), nullptr, 10)); }

// Shell: wait while the cluster's directory exists, so that a command (or a
// process it started) never outlives its test, whatever fails.
std::string while_test_runs(process_cluster& c) { return "while [ -d " + c.path(".") + " ]; do sleep 0.05; done"; }

// conclavectl's session TTL (session_keeper::ttl_ms in roles/conclavectl_main.cpp).
constexpr auto conclavectl_ttl = 3000ms;

// A TCP forwarder on loopback in front of one server: a test can break every
// connection through it (both ends see them close; the server runs on) or
// stall them (they stay open and nothing passes, as over a dead link).
class tcp_proxy {
 public:
  explicit tcp_proxy(const raft::endpoint& to) {
    target_.sin_family = AF_INET;
    target_.sin_port = htons(to.port);
    REQUIRE(::inet_pton(AF_INET, to.host.c_str(), &target_.sin_addr) == 1);
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&a), len) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~tcp_proxy() {
    done_ = true;
    thread_.join();
    close_all();
    ::close(listener_);
  }
  raft::endpoint address() const { return raft::endpoint{"127.0.0.1", port_}; }
  // Closes every connection through it; returns once they are closed. Later
  // connections pass.
  void break_all() {
    auto want = ++breaks_wanted_;
    while (breaks_done_ < want) std::this_thread::sleep_for(1ms);
  }
  void stall() { stalled_ = true; }
  std::size_t connections() const { return open_; }

 private:
  void close_all() {
    for (auto [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    pairs_.clear();
    open_ = 0;
  }

  void run() {
    std::vector<char> buf(65536);
    while (!done_) {
      if (breaks_done_ < breaks_wanted_) {
        close_all();
        breaks_done_ = breaks_wanted_.load();
      }
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto [a, b] : pairs_) {
        fds.push_back({a, static_cast<short>(stalled_ ? 0 : POLLIN), 0});
        fds.push_back({b, static_cast<short>(stalled_ ? 0 : POLLIN), 0});
      }
      if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
      auto polled = pairs_.size();
      if (fds[0].revents & POLLIN) {
        int in = ::accept(listener_, nullptr, nullptr);
        int out = ::socket(AF_INET, SOCK_STREAM, 0);
        if (in >= 0 && ::connect(out, reinterpret_cast<const sockaddr*>(&target_), sizeof target_) == 0) {
          int one = 1;
          ::setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ::setsockopt(out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          pairs_.emplace_back(in, out);
        } else {
          if (in >= 0) ::close(in);
          ::close(out);
        }
      }
      // Passes what `from` has to `to`; false once `from` is closed.
      auto pass = [&](int from, int to, short revents) {
        if (!(revents & (POLLIN | POLLHUP | POLLERR))) return true;
        auto n = ::read(from, buf.data(), buf.size());
        for (ssize_t sent = 0; n > 0 && sent < n;) {
          auto w = ::write(to, buf.data() + sent, static_cast<std::size_t>(n - sent));
          if (w <= 0) return false;
          sent += w;
        }
        return n > 0;
      };
      std::vector<std::pair<int, int>> kept;
      for (std::size_t i = 0; i < pairs_.size(); ++i) {
        auto [a, b] = pairs_[i];
        if (i >= polled || (pass(a, b, fds[1 + 2 * i].revents) && pass(b, a, fds[2 + 2 * i].revents))) {
          kept.emplace_back(a, b);
        } else {
          ::close(a);
          ::close(b);
        }
      }
      pairs_ = kept;
      open_ = pairs_.size();
    }
  }

  sockaddr_in target_{};
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::vector<std::pair<int, int>> pairs_;  // (client side, server side), the proxy's thread only
  std::atomic<std::size_t> open_{0};
  std::atomic<std::uint64_t> breaks_wanted_{0}, breaks_done_{0};
  std::atomic<bool> stalled_{false}, done_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("a slow reply does not expire a session") {
  // One master: no election can step in while it is frozen.
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto session = run(c, registry::open_session{"slow", 20000}).outcome.value;
  REQUIRE(run(c, registry::acquire_lock{"slow-lock", session, false}).outcome.code == registry::code::ok);
  caf::actor_system sys{client_config()};
  raft_client k(sys, c.cluster_id, c.client().endpoints());
  auto keepalive = [&](std::chrono::milliseconds timeout) {
    return k.call(c.at(1).address, client::keepalive{session, {}}, timeout);
  };
  // The leader learns which connection carries the session.
  auto first = keepalive(5s);
  REQUIRE(first.has_value());
  REQUIRE(std::holds_alternative<client::ok>(*first));
  // A reply that comes after the client stopped waiting.
  REQUIRE(freeze(c.at(1).pid));
  auto slow = keepalive(200ms);
  c.signal(1, SIGCONT);
  CHECK_FALSE(slow.has_value());
  // Far longer than the grace a broken connection gets (100 ms), far
  // shorter than the session's TTL: the session must still be there.
  std::this_thread::sleep_for(2s);
  auto next = keepalive(5s);
  REQUIRE(next.has_value());
  CHECK_MESSAGE(std::holds_alternative<client::ok>(*next), c.log_of(1));
  CHECK(read_lock(c, "slow-lock").holder == session);
}

TEST_CASE("a session lives on the connection it was last heard on: a connection it left may break") {
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto session = run(c, registry::open_session{"moved", 20000}).outcome.value;
  caf::actor_system sys{client_config()};
  auto keepalive = [&](raft_client& k) {
    auto r = k.call(c.at(1).address, client::keepalive{session, {}}, 5s);
    return r && std::holds_alternative<client::ok>(*r);
  };
  raft_client moved_to(sys, c.cluster_id, c.client().endpoints());
  {
    // Heard first on one connection, then on another (a client that
    // reconnected); then the first one breaks.
    raft_client left(sys, c.cluster_id, c.client().endpoints());
    REQUIRE(keepalive(left));
    REQUIRE(keepalive(moved_to));
  }
  // Far longer than the grace a broken connection gets (100 ms), far shorter
  // than the TTL, with no heartbeat meanwhile: the session must still be there.
  std::this_thread::sleep_for(1s);
  CHECK_MESSAGE(keepalive(moved_to), c.log_of(1));
}

TEST_CASE("a detached heartbeat (an etcd lease's) leaves its session to the TTL when its connection breaks") {
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto detached = run(c, registry::open_session{"lease", 20000}).outcome.value;
  auto tied = run(c, registry::open_session{"tied", 20000}).outcome.value;
  caf::actor_system sys{client_config()};
  {
    raft_client k(sys, c.cluster_id, c.client().endpoints());
    auto a = k.call(c.at(1).address, client::keepalive{detached, {}, true}, 5s);
    auto b = k.call(c.at(1).address, client::keepalive{tied, {}}, 5s);
    REQUIRE((a && std::holds_alternative<client::ok>(*a)));
    REQUIRE((b && std::holds_alternative<client::ok>(*b)));
  }  // the connection breaks
  // Longer than the grace a broken connection gets (100 ms): the tied
  // session is gone, the detached one lives until its TTL.
  CHECK(wait_for([&] {
    auto r = ask(c.client(), registry::session_query{tied}, 2s);
    return r && !r->value;
  }, 5s));
  auto r = ask(c.client(), registry::session_query{detached}, 2s);
  REQUIRE(r.has_value());
  CHECK_MESSAGE(r->value.has_value(), c.log_of(1));
}

TEST_CASE("a session survives a leader frozen longer than its TTL") {
  process_cluster c(3, master_flags(), conclave_binary());
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  auto w1 = c.spawn({c.binary(), "-r", "worker", "--name", "w1", "--peers", c.peers(), "--cluster-id", c.cluster_id,
                     "--session-ttl-ms", "2000", "--member-heartbeat-ms", "100", "--no-master-timeout-ms", "60000"},
                    "w1.log");
  REQUIRE(wait_for([&] { return members(c, member_status::alive).has("w1"); }, 10s));
  // A holds L (conclavectl's session TTL is 3 s) until told to stop; B waits for it.
  auto a = start_conclavectl(
      c, {"lock", "L", "--", "sh", "-c",
          "echo $CONCLAVE_FENCING_TOKEN > " + c.path("a.token") + "; while [ ! -e " + c.path("release") +
              " ]; do sleep 0.05; done"},
      "a.log");
  REQUIRE(wait_for([&] { return exists(c.path("a.token")); }, 10s));
  auto b = start_conclavectl(c, {"lock", "L", "--", "sh", "-c", "echo $CONCLAVE_FENCING_TOKEN > " + c.path("b.token")},
                             "b.log");
  REQUIRE(wait_for([&] { return read_lock(c, "L").waiters.size() == 1; }, 10s));
  auto holder = read_lock(c, "L").holder;
  REQUIRE(holder != 0);

  REQUIRE(freeze(c.at(*leader).pid));
  // Twice conclavectl's TTL, three times the worker's: every client must find
  // the new leader, and nobody may be expired meanwhile.
  auto until = std::chrono::steady_clock::now() + 6s;
  std::string trouble;
  while (trouble.empty() && std::chrono::steady_clock::now() < until) {
    auto l = read_lock(c, "L");
    if (l.read && l.holder != holder) trouble = "L passed from session " + std::to_string(holder) + " to " + std::to_string(l.holder);
    if (members(c, member_status::dead).has("w1")) trouble = "w1 was declared dead";
    if (exists(c.path("b.token"))) trouble = "B ran its command while A held L";
    if (c.wait_exit(a, 1ms)) trouble = "A exited while the leader was frozen";
    if (c.wait_exit(b, 1ms)) trouble = "B exited while the leader was frozen";
    std::this_thread::sleep_for(100ms);
  }
  c.signal(*leader, SIGCONT);
  CHECK_MESSAGE(trouble.empty(), trouble << "\nA: " << file_text(c.path("a.log")) << "\nB: " << file_text(c.path("b.log")));
  CHECK(alive_pid(w1));

  // A finishes; the waiter gets L with a larger token.
  std::ofstream(c.path("release")) << "now";
  auto a_status = c.wait_exit(a, 20s);
  REQUIRE(a_status);
  CHECK(WIFEXITED(*a_status));
  CHECK(WEXITSTATUS(*a_status) == 0);
  auto b_status = c.wait_exit(b, 20s);
  REQUIRE_MESSAGE(b_status, "B never got L: " << file_text(c.path("b.log")));
  CHECK(WEXITSTATUS(*b_status) == 0);
  CHECK(std::stoull(file_text(c.path("b.token"))) > std::stoull(file_text(c.path("a.token"))));
  CHECK(!members(c, member_status::dead).has("w1"));
}

TEST_CASE("conclavectl lock stops CMD and every process CMD started when its session is lost, and exits 4") {
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  // A command that ignores SIGTERM (noting it), with a child that ignores it
  // too: both must be killed all the same.
  auto a = start_conclavectl(
      c, {"lock", "L", "--", "sh", "-c",
          "trap 'echo term > " + c.path("a.term") + "' TERM; echo $$ > " + c.path("a.pid") + "; (trap '' TERM; " +
              while_test_runs(c) + ") & echo $! > " + c.path("a.child") + "; " + while_test_runs(c)},
      "a.log");
  REQUIRE(wait_for([&] { return pid_in(c.path("a.pid")) > 0 && pid_in(c.path("a.child")) > 0; }, 10s));
  auto cmd = pid_in(c.path("a.pid")), child = pid_in(c.path("a.child"));
  auto holder = read_lock(c, "L").holder;
  REQUIRE(holder != 0);
  // The session ends from outside, as when the leader expires it.
  REQUIRE(run(c, registry::close_session{holder, true}).outcome.code == registry::code::ok);
  auto status = c.wait_exit(a, 30s);
  REQUIRE_MESSAGE(status, "conclavectl still runs its command: " << file_text(c.path("a.log")));
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 4);
  CHECK(exists(c.path("a.term")));
  CHECK_FALSE(alive_pid(cmd));
  CHECK_MESSAGE(wait_for([&] { return !running(child); }, 10s), "a process CMD started outlived the lock");
  CHECK(file_text(c.path("a.log")).find("lock 'L' lost") != std::string::npos);
}

TEST_CASE("conclavectl lock stops waiting when its session is lost, and exits 4") {
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto holder = run(c, registry::open_session{"holder", 60000}).outcome.value;
  REQUIRE(run(c, registry::acquire_lock{"L", holder, false}).outcome.code == registry::code::ok);
  auto b = start_conclavectl(c, {"lock", "L", "--", "sh", "-c", "echo ran > " + c.path("b.ran")}, "b.log");
  std::uint64_t waiter = 0;
  REQUIRE(wait_for([&] {
    auto l = read_lock(c, "L");
    waiter = l.waiters.empty() ? 0 : l.waiters.front();
    return waiter != 0;
  }, 10s));
  REQUIRE(run(c, registry::close_session{waiter, true}).outcome.code == registry::code::ok);
  auto status = c.wait_exit(b, 30s);
  REQUIRE_MESSAGE(status, "conclavectl still waits for the lock: " << file_text(c.path("b.log")));
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 4);
  CHECK_FALSE(exists(c.path("b.ran")));
  CHECK(file_text(c.path("b.log")).find("lock 'L' lost") != std::string::npos);
}

TEST_CASE("conclavectl lock passes SIGTERM to CMD's process group, then releases the lock and exits with CMD's status") {
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto a = start_conclavectl(
      c, {"lock", "L", "--", "sh", "-c",
          "trap 'echo term > " + c.path("a.term") + "; exit 7' TERM; (trap 'echo term > " + c.path("child.term") +
              "; exit 0' TERM; echo $$ > " + c.path("child.ready") + "; " + while_test_runs(c) + ") & " +
              while_test_runs(c)},
      "a.log");
  REQUIRE(wait_for([&] { return !file_text(c.path("child.ready")).empty(); }, 10s));
  REQUIRE(read_lock(c, "L").holder != 0);
  ::kill(a, SIGTERM);
  auto status = c.wait_exit(a, 30s);
  REQUIRE_MESSAGE(status, "conclavectl still runs: " << file_text(c.path("a.log")));
  REQUIRE_MESSAGE(WIFEXITED(*status), "conclavectl was ended by the signal instead of passing it on");
  CHECK(WEXITSTATUS(*status) == 7);
  CHECK(exists(c.path("a.term")));
  CHECK(wait_for([&] { return exists(c.path("child.term")); }, 10s));
  // Released as it exited, not when its session's TTL ran out.
  auto l = read_lock(c, "L");
  CHECK(l.read);
  CHECK(l.holder == 0);
}

TEST_CASE("CMD of conclavectl lock dies with conclavectl (kill -9): it never runs without the lock") {
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto a = start_conclavectl(
      c, {"lock", "L", "--", "sh", "-c", "echo $$ > " + c.path("a.pid") + "; " + while_test_runs(c)}, "a.log");
  REQUIRE(wait_for([&] { return pid_in(c.path("a.pid")) > 0; }, 10s));
  auto cmd = pid_in(c.path("a.pid"));
  ::kill(a, SIGKILL);
  REQUIRE(c.wait_exit(a, 10s));
  CHECK_MESSAGE(wait_for([&] { return !running(cmd); }, 10s), "CMD runs on after conclavectl died");
}

TEST_CASE("conclavectl lock keeps its lock when its connection to the leader breaks: the next keepalive goes out at once") {
  // One master behind a forwarder: only the connection breaks, the leader
  // runs on and expires the session 100 ms after the break unless it hears
  // from it again.
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  tcp_proxy proxy(c.at(1).address);
  auto a = c.spawn({conclavectl_binary(), "--endpoints", proxy.address().text(), "--cluster-id", c.cluster_id, "lock", "L",
                    "--", "sh", "-c",
                    "echo $CONCLAVE_FENCING_TOKEN > " + c.path("a.token") + "; while [ ! -e " + c.path("release") +
                        " ] && [ -d " + c.path(".") + " ]; do sleep 0.05; done"},
                   "a.log");
  REQUIRE(wait_for([&] { return exists(c.path("a.token")); }, 10s));
  auto holder = read_lock(c, "L").holder;
  REQUIRE(holder != 0);
  // Breaks at different points of the keepalive cycle (a tenth of the TTL).
  std::string trouble;
  for (int k = 0; k < 8 && trouble.empty(); ++k) {
    proxy.break_all();
    // conclavectl reconnects by itself (its next keepalive).
    if (!wait_for([&] { return proxy.connections() > 0 || !alive_pid(a); }, conclavectl_ttl)) {
      trouble = "conclavectl did not reconnect";
    }
    std::this_thread::sleep_for(conclavectl_ttl / 10 + k * conclavectl_ttl / 70);
    if (c.wait_exit(a, 1ms)) trouble = "conclavectl exited after connection break " + std::to_string(k + 1);
  }
  REQUIRE_MESSAGE(trouble.empty(), trouble << "\n" << file_text(c.path("a.log")));
  CHECK(read_lock(c, "L").holder == holder);
  std::ofstream(c.path("release")) << "now";
  auto status = c.wait_exit(a, 20s);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

TEST_CASE("conclavectl lock stops CMD before the leader can expire its session") {
  // A reaches the only master through a forwarder that then stalls (a dead
  // link): the master, alive, expires A's session a TTL after it last heard
  // from it and gives L to B, whose command looks whether A's was told to stop.
  process_cluster c(1, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  tcp_proxy proxy(c.at(1).address);
  auto a = c.spawn({conclavectl_binary(), "--endpoints", proxy.address().text(), "--cluster-id", c.cluster_id, "lock", "L",
                    "--", "sh", "-c",
                    "trap 'echo term > " + c.path("a.term") + "; exit 0' TERM; echo $$ > " + c.path("a.pid") + "; " +
                        while_test_runs(c)},
                   "a.log");
  REQUIRE(wait_for([&] { return pid_in(c.path("a.pid")) > 0; }, 10s));
  auto b = start_conclavectl(c, {"lock", "L", "--", "sh", "-c",
                                 "if [ -e " + c.path("a.term") + " ]; then echo stopped; else echo running; fi > " +
                                     c.path("b.saw")},
                             "b.log");
  REQUIRE(wait_for([&] { return read_lock(c, "L").waiters.size() == 1; }, 10s));
  proxy.stall();
  auto b_status = c.wait_exit(b, 10 * conclavectl_ttl);
  REQUIRE_MESSAGE(b_status, "B never got L: " << file_text(c.path("b.log")));
  CHECK(WEXITSTATUS(*b_status) == 0);
  CHECK_MESSAGE(file_text(c.path("b.saw")) == "stopped\n", "B got L while A's command ran on\nA: "
                                                               << file_text(c.path("a.log")));
  auto a_status = c.wait_exit(a, 10 * conclavectl_ttl);
  REQUIRE(a_status);
  CHECK(WIFEXITED(*a_status));
  CHECK(WEXITSTATUS(*a_status) == 4);
  CHECK(file_text(c.path("a.log")).find("lock 'L' lost while the command ran") != std::string::npos);
}

TEST_CASE("push: a watch moves to another master when its master dies, and misses and repeats nothing") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  caf::actor_system sys{client_config()};
  std::vector<raft::endpoint> masters;
  for (const auto& m : c.members()) masters.push_back(m.address);
  // Three watchers, one starting at each master (the first endpoint tried).
  std::mutex mutex;
  std::vector<std::vector<std::string>> seen(3);
  std::vector<std::unique_ptr<push_client>> clients;
  auto base = c.client().propose(wire::encode_command(registry::put{"/w/start", "0", 0, std::nullopt}), 5s);
  REQUIRE(base.has_value());
  auto after = wire::decode_result(base->result)->outcome.value;
  for (std::size_t i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<push_client>(sys, c.cluster_id, masters, auth::keys{}, i));
    auto at = std::make_shared<registry::revision>(after);
    clients.back()->subscribe([at] { return registry::subscription{registry::watch_subscription{"/w/k", *at}}; },
                              [&, i, at](const registry::push& p) {
                                std::lock_guard<std::mutex> guard(mutex);
                                REQUIRE(p.kind != registry::push_kind::compacted);
                                for (const auto& ch : p.state.history) {
                                  if (ch.rev > *at) seen[i].push_back(ch.key);
                                }
                                *at = std::max(*at, p.state.rev);
                              });
  }
  // Writes go on while each master in turn is killed and started again.
  int written = 0;
  auto write = [&](int n) {
    for (int k = 0; k < n; ++k, ++written) {
      char key[32];
      std::snprintf(key, sizeof key, "/w/k%04d", written);
      // Create-only, so that a write whose outcome was unknown (its master
      // killed) can be sent again: version_mismatch then says it happened.
      for (;;) {
        auto r = c.client().propose(wire::encode_command(registry::put{key, "v", 0, std::uint64_t{0}}), 10s);
        if (!r) {
          REQUIRE_MESSAGE(r.error().code == errc::outcome_unknown, r.error().message());
          continue;
        }
        auto code = wire::decode_result(r->result)->outcome.code;
        REQUIRE((code == registry::code::ok || code == registry::code::version_mismatch));
        break;
      }
    }
  };
  write(20);
  for (std::uint64_t id = 1; id <= 3; ++id) {
    c.signal(id, SIGKILL);
    write(20);
    c.start(id);
    REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
    write(20);
  }
  std::vector<std::string> expected;
  for (int k = 0; k < written; ++k) {
    char key[32];
    std::snprintf(key, sizeof key, "/w/k%04d", k);
    expected.push_back(key);
  }
  REQUIRE(wait_for([&] {
    std::lock_guard<std::mutex> guard(mutex);
    return seen[0].size() >= expected.size() && seen[1].size() >= expected.size() && seen[2].size() >= expected.size();
  }, 15s));
  std::lock_guard<std::mutex> guard(mutex);
  for (std::size_t i = 0; i < 3; ++i) CHECK(seen[i] == expected);  // in order, each once
}

TEST_CASE("push: a lock waiter is told of its grant by the master, with the token, when the holder releases") {
  process_cluster c(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(c.wait_for_leader(10s), c.logs());
  auto a = run(c, registry::open_session{"a", 5000}).outcome.value;
  auto b = run(c, registry::open_session{"b", 5000}).outcome.value;
  REQUIRE(run(c, registry::acquire_lock{"L", a, true}).outcome.code == registry::code::ok);
  auto queued = run(c, registry::acquire_lock{"L", b, true}).outcome;
  REQUIRE(queued.code == registry::code::queued);
  caf::actor_system sys{client_config()};
  std::vector<raft::endpoint> masters;
  for (const auto& m : c.members()) masters.push_back(m.address);
  push_client pc(sys, c.cluster_id, masters, auth::keys{}, 1);
  std::mutex mutex;
  std::vector<registry::push> got;
  pc.subscribe([b, queued] { return registry::subscription{registry::lock_subscription{"L", b, queued.value}}; },
               [&](const registry::push& p) {
                 std::lock_guard<std::mutex> guard(mutex);
                 if (p.kind != registry::push_kind::progress) got.push_back(p);
               });
  std::this_thread::sleep_for(300ms);
  {
    std::lock_guard<std::mutex> guard(mutex);
    CHECK(got.empty());  // still waiting: nothing pushed
  }
  auto released = run(c, registry::release_lock{"L", a});
  REQUIRE(released.outcome.code == registry::code::ok);
  REQUIRE(wait_for([&] {
    std::lock_guard<std::mutex> guard(mutex);
    return !got.empty();
  }, 5s));
  std::lock_guard<std::mutex> guard(mutex);
  REQUIRE(got.size() == 1);
  CHECK(got[0].kind == registry::push_kind::granted);
  CHECK(got[0].state.locks.at("L").holder == b);
  REQUIRE(released.grants.size() == 1);
  CHECK(got[0].state.locks.at("L").token == released.grants[0].token);
}
