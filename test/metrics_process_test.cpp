// Metrics and health on http-listen (roles/metrics_endpoint.hpp,
// roles/health_endpoint.hpp) of 3 real masters: Prometheus' promtool accepts
// every /metrics page and the alert rules in docs/alerts.yml; the numbers
// agree with the cluster (one leader, all know it, indexes and request
// counters rise with writes); /readyz turns 503 on a master cut off from the
// others and 200 again when it rejoins.
#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "roles/raft_client.hpp"
#include "schema/registry_codec.hpp"
#include "test/etcd_masters.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

std::string promtool() { return program("CONCLAVE_PROMTOOL", "/usr/bin/promtool"); }
bool have_promtool() { return ::access(promtool().c_str(), X_OK) == 0; }

// GET http://`at``path`: the status (-1: no answer) and the body.
std::pair<int, std::string> get(const std::string& at, const std::string& path) {
  auto colon = at.rfind(':');
  httplib::Client c(at.substr(0, colon), std::atoi(at.c_str() + colon + 1));
  c.set_connection_timeout(5s);
  c.set_read_timeout(5s);
  auto r = c.Get(path);
  if (!r) return {-1, httplib::to_string(r.error())};
  return {r->status, r->body};
}

// The value of the series `series` (name with its labels, as printed) in an
// exposition, if present.
std::optional<double> value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

