// etcd's v3 API on masters (roles/etcd_api.hpp): the server against a fake
// cluster (headers, ranges, error codes as etcd clients expect them), then
// Debian's etcdctl against a 3-master cluster started with client-listen.
#include <doctest/doctest.h>
#include <grpcpp/grpcpp.h>

#include <sys/stat.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>

#include <openssl/sha.h>

#include "actors/auth.hpp"
#include "actors/registry/queries.hpp"
#include "roles/etcd_api.hpp"
#include "roles/node.hpp"
#include "schema/backup_file.hpp"
#include "schema/etcd/rpc.grpc.pb.h"
#include "schema/registry_codec.hpp"
#include "test/etcd_masters.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

// --- the server against a fake cluster ---------------------------------------------

// A registry behind the server, as one master sees it, with fixed terms; or
// failing every call with `fail`.
struct fake_cluster {
  registry::registry reg;
  std::uint64_t index = 0;
  std::uint64_t commit_term = 7, local_term = 9;
  std::optional<error> fail;
  std::mutex m;

  fake_cluster() {
    // 40 changes of one key first: revisions are not small numbers by chance.
    for (int i = 0; i < 40; ++i) reg.apply(registry::put{"0", "x", 0, std::nullopt}, ++index);
  }

  etcd::backend backend() {
    etcd::backend b;
    auto propose_now = [this](const registry::command& c) -> expected<client::committed> {
      std::lock_guard<std::mutex> guard(m);
      if (fail) return *fail;
      wire::registry_result r;
      r.outcome = reg.apply(c, ++index, &r.grants);
      return client::committed{index, commit_term, wire::encode_result(r)};
    };
    auto read_now = [this](const registry::query& q) -> expected<client::read_result> {
      std::lock_guard<std::mutex> guard(m);
      if (fail) return *fail;
      return client::read_result{index, wire::encode_query_result(registry::answer(reg, q))};
    };
    // The backend's calls answer before they return (gRPC's handlers allow it).
    b.propose = [propose_now](const registry::command& c, std::chrono::milliseconds, auto done) { done(propose_now(c)); };
    b.read = [read_now](const registry::query& q, bool, std::chrono::milliseconds, auto done) { done(read_now(q)); };
    b.term = [this] { return local_term; };
    auto keepalive_now = [this](std::uint64_t id) -> expected<bool> {
      std::lock_guard<std::mutex> guard(m);
      if (fail) return *fail;
      return reg.find_session(id) != nullptr;
    };
    b.keepalive = [keepalive_now](std::uint64_t id, std::chrono::milliseconds, auto done) { done(keepalive_now(id)); };
    return b;
  }
};

struct fake_server {
  fake_cluster cluster;
  std::unique_ptr<etcd::server> server;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  static constexpr std::uint64_t cluster_id = 1111, member_id = 2222;

  fake_server() {
    auto s = etcd::server::start(raft::endpoint{"127.0.0.1", 0}, cluster_id, member_id, cluster.backend());
    REQUIRE_MESSAGE(s, s.error().message());
    server = std::move(*s);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()),
                                       grpc::InsecureChannelCredentials());
    kv = etcdserverpb::KV::NewStub(channel);
  }

  grpc::Status put(const std::string& k, const std::string& v, etcdserverpb::PutResponse* out = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    etcdserverpb::PutResponse resp;
    auto st = kv->Put(&ctx, req, &resp);
    if (out) *out = resp;
    return st;
  }

  grpc::Status range(const etcdserverpb::RangeRequest& req, etcdserverpb::RangeResponse* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    return kv->Range(&ctx, req, out);
  }
};

etcdserverpb::RangeRequest range_of(const std::string& key, const std::string& end) {
  etcdserverpb::RangeRequest r;
  r.set_key(key);
  r.set_range_end(end);
  return r;
}

}  // namespace

TEST_CASE("etcd ids are stable per cluster and server, non-zero, and differ between servers") {
  CHECK(etcd::cluster_number("prod") == etcd::cluster_number("prod"));
  CHECK(etcd::cluster_number("prod") != etcd::cluster_number("test"));
  CHECK(etcd::member_number("prod", 1) == etcd::member_number("prod", 1));
  CHECK(etcd::member_number("prod", 1) != etcd::member_number("prod", 2));
  CHECK(etcd::member_number("prod", 1) != etcd::member_number("test", 1));
  CHECK(etcd::cluster_number("prod") != 0);
  CHECK(etcd::member_number("prod", 1) != 0);
}

TEST_CASE("an etcd key range holds exactly etcd's keys, and lists by a prefix they all share") {
  registry::key_range single{"a", ""};
  CHECK(single.contains("a"));
  CHECK_FALSE(single.contains("ab"));
  CHECK(single.listing_prefix() == "a");
  registry::key_range prefix{"ab", "ac"};
  CHECK(prefix.contains("ab"));
  CHECK(prefix.contains("ab\xff"));
  CHECK_FALSE(prefix.contains("ac"));
  CHECK_FALSE(prefix.contains("aa"));
  CHECK(prefix.listing_prefix() == "ab");
  // Bytes order as unsigned: "\xff" is after every ASCII byte.
  registry::key_range high{"a\xff", "b"};
  CHECK(high.contains("a\xff\x01"));
  CHECK_FALSE(high.contains("a\x7f"));
  CHECK(high.listing_prefix() == "a");
  registry::key_range from{"m", std::string(1, '\0')};
  CHECK(from.contains("z"));
  CHECK_FALSE(from.contains("l"));
  CHECK(from.listing_prefix().empty());
  registry::key_range all{std::string(1, '\0'), std::string(1, '\0')};
  CHECK(all.contains("a"));
  registry::key_range span{"abc", "abx"};
  CHECK(span.contains("abd"));
  CHECK_FALSE(span.contains("abx"));
  CHECK(span.listing_prefix() == "ab");
}

