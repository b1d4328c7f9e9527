// Backup and restore with real processes: `conclavectl snapshot save` while a
// writer runs, `conclave restore` into a new 3-master cluster, and files that
// are damaged or truncated refused.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "actors/registry/queries.hpp"
#include "roles/registry_reads.hpp"
#include "schema/backup_file.hpp"
#include "schema/registry_codec.hpp"
#include "test/process_cluster.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> master_flags() {
  return {"-r", "master", "--session-ttl-ms", "1000", "--member-heartbeat-ms", "100"};
}

// Runs a tool to its end: its exit code (-1: it did not end in 60 s) and output.
std::pair<int, std::string> run_tool(std::vector<std::string> args, const std::string& log) {
  std::filesystem::remove(log);
  auto pid = fork_exec(std::move(args), log);
  auto status = wait_pid(pid, 60s);
  if (!status) kill_pid(pid);
  return {status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, file_text(log)};
}

wire::registry_result run(raft_client& c, const registry::command& cmd) {
  auto r = c.propose(wire::encode_command(cmd), 10s);
  REQUIRE_MESSAGE(r.has_value(), r.error().message());
  auto res = wire::decode_result(r->result);
  REQUIRE(res.has_value());
  return *res;
}

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  for (auto until = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < until;) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

// Heartbeats for one session from a thread of its own (detached from any
// connection: only its TTL expires it), until destroyed.
class session_keeper {
 public:
  session_keeper(caf::actor_system& sys, const std::string& cluster_id, std::vector<raft::endpoint> masters,
                 registry::session_id s)
      : client_(sys, cluster_id, std::move(masters)) {
    thread_ = std::thread([this, s] {
      while (!stop_) {
        (void)client_.to_leader(client::keepalive{s, {}, true}, 1s);
        std::this_thread::sleep_for(200ms);
      }
    });
  }
  ~session_keeper() {
    stop_ = true;
    thread_.join();
  }

 private:
  raft_client client_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<raft::endpoint> addresses(const process_cluster& c) {
  std::vector<raft::endpoint> out;
  for (const auto& m : c.members()) out.push_back(m.address);
  return out;
}

std::string endpoints(const process_cluster& c) {
  std::string out;
  for (const auto& m : c.members()) out += (out.empty() ? "" : ",") + m.address.text();
  return out;
}

bool same(const registry::key_value& a, const registry::key_value& b) {
  return a.value == b.value && a.created == b.created && a.modified == b.modified && a.version == b.version &&
         a.session == b.session;
}

}  // namespace