bool eventually(const std::function<bool()>& ok, std::chrono::milliseconds within = 20s) {
  for (auto until = std::chrono::steady_clock::now() + within; std::chrono::steady_clock::now() < until;) {
    if (ok()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return ok();
}

// 3 masters without the etcd API, each with http-listen on a port it picks
// and logs, fault injection on (to cut one off) and a snapshot every 16 entries.
struct http_masters {
  std::unique_ptr<process_cluster> c;
  std::map<std::uint64_t, std::string> http;  // server id -> its http-listen address

  // `own`: more flags for some masters.
  explicit http_masters(const std::map<std::uint64_t, std::vector<std::string>>& own = {}) {
    process_cluster::layout where;
    for (std::uint64_t id = 1; id <= 3; ++id) {
      where.flags[id] = {"--http-listen", "127.0.0.1:0"};
      if (auto it = own.find(id); it != own.end()) where.flags[id].insert(where.flags[id].end(), it->second.begin(), it->second.end());
    }
    c = std::make_unique<process_cluster>(3, std::vector<std::string>{"-r", "master", "--fault-injection", "true", "--snapshot-every", "16"},
                                          conclave_binary(), where);
    const std::string said = "HTTP listening on ";
    eventually([&] {
      for (std::uint64_t id = 1; id <= 3; ++id) {
        auto log = c->log_of(id);
        auto at = log.find(said);
        if (at != std::string::npos) http[id] = log.substr(at + said.size(), log.find('\n', at) - at - said.size());
      }
      return http.size() == 3;
    });
    REQUIRE_MESSAGE(http.size() == 3, c->logs());
  }

  std::string metrics(std::uint64_t id) {
    auto [status, body] = get(http[id], "/metrics");
    REQUIRE_MESSAGE(status == 200, body);
    return body;
  }

  double sum(const std::string& series) {
    double total = 0;
    for (std::uint64_t id = 1; id <= 3; ++id) total += value(metrics(id), series).value_or(0);
    return total;
  }

  // Runs promtool with `args` (and a file on stdin, if given): its exit code and output.
  std::pair<int, std::string> run_promtool(const std::string& args, const std::string& input_file = {}) {
    static int runs = 0;
    auto log = "promtool-" + std::to_string(++runs) + ".log";
    std::string cmd = promtool() + " " + args + (input_file.empty() ? "" : " < " + input_file);
    auto pid = c->spawn({"/bin/sh", "-c", cmd}, log);
    auto status = c->wait_exit(pid, 60s);
    REQUIRE(status.has_value());
    return {WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, file_text(c->path(log))};
  }
};

}  // namespace

TEST_CASE("every master serves /metrics that promtool accepts: one leader that all know, indexes and request counts rise with writes") {
  if (!have_promtool()) CONCLAVE_SKIP("no promtool (Debian's prometheus package)");
  http_masters m;
  auto leader = m.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, m.c->logs());

  // Every master knows the leader; exactly one says it leads.
  REQUIRE_MESSAGE(eventually([&] {
                    return m.sum("conclave_raft_has_leader") == 3 && m.sum("conclave_raft_is_leader") == 1;
                  }),
                  m.metrics(1) << m.c->logs());
  CHECK(value(m.metrics(*leader), "conclave_raft_is_leader") == 1.0);
  CHECK(m.sum("conclave_raft_elections_started_total") >= 1);
  for (std::uint64_t id = 1; id <= 3; ++id) CHECK(value(m.metrics(id), "conclave_raft_leader_changes_seen_total") >= 1.0);
  // Each master registered as a member: the registry's gauges show them.
  CHECK_MESSAGE(eventually([&] { return value(m.metrics(*leader), "conclave_members{status=\"alive\"}") == 3.0; }),
                m.metrics(*leader));

  // Writes move the commit index on every master and the client request count.
  const std::string proposed = R"(conclave_client_requests_total{api="native",method="propose",outcome="ok"})";
  auto before = m.sum(proposed);
  std::map<std::uint64_t, double> commit;
  for (std::uint64_t id = 1; id <= 3; ++id) commit[id] = *value(m.metrics(id), "conclave_raft_commit_index");
  const int writes = 20;
  for (int i = 0; i < writes; ++i) {
    auto r = m.c->client().propose(wire::encode_command(registry::put{"/m/" + std::to_string(i), "v", 0, std::nullopt}),
                                   10s);
    REQUIRE_MESSAGE(r, r.error().message());
  }
  CHECK(m.sum(proposed) >= before + writes);
  for (std::uint64_t id = 1; id <= 3; ++id) {
    CHECK_MESSAGE(eventually([&] {
                    auto text = m.metrics(id);
                    return value(text, "conclave_raft_commit_index") >= commit[id] + writes &&
                           value(text, "conclave_raft_applied_index") == value(text, "conclave_raft_commit_index");
                  }),
                  m.metrics(id));
  }
  auto text = m.metrics(*leader);
  CHECK(value(text, "conclave_disk_write_duration_seconds_count") > 0.0);
  CHECK(value(text, "conclave_raft_proposals_committed_total") >= double(writes));
  // 20 writes and the members' registrations pass 16 entries: a snapshot each.
  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto page = m.metrics(id);
    CHECK_MESSAGE(value(page, "conclave_snapshots_taken_total") >= 1.0, page);
    CHECK(value(page, "conclave_snapshot_size_bytes") > 0.0);
    CHECK(value(page, "conclave_snapshot_save_duration_seconds_count") >= 1.0);
  }
  // The registry's gauges are sampled about once a second.
  CHECK(eventually([&] { return value(m.metrics(*leader), "conclave_keys") >= double(writes); }));
  std::uint64_t follower = *leader % 3 + 1;
  auto peer = "{peer=\"" + std::to_string(follower) + "\"}";
  CHECK(value(text, "conclave_peer_sent_bytes_total" + peer) > 0.0);
  CHECK(value(text, "conclave_peer_received_bytes_total" + peer) > 0.0);
  CHECK(value(text, "conclave_peer_round_trip_time_seconds_count" + peer) > 0.0);

  // Writes through a follower: it passes them on to the leader it knows, which
  // is no failed proposal; its request counter counts them.
  {
    caf::actor_system sys{client_config()};
    raft_client through(sys, m.c->cluster_id, {m.c->at(follower).address});
    const std::string failed = "conclave_raft_proposals_failed_total";
    auto failed_before = *value(m.metrics(follower), failed);
    auto asked_before = value(m.metrics(follower), proposed).value_or(0);
    for (int i = 0; i < writes; ++i) {
      auto r = through.propose(wire::encode_command(registry::put{"/f/" + std::to_string(i), "v", 0, std::nullopt}), 10s);
      REQUIRE_MESSAGE(r, r.error().message());
    }
    auto after = m.metrics(follower);
    CHECK_MESSAGE(value(after, failed) == failed_before, after);
    CHECK(value(after, proposed) >= asked_before + writes);
  }

  // promtool: the format and Prometheus' naming conventions, on every master's page.
  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto file = m.c->path("metrics-" + std::to_string(id) + ".txt");
    {
      std::ofstream out(file);
      out << m.metrics(id);
    }
    auto [code, out] = m.run_promtool("check metrics", file);
    CHECK_MESSAGE(code == 0, "master " << id << ": " << out);
  }
}

TEST_CASE("the alert rules in docs/alerts.yml pass promtool check rules") {
  if (!have_promtool()) CONCLAVE_SKIP("no promtool (Debian's prometheus package)");
  auto rules = program("CONCLAVE_ALERTS", "docs/alerts.yml");
  REQUIRE(::access(rules.c_str(), R_OK) == 0);
  temp_dir dir;
  auto log = dir.path() + "/promtool.log";
  auto pid = fork_exec({promtool(), "check", "rules", rules}, log);
  auto status = wait_pid(pid, 60s);
  REQUIRE(status.has_value());
  CHECK_MESSAGE((WIFEXITED(*status) && WEXITSTATUS(*status) == 0), file_text(log));
  CHECK(file_text(log).find("SUCCESS") != std::string::npos);
}