TEST_CASE("every etcd response carries the cluster id, member id, the revision it reflects and a raft term") {
  fake_server s;
  etcdserverpb::PutResponse put;
  auto st = s.put("k", "v", &put);
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(put.header().cluster_id() == fake_server::cluster_id);
  CHECK(put.header().member_id() == fake_server::member_id);
  CHECK(put.header().revision() == 41);  // the put's own revision
  CHECK(put.header().raft_term() == 7);  // the term it committed in
  etcdserverpb::RangeResponse got;
  REQUIRE(s.range(range_of("k", ""), &got).ok());
  CHECK(got.header().cluster_id() == fake_server::cluster_id);
  CHECK(got.header().member_id() == fake_server::member_id);
  CHECK(got.header().revision() == 41);
  CHECK(got.header().raft_term() == 9);  // this master's term
  REQUIRE(got.kvs_size() == 1);
  CHECK(got.kvs(0).mod_revision() == 41);
  CHECK(got.kvs(0).create_revision() == 41);
  CHECK(got.kvs(0).version() == 1);
}

TEST_CASE("an etcd range answers count, more and limit as etcd does, with keys only or the count only") {
  fake_server s;
  for (const auto& k : {"p/a", "p/b", "p/c", "pz", "q"}) REQUIRE(s.put(k, std::string("v-") + k).ok());
  etcdserverpb::RangeResponse r;
  REQUIRE(s.range(range_of("p/", "p0"), &r).ok());
  REQUIRE(r.kvs_size() == 3);
  CHECK(r.kvs(0).key() == "p/a");
  CHECK(r.kvs(2).value() == "v-p/c");
  CHECK(r.count() == 3);
  CHECK_FALSE(r.more());
  auto limited = range_of("p/", "p0");
  limited.set_limit(2);
  r.Clear();
  REQUIRE(s.range(limited, &r).ok());
  CHECK(r.kvs_size() == 2);
  CHECK(r.more());
  CHECK(r.count() == 3);
  auto counted = range_of("p/", "p0");
  counted.set_count_only(true);
  r.Clear();
  REQUIRE(s.range(counted, &r).ok());
  CHECK(r.kvs_size() == 0);
  CHECK(r.count() == 3);
  auto keys = range_of("p", std::string(1, '\0'));  // from "p" on
  keys.set_keys_only(true);
  r.Clear();
  REQUIRE(s.range(keys, &r).ok());
  REQUIRE(r.kvs_size() == 5);
  CHECK(r.kvs(4).key() == "q");
  CHECK(r.kvs(4).value().empty());
  auto down = range_of("p/", "p0");
  down.set_sort_order(etcdserverpb::RangeRequest::DESCEND);
  r.Clear();
  REQUIRE(s.range(down, &r).ok());
  REQUIRE(r.kvs_size() == 3);
  CHECK(r.kvs(0).key() == "p/c");
  r.Clear();
  CHECK(s.range(range_of("", ""), &r).error_message() == "etcdserver: key is not provided");
}

TEST_CASE("an etcd write whose outcome is unknown is reported as etcd's timeout, never as a definite failure") {
  fake_server s;
  s.cluster.fail = make_error(errc::outcome_unknown, "no answer");
  auto st = s.put("k", "v");
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(st.error_message() == "etcdserver: request timed out");
  s.cluster.fail = make_error(errc::unavailable, "no leader");
  st = s.put("k", "v");
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(st.error_message() == "etcdserver: no leader");
  etcdserverpb::RangeResponse r;
  st = s.range(range_of("k", ""), &r);
  CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK(st.error_message() == "etcdserver: no leader");
}