TEST_CASE("a backup saved under write load holds every write acknowledged up to its revision and none after; "
          "restored into a new 3-master cluster, every key, revision and session-bound key is as saved") {
  caf::actor_system sys{client_config()};
  auto src = std::make_unique<process_cluster>(3, master_flags(), conclave_binary());
  REQUIRE_MESSAGE(src->wait_for_leader(20s), src->logs());
  raft_client admin(sys, src->cluster_id, addresses(*src));
  // A session with a key bound to it and a lock it holds; its TTL outlasts
  // the save, and a keeper heartbeats it meanwhile.
  const std::uint64_t ttl_ms = 10000;
  auto session = run(admin, registry::open_session{"backup-test", ttl_ms}).outcome.value;
  REQUIRE(session != 0);
  REQUIRE(run(admin, registry::put{"bound/a", "mine", session, std::nullopt}).outcome.code == registry::code::ok);
  auto token = run(admin, registry::acquire_lock{"bound-lock", session, false}).outcome.value;
  REQUIRE(token != 0);
  auto keeper = std::make_unique<session_keeper>(sys, src->cluster_id, addresses(*src), session);

  // The writer: one new key per write, each acknowledged with its revision.
  std::mutex m;
  std::vector<std::pair<std::string, registry::revision>> acked;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    raft_client w(sys, src->cluster_id, addresses(*src));
    for (int i = 0; !stop; ++i) {
      auto key = "load/" + std::to_string(i);
      auto r = w.propose(wire::encode_command(registry::put{key, "v" + std::to_string(i), 0, std::nullopt}), 5s);
      if (!r) continue;  // outcome unknown: not counted either way
      auto res = wire::decode_result(r->result);
      if (!res || res->outcome.code != registry::code::ok) continue;
      std::lock_guard<std::mutex> guard(m);
      acked.emplace_back(key, res->outcome.value);
    }
  });
  auto acked_count = [&] {
    std::lock_guard<std::mutex> guard(m);
    return acked.size();
  };
  REQUIRE(wait_for([&] { return acked_count() >= 20; }, 30s));
  temp_dir kept;  // outlives the source cluster
  auto file = kept / "registry.backup";
  auto [saved_rc, saved_out] = run_tool({conclavectl_binary(), "--endpoints", endpoints(*src), "--cluster-id",
                                         src->cluster_id, "snapshot", "save", file},
                                        src->path("save.log"));
  auto after_save = acked_count();
  REQUIRE_MESSAGE(saved_rc == 0, saved_out);
  CHECK(!std::filesystem::exists(file + ".part"));
  // Writes acknowledged after the save returned come after its revision.
  REQUIRE(wait_for([&] { return acked_count() >= after_save + 20; }, 30s));
  stop = true;
  writer.join();
  keeper.reset();

  auto saved = backup::read_file(file);
  REQUIRE_MESSAGE(saved.has_value(), saved.error().message());
  auto rev = saved->header.rev;
  CHECK(saved->header.cluster_id == src->cluster_id);
  std::size_t before = 0, after = 0;
  for (const auto& [key, at] : acked) {
    auto it = saved->state.keys.find(key);
    if (at <= rev) {
      ++before;
      REQUIRE_MESSAGE(it != saved->state.keys.end(), key << " acknowledged at " << at << " <= " << rev);
      CHECK(it->second.modified == at);
    } else {
      ++after;
      CHECK_MESSAGE(it == saved->state.keys.end(), key << " acknowledged at " << at << " > " << rev);
    }
  }
  CHECK(before >= 20);
  CHECK(after >= 20);
  REQUIRE(saved->state.keys.count("bound/a"));
  REQUIRE(saved->state.sessions.count(session));
  src.reset();

  {
    INFO("a damaged or truncated file is refused with the reason, and nothing is restored");
    auto bytes = file_text(file);
    auto damaged = bytes;
    damaged[damaged.size() / 2] ^= 0x40;
    std::ofstream(file + ".damaged", std::ios::binary) << damaged;
    std::ofstream(file + ".short", std::ios::binary) << bytes.substr(0, bytes.size() - 100);
    temp_dir scratch;
    for (const auto& [bad, reason] : {std::pair<std::string, std::string>{file + ".damaged", "SHA-256 mismatch"},
                                      {file + ".short", "truncated"}}) {
      auto [rc, out] = run_tool({conclave_binary(), "restore", "--from", bad, "--data-dir", scratch / "d", "--id", "1",
                                 "--peers", "1=127.0.0.1:1"},
                                scratch / "restore.log");
      CHECK(rc == 2);
      CHECK_MESSAGE(out.find(reason) != std::string::npos, out);
      CHECK(!std::filesystem::exists(scratch / "d"));
      auto [st_rc, st_out] = run_tool({conclavectl_binary(), "snapshot", "status", bad}, scratch / "status.log");
      CHECK(st_rc == 1);
      CHECK_MESSAGE(st_out.find(reason) != std::string::npos, st_out);
    }
    auto [st_rc, st_out] = run_tool({conclavectl_binary(), "snapshot", "status", file}, scratch / "status.log");
    CHECK(st_rc == 0);
    CHECK_MESSAGE(st_out.find("revision " + std::to_string(rev) + ",") != std::string::npos, st_out);
    CHECK_MESSAGE(st_out.find("checksum ok") != std::string::npos, st_out);
  }

  {
    INFO("without --cluster-id, every master of the new cluster gets the same new cluster id");
    temp_dir scratch;
    std::string peers = "1=127.0.0.1:1,2=127.0.0.1:2";
    std::set<std::string> ids;
    for (std::string id : {"1", "2"}) {
      auto [rc, out] = run_tool({conclave_binary(), "restore", "--from", file, "--data-dir", scratch / id, "--id", id,
                                 "--peers", peers},
                                scratch / "restore.log");
      REQUIRE_MESSAGE(rc == 0, out);
      auto identity = file_text(scratch / (id + "/IDENTITY"));
      ids.insert(identity.substr(0, identity.find('\n')));
    }
    REQUIRE(ids.size() == 1);
    CHECK(ids.begin()->rfind("cluster-id=process-test-restored-", 0) == 0);
    // A directory that holds data is refused.
    auto [rc, out] = run_tool({conclave_binary(), "restore", "--from", file, "--data-dir", scratch / "1", "--id", "1",
                               "--peers", peers},
                              scratch / "restore.log");
    CHECK(rc == 2);
    CHECK_MESSAGE(out.find("already holds data") != std::string::npos, out);
  }

  {
    INFO("restored into a new cluster");
    process_cluster::layout where;
    where.before_start = [&](process_cluster& c) {
      for (const auto& mm : c.members()) {
        auto [rc, out] = run_tool({conclave_binary(), "restore", "--from", file, "--data-dir", mm.data_dir, "--id",
                                   std::to_string(mm.id), "--peers", c.peers(), "--cluster-id", c.cluster_id},
                                  c.path("restore.log"));
        REQUIRE_MESSAGE(rc == 0, out);
      }
    };
    process_cluster dst(3, master_flags(), conclave_binary(), where);
    // The client whose session it is keeps it alive in the new cluster.
    keeper = std::make_unique<session_keeper>(sys, dst.cluster_id, addresses(dst), session);
    REQUIRE_MESSAGE(dst.wait_for_leader(20s), dst.logs());
    raft_client reader(sys, dst.cluster_id, addresses(dst));
    auto now = ask(reader, registry::revision_query{}, 10s);
    REQUIRE_MESSAGE(now.has_value(), now.error().message() << "\n" << dst.logs());
    CHECK(now->rev == rev);
    auto all = ask(reader, registry::list_prefix{""}, 10s);
    REQUIRE(all.has_value());
    REQUIRE(all->keys.size() == saved->state.keys.size());
    for (const auto& [key, kv] : all->keys) {
      auto it = saved->state.keys.find(key);
      REQUIRE_MESSAGE(it != saved->state.keys.end(), key);
      CHECK_MESSAGE(same(kv, it->second), key);
    }
    // The session lives on under the registry's rule for a new leader (its
    // remaining TTL, at least the failover grace) while it is kept alive ...
    auto lock = ask(reader, registry::lock_query{"bound-lock"}, 10s);
    REQUIRE(lock.has_value());
    REQUIRE(lock->value);
    CHECK(lock->value->holder == session);
    CHECK(lock->value->token == token);
    std::this_thread::sleep_for(std::chrono::milliseconds(ttl_ms / 2));
    auto bound = ask(reader, registry::get_key{"bound/a"}, 10s);
    REQUIRE(bound.has_value());
    CHECK(bound->value.has_value());
    // ... and ends, with its key and lock, once it is not.
    keeper.reset();
    CHECK(wait_for([&] {
      auto k = ask(reader, registry::get_key{"bound/a"}, 5s);
      auto l = ask(reader, registry::lock_query{"bound-lock"}, 5s);
      return k && !k->value && l && (!l->value || l->value->holder == 0);
    }, std::chrono::milliseconds(3 * ttl_ms)));
    // New writes continue after the saved revision.
    auto next = run(reader, registry::put{"after/restore", "x", 0, std::nullopt});
    CHECK(next.outcome.value > rev);
  }
}