TEST_CASE("/readyz turns 503 with the reason on a master cut off from the others, and 200 when it rejoins; /livez and /health") {
  http_masters m;
  auto leader = m.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, m.c->logs());
  std::uint64_t cut = *leader % 3 + 1;
  for (std::uint64_t id = 1; id <= 3; ++id) {
    CHECK_MESSAGE(eventually([&] { return get(m.http[id], "/readyz").first == 200; }), get(m.http[id], "/readyz").second);
    CHECK(get(m.http[id], "/livez") == std::pair<int, std::string>{200, "ok\n"});
    CHECK(get(m.http[id], "/health") == std::pair<int, std::string>{200, R"({"health":"true"})"});
  }

  REQUIRE(m.c->isolate(cut));
  CHECK_MESSAGE(eventually([&] { return get(m.http[cut], "/readyz").first == 503; }), m.c->log_of(cut));
  auto [status, why] = get(m.http[cut], "/readyz");
  CHECK(status == 503);
  CHECK_MESSAGE(why.find("no leader known") != std::string::npos, why);
  CHECK(get(m.http[cut], "/health") == std::pair<int, std::string>{503, R"({"health":"false"})"});
  CHECK(get(m.http[cut], "/livez").first == 200);  // it still serves
  CHECK(value(m.metrics(cut), "conclave_raft_has_leader") == 0.0);
  // The other two keep a leader and stay ready.
  for (std::uint64_t id = 1; id <= 3; ++id) {
    if (id != cut) CHECK_MESSAGE(eventually([&] { return get(m.http[id], "/readyz").first == 200; }), get(m.http[id], "/readyz").second);
  }

  REQUIRE(m.c->heal(cut));
  CHECK_MESSAGE(eventually([&] { return get(m.http[cut], "/readyz").first == 200; }), get(m.http[cut], "/readyz").second);
  CHECK(get(m.http[cut], "/health") == std::pair<int, std::string>{200, R"({"health":"true"})"});
}

TEST_CASE("/readyz turns 503 on a master whose log reaches its cap (log-max-mib), and the metrics say why") {
  http_masters m({{3, {"--log-max-mib", "1"}}});
  REQUIRE_MESSAGE(m.c->wait_for_leader(20s), m.c->logs());
  REQUIRE_MESSAGE(eventually([&] { return get(m.http[3], "/readyz").first == 200; }), get(m.http[3], "/readyz").second);
  // 1.6 MiB of values: more than master 3's log may hold; the other two commit
  // them. (If master 3 leads, it steps down when its log fills: a write it
  // had may end unknown, and is sent again.)
  std::string pad(4096, 'p');
  for (int i = 0; i < 400; ++i) {
    auto put = wire::encode_command(registry::put{"/big/" + std::to_string(i), pad, 0, std::nullopt});
    auto r = m.c->client().propose(put, 10s);
    for (int again = 0; !r && again < 5; ++again) r = m.c->client().propose(put, 10s);
    REQUIRE_MESSAGE(r, r.error().message());
  }
  CHECK_MESSAGE(eventually([&] { return value(m.metrics(3), "conclave_storage_full") == 1.0; }), m.metrics(3));
  auto [status, why] = get(m.http[3], "/readyz");
  CHECK(status == 503);
  CHECK_MESSAGE(why.find("cannot write to its disk") != std::string::npos, why);
  CHECK(value(m.metrics(3), R"(conclave_storage_errors_total{code="map_full"})") >= 1.0);
  CHECK(get(m.http[3], "/health").first == 503);
  for (std::uint64_t id = 1; id <= 2; ++id) {
    CHECK(value(m.metrics(id), "conclave_storage_full") == 0.0);
    CHECK_MESSAGE(eventually([&] { return get(m.http[id], "/readyz").first == 200; }), get(m.http[id], "/readyz").second);
  }
}

TEST_CASE("etcd API requests (gRPC and its JSON gateway) are counted by method and outcome") {
  etcd_masters e({}, true);
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  const std::string put = R"(conclave_client_requests_total{api="etcd",method="etcdserverpb.KV/Put",outcome="OK"})";
  auto text = get(e.http[1], "/metrics").second;
  auto before = value(text, put).value_or(0);
  auto colon = e.http[1].rfind(':');
  httplib::Client c(e.http[1].substr(0, colon), std::atoi(e.http[1].c_str() + colon + 1));
  for (int i = 0; i < 3; ++i) {
    auto r = c.Post("/v3/kv/put", R"({"key":")" + base64("k" + std::to_string(i)) + R"(","value":"dg=="})",
                    "application/json");
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 200, r->body);
  }
  // An empty key: etcd refuses it with INVALID_ARGUMENT.
  auto bad = c.Post("/v3/kv/put", R"({"value":"dg=="})", "application/json");
  REQUIRE(bad);
  text = get(e.http[1], "/metrics").second;
  CHECK_MESSAGE(value(text, put) == before + 3, text);
  CHECK_MESSAGE(value(text, R"(conclave_client_requests_total{api="etcd",method="etcdserverpb.KV/Put",outcome="INVALID_ARGUMENT"})") == 1.0, text);
  CHECK(value(text, R"(conclave_client_request_duration_seconds_count{api="etcd",method="etcdserverpb.KV/Put"})") >= 4.0);
}