TEST_CASE("client-listen: a master in the host's process serves etcd's API; a worker or a taken address is refused") {
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  auto peers = "1=127.0.0.1:" + std::to_string(free_port());
  settings base = {{"role", "master"}, {"id", "1"}, {"peers", peers}, {"cluster-id", "embed"},
                   {"data-dir", dir.path() + "/m1"}};
  auto worker = node::start(sys, {{"role", "worker"}, {"peers", peers}, {"cluster-id", "embed"},
                                  {"client-listen", "127.0.0.1:1"}});
  REQUIRE_FALSE(worker.has_value());
  CHECK(worker.error().message().find("client-listen: only masters") != std::string::npos);
  {
    // The address is taken by someone else: the master does not start (and stops what it started).
    auto taken = etcd::server::start(raft::endpoint{"127.0.0.1", 0}, 1, 1, etcd::backend{});
    REQUIRE(taken);
    auto with = base;
    with["client-listen"] = "127.0.0.1:" + std::to_string((*taken)->port());
    auto refused = node::start(sys, with);
    REQUIRE_FALSE(refused.has_value());
    CHECK_MESSAGE(refused.error().message().find("client-listen: cannot listen on") != std::string::npos,
                  refused.error().message());
  }
  auto two = free_ports(2);
  auto at = "127.0.0.1:" + std::to_string(two[0]);
  // Another port and directory.
  auto with = base;
  with["peers"] = "1=127.0.0.1:" + std::to_string(two[1]);
  with["data-dir"] = dir.path() + "/m2";
  with["client-listen"] = at;
  auto m = node::start(sys, with);
  REQUIRE_MESSAGE(m.has_value(), m.error().message());
  auto kv = etcdserverpb::KV::NewStub(grpc::CreateChannel(at, grpc::InsecureChannelCredentials()));
  etcdserverpb::PutRequest put;
  put.set_key(std::string("k\0", 2));  // any byte, NUL included
  put.set_value(std::string("\0v\xff", 3));
  etcdserverpb::PutResponse put_resp;
  grpc::Status st;
  for (int i = 0; i < 100; ++i) {  // until the single master has elected itself
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    st = kv->Put(&ctx, put, &put_resp);
    if (st.ok()) break;
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(put_resp.header().member_id() == etcd::member_number("embed", 1));
  CHECK(put_resp.header().raft_term() == (*m)->term());
  etcdserverpb::RangeResponse got;
  grpc::ClientContext ctx;
  auto req = range_of(std::string("k\0", 2), "");
  req.set_serializable(true);
  REQUIRE(kv->Range(&ctx, req, &got).ok());
  REQUIRE(got.kvs_size() == 1);
  CHECK(got.kvs(0).value() == std::string("\0v\xff", 3));
  CHECK(got.kvs(0).mod_revision() == put_resp.header().revision());
  auto same = (*m)->get(std::string("k\0", 2));  // the registry's own key
  REQUIRE(same);
  REQUIRE(*same);
  CHECK((**same).value == std::string("\0v\xff", 3));
}

// --- etcdctl against real masters ---------------------------------------------------

namespace {

std::string etcdctl_binary() { return program("CONCLAVE_ETCDCTL", "/usr/bin/etcdctl"); }

// The number after the first `"field":` in etcdctl's JSON output (none: -1).
std::int64_t json_number(const std::string& json, const std::string& field) {
  auto at = json.find("\"" + field + "\":");
  if (at == std::string::npos) return -1;
  return static_cast<std::int64_t>(std::strtoull(json.c_str() + at + field.size() + 3, nullptr, 10));
}

// etcdctl against the masters.
struct etcd_cluster : etcd_masters {
  using etcd_masters::etcd_masters;

  // Runs etcdctl (API 3) against `eps`: its exit code and its output (stdout and stderr).
  std::pair<int, std::string> run(const std::string& eps, std::vector<std::string> args) {
    std::vector<std::string> all = {"/usr/bin/env", "ETCDCTL_API=3", etcdctl_binary(), "--endpoints", eps,
                                    "--command-timeout", "15s"};
    all.insert(all.end(), args.begin(), args.end());
    static int n = 0;
    auto log = "etcdctl-" + std::to_string(++n) + ".log";
    auto pid = c->spawn(all, log);
    auto status = c->wait_exit(pid, 60s);
    REQUIRE(status.has_value());
    return {WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, file_text(c->path(log))};
  }
  std::pair<int, std::string> run(std::vector<std::string> args) { return run(endpoints(), std::move(args)); }
};

}  // namespace

TEST_CASE("etcdctl puts, gets (by prefix, limited, keys only, serializable) and deletes through any master") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;

  // Bytes round trip (etcdctl passes argv bytes; NUL cannot be in argv).
  std::string binary = "v\x01\x7f\x80\xfe\xff end";
  auto [code, out] = e.run({"put", "bin", binary});
  REQUIRE_MESSAGE(code == 0, out << e.logs());
  CHECK(out == "OK\n");
  std::tie(code, out) = e.run({"get", "bin", "--print-value-only"});
  CHECK(code == 0);
  CHECK(out == binary + "\n");

  // The put's header revision is the key's mod revision; ids as derived.
  std::tie(code, out) = e.run(e.client[*leader], {"put", "h", "x", "-w", "json"});
  REQUIRE_MESSAGE(code == 0, out);
  auto put_rev = json_number(out, "revision");
  CHECK(put_rev > 0);
  CHECK(static_cast<std::uint64_t>(json_number(out, "cluster_id")) == etcd::cluster_number(e.c->cluster_id));
  std::tie(code, out) = e.run(e.client[follower], {"get", "h", "-w", "json"});
  REQUIRE_MESSAGE(code == 0, out);
  CHECK(json_number(out, "mod_revision") == put_rev);
  // The revision counts key changes only (members' heartbeats and usage
  // reports do not move it): nothing else wrote, so it is the put's.
  CHECK(json_number(out, "revision") == put_rev);
  std::tie(code, out) = e.run(e.client[follower], {"put", "h2", "y", "-w", "json"});
  REQUIRE_MESSAGE(code == 0, out);
  CHECK(json_number(out, "revision") == put_rev + 1);  // consecutive writes, consecutive revisions
  CHECK(json_number(out, "raft_term") > 0);
  CHECK(static_cast<std::uint64_t>(json_number(out, "cluster_id")) == etcd::cluster_number(e.c->cluster_id));
  CHECK(static_cast<std::uint64_t>(json_number(out, "member_id")) ==
        etcd::member_number(e.c->cluster_id, follower));

  for (const auto& k : {"svc/a", "svc/b", "svc/c", "svd"}) REQUIRE(e.run({"put", k, std::string("val-") + k}).first == 0);
  std::tie(code, out) = e.run({"get", "--prefix", "svc/"});
  CHECK(code == 0);
  CHECK(out == "svc/a\nval-svc/a\nsvc/b\nval-svc/b\nsvc/c\nval-svc/c\n");
  std::tie(code, out) = e.run({"get", "--prefix", "svc/", "--limit", "2", "-w", "json"});
  CHECK(code == 0);
  CHECK(out.find(base64("svc/a")) != std::string::npos);
  CHECK(out.find(base64("svc/b")) != std::string::npos);
  CHECK(out.find(base64("svc/c")) == std::string::npos);
  CHECK(out.find("\"more\":true") != std::string::npos);
  CHECK(json_number(out, "count") == 3);
  // etcdctl 3.4 has no --count-only (the fake-cluster case above covers count_only).
  std::tie(code, out) = e.run({"get", "--prefix", "svc/", "--keys-only", "-w", "json"});
  CHECK(code == 0);
  CHECK(out.find(base64("svc/b")) != std::string::npos);
  CHECK(out.find("\"value\"") == std::string::npos);

  // A serializable read at a follower sees what the leader committed before
  // (etcdctl waits for the put's answer; the follower may lag, so it retries).
  std::tie(code, out) = e.run(e.client[follower], {"get", "svd", "--print-value-only"});
  CHECK(code == 0);
  CHECK(out == "val-svd\n");
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    std::tie(code, out) = e.run(e.client[follower], {"get", "svd", "--consistency", "s", "--print-value-only"});
    seen = code == 0 && out == "val-svd\n";
  }
  CHECK_MESSAGE(seen, out);

  std::tie(code, out) = e.run({"del", "svd"});
  CHECK(code == 0);
  CHECK(out == "1\n");
  std::tie(code, out) = e.run({"del", "svd"});
  CHECK(out == "0\n");
  std::tie(code, out) = e.run(e.client[follower], {"del", "--prefix", "svc/", "--prev-kv"});
  CHECK(code == 0);
  CHECK(out == "3\nsvc/a\nval-svc/a\nsvc/b\nval-svc/b\nsvc/c\nval-svc/c\n");
  std::tie(code, out) = e.run({"get", "--prefix", "svc/", "-w", "json"});
  CHECK(code == 0);
  CHECK(json_number(out, "count") == -1);  // 0 is left out of etcd's JSON
  CHECK(out.find("\"kvs\"") == std::string::npos);
}

TEST_CASE("etcdctl endpoint status, member list and move-leader show and move the masters' leadership") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto id_of = [&](std::uint64_t server) { return etcd::member_number(e.c->cluster_id, server); };
  // Every master names the same leader, with its Raft positions.
  for (std::uint64_t s = 1; s <= 3; ++s) {
    auto [code, out] = e.run(e.client[s], {"endpoint", "status", "-w", "json"});
    REQUIRE_MESSAGE(code == 0, out);
    CHECK(static_cast<std::uint64_t>(json_number(out, "leader")) == id_of(*leader));
    CHECK(json_number(out, "raft_term") > 0);
    CHECK(json_number(out, "raftIndex") > 0);
    CHECK(json_number(out, "raftAppliedIndex") > 0);
    CHECK(json_number(out, "dbSize") > 0);
    CHECK(out.find("\"version\":\"3.4.0\"") != std::string::npos);
  }
  // The three masters, with their peer addresses; this master's client URL.
  auto [code, out] = e.run(e.client[1], {"member", "list", "-w", "json"});
  REQUIRE_MESSAGE(code == 0, out);
  for (std::uint64_t s = 1; s <= 3; ++s) {
    CHECK(out.find(std::to_string(id_of(s))) != std::string::npos);
    CHECK(out.find("http://" + e.c->at(s).address.text()) != std::string::npos);
  }
  CHECK(out.find("http://" + e.client[1]) != std::string::npos);
  // move-leader takes the member id in hex, as etcd prints it.
  std::uint64_t target = *leader % 3 + 1;
  char hex[32];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(id_of(target)));
  std::tie(code, out) = e.run(e.client[*leader], {"move-leader", hex});
  REQUIRE_MESSAGE(code == 0, out);
  bool moved = false;
  for (auto until = std::chrono::steady_clock::now() + 10s; !moved && std::chrono::steady_clock::now() < until;) {
    auto [c2, o2] = e.run(e.client[target], {"endpoint", "status", "-w", "json"});
    moved = c2 == 0 && static_cast<std::uint64_t>(json_number(o2, "leader")) == id_of(target);
  }
  CHECK(moved);
}

TEST_CASE("etcdctl member add, promote and remove change conclave's masters; member list shows learners and every client URL") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto [code, out] = e.run({"member", "list"});
  REQUIRE_MESSAGE(code == 0, out);
  for (std::uint64_t id = 1; id <= 3; ++id) {
    CHECK_MESSAGE(out.find("http://" + e.client[id]) != std::string::npos, out);  // every master's client URL
  }
  auto port = free_port();
  std::string peer = "127.0.0.1:" + std::to_string(port);
  std::tie(code, out) = e.run({"member", "add", "new", "--learner", "--peer-urls=http://" + peer});
  REQUIRE_MESSAGE(code == 0, out << e.logs());
  // "Member <hex id> added to cluster <hex id>"
  auto at = out.find("Member ");
  REQUIRE(at != std::string::npos);
  auto hex = out.substr(at + 7, out.find(' ', at + 7) - at - 7);
  // It is named by the server id it must be started with: 4.
  auto fourth = e.c->spawn({e.c->binary(), "-r", "master", "--id", "4", "--join", "true", "--peers",
                            e.c->peers() + ",4=" + peer, "--cluster-id", e.c->cluster_id, "--data-dir",
                            e.c->path("node4"), "--client-listen", "127.0.0.1:0"},
                           "node4.log");
  std::tie(code, out) = e.run({"member", "list"});
  CHECK_MESSAGE(out.find(hex + ", ") != std::string::npos, out);
  CHECK_MESSAGE(out.find(", true\n") != std::string::npos, out);  // the learner
  // Promoted once it has caught up (the leader waits for it).
  std::tie(code, out) = e.run({"member", "promote", hex});
  CHECK_MESSAGE(code == 0, out << e.c->log_of(4));
  std::tie(code, out) = e.run({"member", "list"});
  CHECK_MESSAGE(out.find(", true\n") == std::string::npos, out);
  std::tie(code, out) = e.run({"member", "remove", hex});
  CHECK_MESSAGE(code == 0, out);
  std::tie(code, out) = e.run({"member", "list"});
  CHECK_MESSAGE(out.find(hex) == std::string::npos, out);
  std::tie(code, out) = e.run({"member", "remove", hex});
  CHECK(code != 0);
  CHECK_MESSAGE(out.find("member not found") != std::string::npos, out);
  (void)fourth;  // (killed with the cluster)
}

TEST_CASE("etcdctl endpoint hashkv: every master hashes the keys at a revision alike, and a later change moves the hash") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  for (int i = 0; i < 3; ++i) REQUIRE(e.run({"put", "h/" + std::to_string(i), "v"}).first == 0);
  auto [code, out] = e.run({"put", "h/0", "changed", "-w", "json"});
  REQUIRE(code == 0);
  auto rev = static_cast<std::int64_t>(json_number(out, "revision"));
  // At revision rev - 1 (before the change): one hash from all three, once each has applied it.
  auto hashes = [&](std::int64_t at) {
    auto [c, o] = e.run({"endpoint", "hashkv", "--rev", std::to_string(at)});
    std::set<std::string> distinct;
    for (std::size_t p = 0, nl; (nl = o.find('\n', p)) != std::string::npos; p = nl + 1) {
      auto line = o.substr(p, nl - p);
      if (auto comma = line.rfind(", "); comma != std::string::npos) distinct.insert(line.substr(comma + 2));
    }
    return std::make_pair(c, distinct);
  };
  std::pair<int, std::set<std::string>> before, after;
  for (auto until = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < until;) {
    before = hashes(rev - 1);
    after = hashes(rev);
    if (before.first == 0 && after.first == 0 && before.second.size() == 1 && after.second.size() == 1) break;
  }
  REQUIRE(before.second.size() == 1);
  REQUIRE(after.second.size() == 1);
  CHECK(*before.second.begin() != *after.second.begin());
}

TEST_CASE("etcdctl snapshot save writes the backup file conclavectl writes (ending with its SHA-256), and conclave restore reads it") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  for (int i = 0; i < 3; ++i) REQUIRE(e.run({"put", "saved/" + std::to_string(i), "v" + std::to_string(i)}).first == 0);
  auto file = e.c->path("snap.db");
  auto [code, out] = e.run(e.client[*leader % 3 + 1], {"snapshot", "save", file});
  REQUIRE_MESSAGE(code == 0, out);
  auto bytes = file_text(file);
  REQUIRE(bytes.size() > SHA256_DIGEST_LENGTH);
  auto body = bytes.substr(0, bytes.size() - SHA256_DIGEST_LENGTH);
  CHECK(body.size() % 512 == 0);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  CHECK(bytes.substr(body.size()) == std::string(reinterpret_cast<const char*>(digest), sizeof digest));
  auto saved = backup::decode(bytes);
  REQUIRE_MESSAGE(saved.has_value(), saved.error().message());
  CHECK(saved->header.cluster_id == e.c->cluster_id);
  for (int i = 0; i < 3; ++i) {
    auto it = saved->state.keys.find("saved/" + std::to_string(i));
    REQUIRE(it != saved->state.keys.end());
    CHECK(it->second.value == "v" + std::to_string(i));
  }
  CHECK(saved->state.rev >= 3);
  auto pid = e.c->spawn({conclave_binary(), "restore", "--from", file, "--data-dir", e.c->path("restored"), "--id", "1",
                         "--peers", "1=127.0.0.1:1"},
                        "restore.log");
  auto status = e.c->wait_exit(pid, 60s);
  REQUIRE(status.has_value());
  CHECK_MESSAGE(WEXITSTATUS(*status) == 0, file_text(e.c->path("restore.log")));
}

TEST_CASE("with a cluster secret, etcd clients authenticate with the member key as the password; the secret for admin requests") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  test::temp_dir keys;
  const std::string secret = "etcd-auth-test-secret";
  auto secret_file = keys / "secret";
  std::ofstream(secret_file) << secret << "\n";
  ::chmod(secret_file.c_str(), 0600);
  etcd_cluster e({"--secret-file", secret_file});
  e.c->use_keys(auth::from_secret(secret));
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto member = "--user=app:" + auth::member_key_of(secret);
  auto [code, out] = e.run({"put", "k", "v"});
  CHECK(code != 0);
  CHECK_MESSAGE(out.find("etcdserver: user name is empty") != std::string::npos, out);
  std::tie(code, out) = e.run({"--user=app:not-the-key", "put", "k", "v"});
  CHECK(code != 0);
  CHECK_MESSAGE(out.find("authentication failed") != std::string::npos, out);
  std::tie(code, out) = e.run({member, "put", "k", "v"});
  CHECK_MESSAGE(code == 0, out);
  std::tie(code, out) = e.run({member, "get", "k", "--print-value-only"});
  CHECK(out == "v\n");
  // Leadership and membership take the secret.
  std::uint64_t follower = *leader % 3 + 1;
  std::tie(code, out) = e.run({member, "endpoint", "status", "-w", "json"});
  REQUIRE_MESSAGE(code == 0, out);
  char target[32];
  std::snprintf(target, sizeof target, "%llx",
                static_cast<unsigned long long>(etcd::member_number(e.c->cluster_id, follower)));
  std::tie(code, out) = e.run({member, "move-leader", target});
  CHECK(code != 0);
  CHECK_MESSAGE(out.find("permission denied") != std::string::npos, out);
  std::tie(code, out) = e.run({"--user=root:" + secret, "move-leader", target});
  CHECK_MESSAGE(code == 0, out);
}

TEST_CASE("python3-etcd3 (Debian's gRPC client) puts, gets, lists, deletes and reads the status through a follower") {
  // Debian's Python packages load only under /usr/bin/python3.
  if (std::system("/usr/bin/python3 -c 'import etcd3' >/dev/null 2>&1") != 0) {
    CONCLAVE_SKIP("no python3-etcd3 under /usr/bin/python3");
  }
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto script = program("CONCLAVE_ETCD_CLIENTS", "test/etcd_clients") + std::string("/python_etcd3_kv.py");
  auto pid = e.c->spawn({"/usr/bin/python3", script, e.client[*leader % 3 + 1]}, "python-etcd3.log");
  auto status = e.c->wait_exit(pid, 120s);
  auto out = file_text(e.c->path("python-etcd3.log"));
  REQUIRE_MESSAGE(status.has_value(), out);
  CHECK_MESSAGE((WIFEXITED(*status) && WEXITSTATUS(*status) == 0), out);
  CHECK(out.find("FAIL") == std::string::npos);
  CHECK(out.find("ok   three members listed") != std::string::npos);
}

TEST_CASE("python3-etcd3 through a follower: txns, leases, a lock, and a watch and a lease that live through a leader kill") {
  if (std::system("/usr/bin/python3 -c 'import etcd3' >/dev/null 2>&1") != 0) {
    CONCLAVE_SKIP("no python3-etcd3 under /usr/bin/python3");
  }
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto script = program("CONCLAVE_ETCD_CLIENTS", "test/etcd_clients") + std::string("/python_etcd3_more.py");
  // The script kills the leader halfway through its watched writes.
  auto pid = e.c->spawn({"/usr/bin/python3", script, e.client[*leader % 3 + 1], std::to_string(e.c->at(*leader).pid)},
                        "python-etcd3-more.log");
  auto status = e.c->wait_exit(pid, 120s);
  auto out = file_text(e.c->path("python-etcd3-more.log"));
  REQUIRE_MESSAGE(status.has_value(), out);
  CHECK_MESSAGE((WIFEXITED(*status) && WEXITSTATUS(*status) == 0), out << e.logs());
  CHECK(out.find("FAIL") == std::string::npos);
  CHECK(out.find("ok   the lease lived on") != std::string::npos);
}

TEST_CASE("etcdctl writes on after the leader is killed: another master takes the request") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto [code, out] = e.run({"put", "before", "1"});
  REQUIRE_MESSAGE(code == 0, out << e.logs());
  e.c->signal(*leader, SIGKILL);
  // Every endpoint given, the dead one included: the client uses the others.
  std::tie(code, out) = e.run({"put", "after", "2"});
  CHECK_MESSAGE(code == 0, out << e.logs());
  std::tie(code, out) = e.run(e.endpoints(*leader), {"get", "after", "--print-value-only"});
  CHECK(code == 0);
  CHECK(out == "2\n");
  std::tie(code, out) = e.run(e.endpoints(*leader), {"get", "before", "--print-value-only"});
  CHECK(out == "1\n");
}

namespace {

// A Put through `kv` with a deadline of `s` seconds: its status and answer.
std::pair<grpc::Status, etcdserverpb::PutResponse> put_via(etcdserverpb::KV::Stub& kv, const std::string& key,
                                                           const std::string& value, int s = 10) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(s));
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  etcdserverpb::PutResponse resp;
  auto status = kv.Put(&ctx, req, &resp);
  return {status, resp};
}

std::optional<mvccpb::KeyValue> get_via(etcdserverpb::KV::Stub& kv, const std::string& key) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  etcdserverpb::RangeResponse resp;
  if (!kv.Range(&ctx, req, &resp).ok() || resp.kvs_size() != 1) return std::nullopt;
  return resp.kvs(0);
}

}  // namespace

TEST_CASE("a write sent to a follower while no master leads waits for the new leader and commits once") {
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;
  auto kv = etcdserverpb::KV::NewStub(grpc::CreateChannel(e.client.at(follower), grpc::InsecureChannelCredentials()));
  auto [first, before] = put_via(*kv, "k", "0");
  REQUIRE_MESSAGE(first.ok(), first.error_message() << e.logs());
  e.c->signal(*leader, SIGKILL);
  // Sent once the follower no longer takes the dead master for the leader
  // (before, it would pass the write on to it, and its outcome would be
  // unknown): it then has no leader until the others elect one, or already
  // the new one.
  bool moved_on = false;
  for (auto until = std::chrono::steady_clock::now() + 20s; !moved_on && std::chrono::steady_clock::now() < until;) {
    auto st = e.c->status(follower);
    moved_on = st && st->leader_id != *leader;
    if (!moved_on) std::this_thread::sleep_for(10ms);
  }
  REQUIRE_MESSAGE(moved_on, e.logs());
  auto [status, after] = put_via(*kv, "k", "1");
  REQUIRE_MESSAGE(status.ok(), status.error_message() << e.logs());
  CHECK(after.header().revision() > before.header().revision());
  auto got = get_via(*kv, "k");
  REQUIRE(got);
  CHECK(got->value() == "1");
  CHECK(got->version() == 2);  // applied once: put twice in all
  CHECK(got->mod_revision() == after.header().revision());
}

TEST_CASE("a master answers many etcd writes at once, each committed once, none refused for want of threads") {
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;
  auto channel = grpc::CreateChannel(e.client.at(follower), grpc::InsecureChannelCredentials());
  auto kv = etcdserverpb::KV::NewStub(channel);
  // 200 calls in flight at once on one connection, more than the pooled
  // clients (parallel-calls, 16) and gRPC's threads.
  constexpr int n = 200;
  grpc::CompletionQueue cq;
  struct call {
    grpc::ClientContext ctx;
    etcdserverpb::PutResponse resp;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<call>> calls;
  for (int i = 0; i < n; ++i) {
    auto c = std::make_unique<call>();
    c->ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    etcdserverpb::PutRequest req;
    req.set_key("many/" + std::to_string(i));
    req.set_value(std::to_string(i));
    auto rpc = kv->AsyncPut(&c->ctx, req, &cq);
    rpc->Finish(&c->resp, &c->status, c.get());
    calls.push_back(std::move(c));
  }
  std::set<std::int64_t> revisions;
  for (int i = 0; i < n; ++i) {
    void* tag = nullptr;
    bool ok = false;
    REQUIRE(cq.Next(&tag, &ok));
    auto* c = static_cast<call*>(tag);
    CHECK_MESSAGE(c->status.ok(), c->status.error_message());
    revisions.insert(c->resp.header().revision());
  }
  CHECK(revisions.size() == n);  // each write its own revision
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  etcdserverpb::RangeRequest range;
  range.set_key("many/");
  range.set_range_end("many0");
  etcdserverpb::RangeResponse listed;
  REQUIRE(kv->Range(&ctx, range, &listed).ok());
  CHECK(listed.count() == n);
  for (const auto& k : listed.kvs()) CHECK(k.version() == 1);
  cq.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_CASE("watch and lease keep-alive streams are pushed to without a thread of the master's each") {
  etcd_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;
  auto pid = e.c->at(follower).pid;
  auto channel = grpc::CreateChannel(e.client.at(follower), grpc::InsecureChannelCredentials());
  auto kv = etcdserverpb::KV::NewStub(channel);
  auto leases = etcdserverpb::Lease::NewStub(channel);
  auto watches = etcdserverpb::Watch::NewStub(channel);
  REQUIRE(put_via(*kv, "warm", "up").first.ok());  // the master's own clients and threads exist
  auto before = threads_of(pid);
  REQUIRE(before > 0);

  grpc::ClientContext grant_ctx;
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(30);
  etcdserverpb::LeaseGrantResponse granted;
  REQUIRE(leases->LeaseGrant(&grant_ctx, grant, &granted).ok());

  constexpr int n = 150;
  struct open_stream {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>> watch;
    std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>>
        keepalive;
  };
  std::vector<std::unique_ptr<open_stream>> streams;
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<open_stream>();
    w->watch = watches->Watch(&w->ctx);
    etcdserverpb::WatchRequest create;
    create.mutable_create_request()->set_key("pushed");
    REQUIRE(w->watch->Write(create));
    etcdserverpb::WatchResponse created;
    REQUIRE(w->watch->Read(&created));
    REQUIRE(created.created());
    streams.push_back(std::move(w));
    auto k = std::make_unique<open_stream>();
    k->keepalive = leases->LeaseKeepAlive(&k->ctx);
    etcdserverpb::LeaseKeepAliveRequest ka;
    ka.set_id(granted.id());
    REQUIRE(k->keepalive->Write(ka));
    etcdserverpb::LeaseKeepAliveResponse renewed;
    if (!k->keepalive->Read(&renewed)) {
      auto status = k->keepalive->Finish();
      FAIL_CHECK("keep-alive stream ended: " << status.error_code() << " " << status.error_message());
      break;
    }
    CHECK(renewed.ttl() == 30);
    streams.push_back(std::move(k));
  }
  // 300 open streams: a thread each (gRPC's synchronous server, or a writer
  // per watch) would show here.
  auto during = threads_of(pid);
  CHECK_MESSAGE(during - before < 40, "threads before: " << before << ", with " << 2 * n << " streams: " << during);

  auto [put, at] = put_via(*kv, "pushed", "v");
  REQUIRE(put.ok());
  for (auto& st : streams) {
    if (!st->watch) continue;
    etcdserverpb::WatchResponse event;
    REQUIRE(st->watch->Read(&event));
    REQUIRE(event.events_size() == 1);
    CHECK(event.events(0).kv().value() == "v");
    CHECK(event.events(0).kv().mod_revision() == at.header().revision());
  }
  for (auto& st : streams) {
    if (st->watch) {
      st->watch->WritesDone();
      st->ctx.TryCancel();
      (void)st->watch->Finish();
    } else {
      st->keepalive->WritesDone();
      etcdserverpb::LeaseKeepAliveResponse rest;
      while (st->keepalive->Read(&rest)) {
      }
      CHECK(st->keepalive->Finish().ok());
    }
  }
}

// --- transactions, revisions, compaction and leases against the fake cluster ----------

namespace {

struct fake_clients {
  fake_server s;
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(s.server->port()), grpc::InsecureChannelCredentials());
  std::unique_ptr<etcdserverpb::Lease::Stub> lease = etcdserverpb::Lease::NewStub(channel);

  template <class F>
  grpc::Status call(F&& f) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    return f(&ctx);
  }
  grpc::Status txn(const etcdserverpb::TxnRequest& req, etcdserverpb::TxnResponse* out) {
    return call([&](grpc::ClientContext* c) { return s.kv->Txn(c, req, out); });
  }
};

etcdserverpb::Compare compare_value(const std::string& key, etcdserverpb::Compare::CompareResult r, const std::string& v) {
  etcdserverpb::Compare c;
  c.set_key(key);
  c.set_target(etcdserverpb::Compare::VALUE);
  c.set_result(r);
  c.set_value(v);
  return c;
}

}  // namespace

TEST_CASE("an etcd txn compares, then runs one branch atomically at one revision, answering each operation") {
  fake_clients f;
  REQUIRE(f.s.put("job/a", "ready").ok());
  REQUIRE(f.s.put("job/b", "ready").ok());  // revision 42
  etcdserverpb::TxnRequest t;
  *t.add_compare() = compare_value("job/a", etcdserverpb::Compare::EQUAL, "ready");
  auto* put = t.add_success()->mutable_request_put();
  put->set_key("job/a");
  put->set_value("taken");
  put->set_prev_kv(true);
  auto* del = t.add_success()->mutable_request_delete_range();
  del->set_key("job/b");
  del->set_prev_kv(true);
  auto* get = t.add_success()->mutable_request_range();
  get->set_key("job/");
  get->set_range_end("job0");
  t.add_failure()->mutable_request_range()->set_key("job/a");
  etcdserverpb::TxnResponse r;
  auto st = f.txn(t, &r);
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(r.succeeded());
  CHECK(r.header().revision() == 43);  // both changes at one revision
  REQUIRE(r.responses_size() == 3);
  CHECK(r.responses(0).response_put().prev_kv().value() == "ready");
  CHECK(r.responses(1).response_delete_range().deleted() == 1);
  CHECK(r.responses(1).response_delete_range().prev_kvs(0).key() == "job/b");
  REQUIRE(r.responses(2).response_range().kvs_size() == 1);  // sees the writes before it
  CHECK(r.responses(2).response_range().kvs(0).value() == "taken");
  CHECK(r.responses(2).response_range().kvs(0).mod_revision() == 43);
  // Again: the comparison fails, the failure branch reads.
  r.Clear();
  REQUIRE(f.txn(t, &r).ok());
  CHECK_FALSE(r.succeeded());
  CHECK(r.header().revision() == 43);
  REQUIRE(r.responses_size() == 1);
  CHECK(r.responses(0).response_range().kvs(0).value() == "taken");
  // etcd's refusals: a key changed twice, an unknown lease.
  etcdserverpb::TxnRequest twice;
  for (int i = 0; i < 2; ++i) {
    auto* p = twice.add_success()->mutable_request_put();
    p->set_key("dup");
  }
  r.Clear();
  st = f.txn(twice, &r);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "etcdserver: duplicate key given in txn request");
  etcdserverpb::TxnRequest leased;
  auto* lp = leased.add_success()->mutable_request_put();
  lp->set_key("x");
  lp->set_lease(12345);
  st = f.txn(leased, &r);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(st.error_message() == "etcdserver: requested lease not found");
  etcdserverpb::RangeResponse got;
  REQUIRE(f.s.range(range_of("x", ""), &got).ok());
  CHECK(got.count() == 0);  // nothing of a refused txn was applied
  CHECK(got.header().revision() == 43);
}

TEST_CASE("an etcd range reads a past revision until it is compacted; compaction as etcd refuses it") {
  fake_clients f;
  REQUIRE(f.s.put("k", "one").ok());  // 41
  REQUIRE(f.s.put("k", "two").ok());  // 42
  etcdserverpb::DeleteRangeRequest del;
  del.set_key("k");
  etcdserverpb::DeleteRangeResponse deleted;
  REQUIRE(f.call([&](grpc::ClientContext* c) { return f.s.kv->DeleteRange(c, del, &deleted); }).ok());
  CHECK(deleted.header().revision() == 43);
  auto at = [&](std::int64_t rev, etcdserverpb::RangeResponse* r) {
    auto req = range_of("k", "");
    req.set_revision(rev);
    return f.s.range(req, r);
  };
  etcdserverpb::RangeResponse r;
  REQUIRE(at(41, &r).ok());
  REQUIRE(r.kvs_size() == 1);
  CHECK(r.kvs(0).value() == "one");
  CHECK(r.header().revision() == 43);  // the header names the current revision, as etcd's
  r.Clear();
  REQUIRE(at(43, &r).ok());
  CHECK(r.kvs_size() == 0);
  CHECK(at(44, &r).error_message() == "etcdserver: mvcc: required revision is a future revision");
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(42);
  etcdserverpb::CompactionResponse done;
  REQUIRE(f.call([&](grpc::ClientContext* c) { return f.s.kv->Compact(c, compact, &done); }).ok());
  CHECK(done.header().revision() == 43);
  auto st = at(41, &r);
  CHECK(st.error_code() == grpc::StatusCode::OUT_OF_RANGE);
  CHECK(st.error_message() == "etcdserver: mvcc: required revision has been compacted");
  r.Clear();
  REQUIRE(at(42, &r).ok());
  CHECK(r.kvs(0).value() == "two");
  st = f.call([&](grpc::ClientContext* c) { return f.s.kv->Compact(c, compact, &done); });
  CHECK(st.error_message() == "etcdserver: mvcc: required revision has been compacted");
}

TEST_CASE("an etcd lease is a session: granted (chosen or picked id), its keys go with it, time to live, revoked") {
  fake_clients f;
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(1);  // raised to etcd's minimum
  etcdserverpb::LeaseGrantResponse granted;
  REQUIRE(f.call([&](grpc::ClientContext* c) { return f.lease->LeaseGrant(c, grant, &granted); }).ok());
  CHECK(granted.id() > 0);
  CHECK(granted.ttl() == 2);
  grant.set_id(7000);
  grant.set_ttl(30);
  etcdserverpb::LeaseGrantResponse chosen;
  REQUIRE(f.call([&](grpc::ClientContext* c) { return f.lease->LeaseGrant(c, grant, &chosen); }).ok());
  CHECK(chosen.id() == 7000);
  auto st = f.call([&](grpc::ClientContext* c) { return f.lease->LeaseGrant(c, grant, &chosen); });
  CHECK(st.error_message() == "etcdserver: lease already exists");
  // A key on the lease.
  grpc::ClientContext ctx;
  etcdserverpb::PutRequest put;
  put.set_key("worker/1");
  put.set_value("up");
  put.set_lease(7000);
  etcdserverpb::PutResponse put_resp;
  REQUIRE(f.s.kv->Put(&ctx, put, &put_resp).ok());
  etcdserverpb::LeaseTimeToLiveRequest ttl;
  ttl.set_id(7000);
  ttl.set_keys(true);
  etcdserverpb::LeaseTimeToLiveResponse alive;
  REQUIRE(f.call([&](grpc::ClientContext* c) { return f.lease->LeaseTimeToLive(c, ttl, &alive); }).ok());
  CHECK(alive.grantedttl() == 30);
  CHECK(alive.ttl() == 30);
  REQUIRE(alive.keys_size() == 1);
  CHECK(alive.keys(0) == "worker/1");
  etcdserverpb::LeaseLeasesResponse all;
  REQUIRE(f.call([&](grpc::ClientContext* c) {
             return f.lease->LeaseLeases(c, etcdserverpb::LeaseLeasesRequest{}, &all);
           }).ok());
  CHECK(all.leases_size() == 2);
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(7000);
  etcdserverpb::LeaseRevokeResponse revoked;
  REQUIRE(f.call([&](grpc::ClientContext* c) { return f.lease->LeaseRevoke(c, revoke, &revoked); }).ok());
  CHECK(revoked.header().revision() == put_resp.header().revision() + 1);  // its key went
  etcdserverpb::RangeResponse r;
  REQUIRE(f.s.range(range_of("worker/1", ""), &r).ok());
  CHECK(r.count() == 0);
  st = f.call([&](grpc::ClientContext* c) { return f.lease->LeaseRevoke(c, revoke, &revoked); });
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(st.error_message() == "etcdserver: requested lease not found");
  alive.Clear();
  REQUIRE(f.call([&](grpc::ClientContext* c) { return f.lease->LeaseTimeToLive(c, ttl, &alive); }).ok());
  CHECK(alive.ttl() == -1);
  // Keep-alive: each request answered with the TTL, 0 once the lease is gone.
  grpc::ClientContext kctx;
  auto stream = f.lease->LeaseKeepAlive(&kctx);
  etcdserverpb::LeaseKeepAliveRequest ka;
  ka.set_id(granted.id());
  etcdserverpb::LeaseKeepAliveResponse kr;
  REQUIRE(stream->Write(ka));
  REQUIRE(stream->Read(&kr));
  CHECK(kr.id() == granted.id());
  CHECK(kr.ttl() == 2);
  ka.set_id(7000);
  REQUIRE(stream->Write(ka));
  REQUIRE(stream->Read(&kr));
  CHECK(kr.ttl() == 0);
  stream->WritesDone();
  CHECK(stream->Finish().ok());
}

// --- watches against 3 masters: one stream's slow client holds up no other ---------

TEST_CASE("an etcd watch whose client stops reading holds up no other watch on that master") {
  etcd_masters e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto at = e.client[*leader];
  // The stalled client keeps gRPC's smallest receive window (no BDP growth),
  // so its stream backs up after little data and the master's writes to it block.
  grpc::ChannelArguments small;
  small.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  small.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 * 1024);
  auto stalled_channel = grpc::CreateCustomChannel(at, grpc::InsecureChannelCredentials(), small);
  auto channel = grpc::CreateChannel(at, grpc::InsecureChannelCredentials());
  auto create = [](grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>& s) {
    etcdserverpb::WatchRequest req;
    req.mutable_create_request()->set_key("big/");
    req.mutable_create_request()->set_range_end("big0");
    REQUIRE(s.Write(req));
    etcdserverpb::WatchResponse created;
    REQUIRE(s.Read(&created));
    REQUIRE(created.created());
  };
  auto stalled_stub = etcdserverpb::Watch::NewStub(stalled_channel);
  grpc::ClientContext stalled_ctx;
  auto stalled = stalled_stub->Watch(&stalled_ctx);
  create(*stalled);  // ... and never reads again
  auto stub = etcdserverpb::Watch::NewStub(channel);
  grpc::ClientContext ctx;
  auto reader = stub->Watch(&ctx);
  create(*reader);
  // 24 MiB of changes: more than the stalled stream's windows and socket buffers hold.
  const int puts = 240;
  std::atomic<int> seen{0};
  std::thread watcher([&] {
    etcdserverpb::WatchResponse r;
    while (seen < puts && reader->Read(&r)) seen += r.events_size();
  });
  auto kv = etcdserverpb::KV::NewStub(channel);
  std::string value(100 * 1024, 'v');
  for (int i = 0; i < puts; ++i) {
    grpc::ClientContext put_ctx;
    put_ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    etcdserverpb::PutRequest req;
    req.set_key("big/" + std::to_string(i));
    req.set_value(value);
    etcdserverpb::PutResponse resp;
    auto st = kv->Put(&put_ctx, req, &resp);
    REQUIRE_MESSAGE(st.ok(), st.error_message());
  }
  // The reading watch gets every change, whatever the stalled one does.
  bool all = false;
  for (auto until = std::chrono::steady_clock::now() + 60s; !(all = seen == puts) && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(50ms);
  }
  CHECK_MESSAGE(all, "the reading watch got " << seen.load() << " of " << puts << " events");
  ctx.TryCancel();
  stalled_ctx.TryCancel();
  watcher.join();
  // The stalled stream's last write never completed; its client's leaving
  // still ends the stream, so the master stops cleanly when told to (its
  // gRPC server waits for every stream to end: a stream never finished
  // would hold it until the test's timeout).
  auto status = e.c->signal(*leader, SIGTERM);
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "exit status " << status << e.logs());
}
