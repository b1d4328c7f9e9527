// etcd's Lock and Election services (roles/etcd_lock.cpp,
// roles/etcd_election.cpp): against a fake cluster whose registry pushes
// key changes as a master does (registry::subscriptions), then against 3
// masters together with Debian's etcdctl, whose `lock` and `elect` build the
// same recipe from KV, Watch and Lease.
#include <doctest/doctest.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>

#include "actors/registry/queries.hpp"
#include "actors/registry/subscriptions.hpp"
#include "roles/etcd_api.hpp"
#include "schema/etcd/election.grpc.pb.h"
#include "schema/etcd/lock.grpc.pb.h"
#include "schema/etcd/rpc.grpc.pb.h"
#include "schema/registry_codec.hpp"
#include "test/etcd_masters.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

// --- a fake cluster that pushes ----------------------------------------------------

// One master's registry behind the server: commands apply at once, and
// subscriptions get what registry::subscriptions says is due after each,
// in order, on one delivery thread (as roles/push_client.hpp runs handlers).
struct push_cluster {
  using handler = std::function<void(const registry::push&)>;

  std::mutex m;
  registry::registry reg;
  registry::subscriptions subs{reg};
  std::uint64_t index = 0, next_id = 0;
  std::map<std::uint64_t, handler> handlers;
  std::deque<std::pair<std::uint64_t, registry::push>> outbox;
  std::condition_variable ready;
  bool stopping = false;
  std::atomic<std::chrono::milliseconds> answer_delay{std::chrono::milliseconds(0)};
  std::atomic<int> delayed{0};  // answers on their way
  std::thread delivery{[this] { deliver(); }};

  ~push_cluster() {
    {
      std::lock_guard<std::mutex> guard(m);
      stopping = true;
    }
    ready.notify_all();
    delivery.join();
  }

  void deliver() {
    std::unique_lock<std::mutex> lock(m);
    for (;;) {
      ready.wait(lock, [&] { return stopping || !outbox.empty(); });
      if (stopping) return;
      auto [id, p] = std::move(outbox.front());
      outbox.pop_front();
      auto it = handlers.find(id);
      if (it == handlers.end()) continue;
      auto h = it->second;
      lock.unlock();
      h(p);
      lock.lock();
    }
  }

  // Under m.
  void post(std::uint64_t id, registry::push p) {
    outbox.emplace_back(id, std::move(p));
    ready.notify_all();
  }

  etcd::backend backend() {
    etcd::backend b;
    auto propose_now = [this](const registry::command& c) -> expected<client::committed> {
      std::lock_guard<std::mutex> guard(m);
      wire::registry_result r;
      r.outcome = reg.apply(c, ++index, &r.grants);
      subs.on_command(c, r.grants);
      for (auto& [id, p] : subs.collect()) post(id, std::move(p));
      return client::committed{index, 3, wire::encode_result(r)};
    };
    auto read_now = [this](const registry::query& q) -> expected<client::read_result> {
      std::lock_guard<std::mutex> guard(m);
      return client::read_result{index, wire::encode_query_result(registry::answer(reg, q))};
    };
    // The backend's calls answer before they return (gRPC's handlers allow
    // it), or, with `answer_delay`, a while after they took effect.
    b.propose = [this, propose_now](const registry::command& c, std::chrono::milliseconds, auto done) {
      auto delay = answer_delay.load();
      if (delay == 0ms) return done(propose_now(c));
      ++delayed;
      std::thread([this, delay, done, r = propose_now(c)] {
        std::this_thread::sleep_for(delay);
        done(r);
        --delayed;
      }).detach();
    };
    b.read = [read_now](const registry::query& q, bool, std::chrono::milliseconds, auto done) { done(read_now(q)); };
    b.term = [] { return std::uint64_t{3}; };
    auto keepalive_now = [this](std::uint64_t id) -> expected<bool> {
      std::lock_guard<std::mutex> guard(m);
      return reg.find_session(id) != nullptr;
    };
    b.keepalive = [keepalive_now](std::uint64_t id, std::chrono::milliseconds, auto done) { done(keepalive_now(id)); };
    b.subscribe = [this](std::function<registry::subscription()> resume, handler on_push) {
      std::lock_guard<std::mutex> guard(m);
      auto id = ++next_id;
      handlers[id] = std::move(on_push);
      for (auto& p : subs.add(id, resume())) post(id, std::move(p));
      return id;
    };
    b.unsubscribe = [this](std::uint64_t id) {
      std::lock_guard<std::mutex> guard(m);
      handlers.erase(id);
      subs.remove(id);
    };
    return b;
  }

  std::size_t subscriptions() {
    std::lock_guard<std::mutex> guard(m);
    return subs.size();
  }
};

// The Lock and Election calls the tests make, each with a deadline (30 s
// unless told), on stubs the deriving struct sets.
struct lock_calls {
  std::unique_ptr<v3lockpb::Lock::Stub> lock;
  std::unique_ptr<v3electionpb::Election::Stub> election;

  static void within(grpc::ClientContext& ctx, std::chrono::seconds s = 30s) {
    ctx.set_deadline(std::chrono::system_clock::now() + s);
  }

  grpc::Status take(const std::string& name, std::int64_t lease_id, v3lockpb::LockResponse* out,
                    std::chrono::seconds wait = 30s) {
    grpc::ClientContext ctx;
    within(ctx, wait);
    v3lockpb::LockRequest req;
    req.set_name(name);
    req.set_lease(lease_id);
    return lock->Lock(&ctx, req, out);
  }

  grpc::Status unlock(const std::string& key) {
    grpc::ClientContext ctx;
    within(ctx);
    v3lockpb::UnlockRequest req;
    req.set_key(key);
    v3lockpb::UnlockResponse resp;
    return lock->Unlock(&ctx, req, &resp);
  }

  grpc::Status campaign(const std::string& name, std::int64_t lease_id, const std::string& value,
                        v3electionpb::CampaignResponse* out) {
    grpc::ClientContext ctx;
    within(ctx);
    v3electionpb::CampaignRequest req;
    req.set_name(name);
    req.set_lease(lease_id);
    req.set_value(value);
    return election->Campaign(&ctx, req, out);
  }

  grpc::Status proclaim(const v3electionpb::LeaderKey& leader, const std::string& value) {
    grpc::ClientContext ctx;
    within(ctx);
    v3electionpb::ProclaimRequest req;
    *req.mutable_leader() = leader;
    req.set_value(value);
    v3electionpb::ProclaimResponse resp;
    return election->Proclaim(&ctx, req, &resp);
  }
};

struct fake : lock_calls {
  push_cluster cluster;
  std::unique_ptr<etcd::server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;

  fake() {
    auto s = etcd::server::start(raft::endpoint{"127.0.0.1", 0}, 1111, 2222, cluster.backend());
    REQUIRE_MESSAGE(s, s.error().message());
    server = std::move(*s);
    channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server->port()), grpc::InsecureChannelCredentials());
    kv = etcdserverpb::KV::NewStub(channel);
    lease = etcdserverpb::Lease::NewStub(channel);
    lock = v3lockpb::Lock::NewStub(channel);
    election = v3electionpb::Election::NewStub(channel);
  }

  std::int64_t grant(std::int64_t ttl = 60) {
    grpc::ClientContext ctx;
    within(ctx);
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(ttl);
    etcdserverpb::LeaseGrantResponse resp;
    auto st = lease->LeaseGrant(&ctx, req, &resp);
    REQUIRE_MESSAGE(st.ok(), st.error_message());
    return resp.id();
  }

  void revoke(std::int64_t id) {
    grpc::ClientContext ctx;
    within(ctx);
    etcdserverpb::LeaseRevokeRequest req;
    req.set_id(id);
    etcdserverpb::LeaseRevokeResponse resp;
    auto st = lease->LeaseRevoke(&ctx, req, &resp);
    REQUIRE_MESSAGE(st.ok(), st.error_message());
  }


  etcdserverpb::RangeResponse range(const std::string& prefix) {
    grpc::ClientContext ctx;
    within(ctx);
    etcdserverpb::RangeRequest req;
    req.set_key(prefix);
    std::string end = prefix;
    end.back() = static_cast<char>(end.back() + 1);
    req.set_range_end(end);
    etcdserverpb::RangeResponse resp;
    auto st = kv->Range(&ctx, req, &resp);
    REQUIRE_MESSAGE(st.ok(), st.error_message());
    return resp;
  }

  // Waits until `n` keys are under `prefix` (requests queued in that order).
  void until_keys(const std::string& prefix, int n) {
    for (auto until = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < until;) {
      if (range(prefix).kvs_size() == n) return;
      std::this_thread::sleep_for(10ms);
    }
    FAIL("never ", n, " keys under ", prefix);
  }
};

std::string hex(std::int64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(v));
  return b;
}

// A Lock call running on its own thread.
struct pending_lock {
  v3lockpb::LockResponse resp;
  std::future<grpc::Status> done;
  pending_lock(fake& f, const std::string& name, std::int64_t lease) {
    done = std::async(std::launch::async, [&f, name, lease, this] { return f.take(name, lease, &resp); });
  }
  bool finished() { return done.wait_for(0s) == std::future_status::ready; }
};

}  // namespace

TEST_CASE("Lock answers at once a free lock's key, NAME/LEASEHEX, which KV reads with the lease and Unlock deletes") {
  fake f;
  auto lease = f.grant();
  v3lockpb::LockResponse got;
  auto st = f.take("jobs", lease, &got);
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(got.key() == "jobs/" + hex(lease));
  CHECK(got.header().cluster_id() == 1111);
  CHECK(got.header().member_id() == 2222);
  auto r = f.range("jobs/");
  REQUIRE(r.kvs_size() == 1);
  CHECK(r.kvs(0).key() == got.key());
  CHECK(r.kvs(0).lease() == lease);
  CHECK(r.kvs(0).value().empty());
  CHECK(got.header().revision() == r.kvs(0).create_revision());
  // The same lease asks again: it holds the lock already (its key is reused).
  v3lockpb::LockResponse again;
  REQUIRE(f.take("jobs", lease, &again).ok());
  CHECK(again.key() == got.key());
  CHECK(f.range("jobs/").kvs(0).create_revision() == r.kvs(0).create_revision());
  REQUIRE(f.unlock(got.key()).ok());
  CHECK(f.range("jobs/").kvs_size() == 0);
  // As etcd's: unlocking a key that is gone is no error; an empty key is.
  CHECK(f.unlock(got.key()).ok());
  st = f.unlock("");
  CHECK(st.error_code() == grpc::StatusCode::UNKNOWN);
  CHECK(st.error_message() == "etcdserver: key is not provided");
  CHECK(f.cluster.subscriptions() == 0);
}

TEST_CASE("Lock serves waiters first come, first served: each gets the lock when the one before unlocks") {
  fake f;
  auto holder = f.grant();
  v3lockpb::LockResponse held;
  REQUIRE(f.take("q", holder, &held).ok());
  std::vector<std::int64_t> leases;
  std::vector<std::unique_ptr<pending_lock>> waiters;
  for (int i = 0; i < 3; ++i) {
    leases.push_back(f.grant());
    waiters.push_back(std::make_unique<pending_lock>(f, "q", leases.back()));
    f.until_keys("q/", i + 2);  // queued before the next one asks
  }
  std::this_thread::sleep_for(200ms);
  for (auto& w : waiters) CHECK_FALSE(w->finished());
  auto previous = held.key();
  for (std::size_t i = 0; i < waiters.size(); ++i) {
    REQUIRE(f.unlock(previous).ok());
    REQUIRE(waiters[i]->done.wait_for(30s) == std::future_status::ready);
    auto st = waiters[i]->done.get();
    REQUIRE_MESSAGE(st.ok(), st.error_message());
    CHECK(waiters[i]->resp.key() == "q/" + hex(leases[i]));
    // It holds the lock: the lowest create revision under the name is its key's.
    auto r = f.range("q/");
    REQUIRE(r.kvs_size() == static_cast<int>(waiters.size() - i));
    auto first = std::min_element(r.kvs().begin(), r.kvs().end(), [](const auto& a, const auto& b) {
      return a.create_revision() < b.create_revision();
    });
    CHECK(first->key() == waiters[i]->resp.key());
    std::this_thread::sleep_for(100ms);
    for (std::size_t j = i + 1; j < waiters.size(); ++j) CHECK_FALSE(waiters[j]->finished());
    previous = waiters[i]->resp.key();
  }
  REQUIRE(f.unlock(previous).ok());
  CHECK(f.range("q/").kvs_size() == 0);
  CHECK(f.cluster.subscriptions() == 0);
}

TEST_CASE("a revoked lease releases its lock to the next waiter, and a waiter whose lease ends stops waiting") {
  fake f;
  auto holder = f.grant(), second = f.grant(), third = f.grant();
  v3lockpb::LockResponse held;
  REQUIRE(f.take("r", holder, &held).ok());
  pending_lock w2(f, "r", second);
  f.until_keys("r/", 2);
  pending_lock w3(f, "r", third);
  f.until_keys("r/", 3);
  // The third's lease ends while it waits: its key goes, and its Lock ends.
  f.revoke(third);
  REQUIRE(w3.done.wait_for(30s) == std::future_status::ready);
  auto st = w3.done.get();
  CHECK(st.error_code() == grpc::StatusCode::UNKNOWN);
  CHECK(st.error_message() == "mutex: session is expired");
  CHECK_FALSE(w2.finished());
  // The holder's lease ends: the second gets the lock.
  f.revoke(holder);
  REQUIRE(w2.done.wait_for(30s) == std::future_status::ready);
  st = w2.done.get();
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(w2.resp.key() == "r/" + hex(second));
  CHECK(f.cluster.subscriptions() == 0);
}

TEST_CASE("Lock refuses a lease that does not exist as etcd does, and a caller that stops waiting leaves the line") {
  fake f;
  v3lockpb::LockResponse got;
  auto st = f.take("x", 424242, &got);
  CHECK(st.error_code() == grpc::StatusCode::UNKNOWN);
  CHECK(st.error_message() == "etcdserver: requested lease not found");
  CHECK(f.range("x/").kvs_size() == 0);
  // Lease 0: as etcd's, a new lease of 60 s holds the key.
  REQUIRE(f.take("x", 0, &got).ok());
  auto r = f.range("x/");
  REQUIRE(r.kvs_size() == 1);
  CHECK(r.kvs(0).lease() != 0);
  CHECK(got.key() == "x/" + hex(r.kvs(0).lease()));
  // A waiter whose deadline passes: DEADLINE_EXCEEDED, and its key is gone.
  auto late = f.grant();
  v3lockpb::LockResponse none;
  st = f.take("x", late, &none, 1s);
  CHECK(st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  for (auto until = std::chrono::steady_clock::now() + 10s;
       f.range("x/").kvs_size() != 1 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  r = f.range("x/");
  REQUIRE(r.kvs_size() == 1);
  CHECK(r.kvs(0).key() == got.key());
  for (auto until = std::chrono::steady_clock::now() + 10s;
       f.cluster.subscriptions() != 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(f.cluster.subscriptions() == 0);
}

TEST_CASE("a caller that leaves while its Lock or Campaign is on its way removes only a key it put or waited with") {
  fake f;
  auto lease = f.grant();
  v3lockpb::LockResponse held;
  REQUIRE(f.take("x", lease, &held).ok());
  v3electionpb::CampaignResponse led;
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3electionpb::CampaignRequest req;
    req.set_name("e");
    req.set_lease(lease);
    req.set_value("v");
    REQUIRE(f.election->Campaign(&ctx, req, &led).ok());
  }
  // The same lease locks and campaigns again, and leaves before the master
  // answers (its claim finds the key it holds): what it holds stays.
  f.cluster.answer_delay = 300ms;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 50ms);
    v3lockpb::LockRequest req;
    req.set_name("x");
    req.set_lease(lease);
    v3lockpb::LockResponse resp;
    CHECK(f.lock->Lock(&ctx, req, &resp).error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 50ms);
    v3electionpb::CampaignRequest req;
    req.set_name("e");
    req.set_lease(lease);
    req.set_value("w");  // (another value: the campaign proclaims it first)
    v3electionpb::CampaignResponse resp;
    CHECK(f.election->Campaign(&ctx, req, &resp).error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // A new caller that leaves the same way: the key it put goes.
  auto other = f.grant();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 50ms);
    v3lockpb::LockRequest req;
    req.set_name("x");
    req.set_lease(other);
    v3lockpb::LockResponse resp;
    CHECK(f.lock->Lock(&ctx, req, &resp).error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // Every late answer has come, and what it set off (a removal) with it.
  for (auto until = std::chrono::steady_clock::now() + 30s;
       (f.cluster.delayed != 0 || f.range("x/").kvs_size() != 1) && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  f.cluster.answer_delay = 0ms;
  for (auto until = std::chrono::steady_clock::now() + 30s;
       f.cluster.delayed != 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  auto locks = f.range("x/");
  REQUIRE(locks.kvs_size() == 1);
  CHECK(locks.kvs(0).key() == held.key());
  auto leaders = f.range("e/");
  REQUIRE(leaders.kvs_size() == 1);
  CHECK(leaders.kvs(0).key() == led.leader().key());
}

TEST_CASE("Lock waits for a holder that took the lock through KV, as etcdctl's lock does, and the reverse") {
  fake f;
  // etcd's mutex over KV: put NAME/LEASEHEX with the lease if it does not exist.
  auto kv_lease = f.grant();
  etcdserverpb::TxnRequest t;
  auto* cmp = t.add_compare();
  cmp->set_key("m/" + hex(kv_lease));
  cmp->set_target(etcdserverpb::Compare::CREATE);
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  cmp->set_create_revision(0);
  auto* put = t.add_success()->mutable_request_put();
  put->set_key("m/" + hex(kv_lease));
  put->set_lease(kv_lease);
  etcdserverpb::TxnResponse tr;
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    REQUIRE(f.kv->Txn(&ctx, t, &tr).ok());
  }
  REQUIRE(tr.succeeded());
  pending_lock w(f, "m", f.grant());
  f.until_keys("m/", 2);
  std::this_thread::sleep_for(200ms);
  CHECK_FALSE(w.finished());
  // The KV holder deletes its key (etcd's Unlock).
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    etcdserverpb::DeleteRangeRequest del;
    del.set_key("m/" + hex(kv_lease));
    etcdserverpb::DeleteRangeResponse dr;
    REQUIRE(f.kv->DeleteRange(&ctx, del, &dr).ok());
  }
  REQUIRE(w.done.wait_for(30s) == std::future_status::ready);
  auto st = w.done.get();
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  // The reverse: a KV client sees the Lock holder's key first in line.
  auto r = f.range("m/");
  REQUIRE(r.kvs_size() == 1);
  CHECK(r.kvs(0).key() == w.resp.key());
}

TEST_CASE("Election: campaign leads or waits in line; leader, proclaim, observe and resign as etcd's") {
  fake f;
  auto la = f.grant(), lb = f.grant();
  grpc::Status st;
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3electionpb::LeaderRequest req;
    req.set_name("svc");
    v3electionpb::LeaderResponse resp;
    st = f.election->Leader(&ctx, req, &resp);
    CHECK(st.error_code() == grpc::StatusCode::UNKNOWN);
    CHECK(st.error_message() == "election: no leader");
  }
  // An observer from before any candidate.
  grpc::ClientContext octx;
  fake::within(octx, 60s);
  v3electionpb::LeaderRequest oreq;
  oreq.set_name("svc");
  auto observer = f.election->Observe(&octx, oreq);

  auto campaign = [&](std::int64_t lease, const std::string& value, v3electionpb::CampaignResponse* out) {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3electionpb::CampaignRequest req;
    req.set_name("svc");
    req.set_lease(lease);
    req.set_value(value);
    return f.election->Campaign(&ctx, req, out);
  };
  v3electionpb::CampaignResponse a;
  st = campaign(la, "a1", &a);
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(a.leader().name() == "svc");
  CHECK(a.leader().key() == "svc/" + hex(la));
  CHECK(a.leader().lease() == la);
  CHECK(a.leader().rev() == a.header().revision());
  v3electionpb::LeaderResponse seen;
  REQUIRE(observer->Read(&seen));
  CHECK(seen.kv().key() == a.leader().key());
  CHECK(seen.kv().value() == "a1");

  // A second candidate waits behind the leader.
  v3electionpb::CampaignResponse b;
  auto b_done = std::async(std::launch::async, [&] { return campaign(lb, "b1", &b); });
  f.until_keys("svc/", 2);
  CHECK(b_done.wait_for(200ms) == std::future_status::timeout);

  auto proclaim = [&](const v3electionpb::LeaderKey& l, const std::string& value) {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3electionpb::ProclaimRequest req;
    *req.mutable_leader() = l;
    req.set_value(value);
    v3electionpb::ProclaimResponse resp;
    return f.election->Proclaim(&ctx, req, &resp);
  };
  REQUIRE(proclaim(a.leader(), "a2").ok());
  REQUIRE(observer->Read(&seen));
  CHECK(seen.kv().key() == a.leader().key());
  CHECK(seen.kv().value() == "a2");
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3electionpb::LeaderResponse resp;
    REQUIRE(f.election->Leader(&ctx, oreq, &resp).ok());
    CHECK(resp.kv().key() == a.leader().key());
    CHECK(resp.kv().value() == "a2");
  }
  // A leader key of another creation is not the leader's.
  auto stale = a.leader();
  stale.set_rev(stale.rev() - 1);
  st = proclaim(stale, "x");
  CHECK(st.error_code() == grpc::StatusCode::UNKNOWN);
  CHECK(st.error_message() == "election: not leader");
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3electionpb::ProclaimRequest req;
    v3electionpb::ProclaimResponse resp;
    st = f.election->Proclaim(&ctx, req, &resp);
    CHECK(st.error_message() == "\"leader\" field must be provided");
  }

  auto resign = [&](const v3electionpb::LeaderKey& l) {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3electionpb::ResignRequest req;
    *req.mutable_leader() = l;
    v3electionpb::ResignResponse resp;
    return f.election->Resign(&ctx, req, &resp);
  };
  // As etcd's: resigning with a stale key changes nothing and is no error.
  CHECK(resign(stale).ok());
  CHECK(b_done.wait_for(100ms) == std::future_status::timeout);
  REQUIRE(resign(a.leader()).ok());
  REQUIRE(b_done.wait_for(30s) == std::future_status::ready);
  st = b_done.get();
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(b.leader().key() == "svc/" + hex(lb));
  REQUIRE(observer->Read(&seen));
  CHECK(seen.kv().key() == b.leader().key());
  CHECK(seen.kv().value() == "b1");
  // Campaigning again with another value proclaims it.
  v3electionpb::CampaignResponse b2;
  REQUIRE(campaign(lb, "b2", &b2).ok());
  CHECK(b2.leader().rev() == b.leader().rev());
  REQUIRE(observer->Read(&seen));
  CHECK(seen.kv().value() == "b2");
  // The leader's lease ends: no leader, and the observer waits for the next.
  f.revoke(lb);
  auto lc = f.grant();
  v3electionpb::CampaignResponse c;
  REQUIRE(campaign(lc, "c1", &c).ok());
  REQUIRE(observer->Read(&seen));
  CHECK(seen.kv().key() == "svc/" + hex(lc));
  CHECK(seen.kv().value() == "c1");
  octx.TryCancel();
  v3electionpb::LeaderResponse rest;
  while (observer->Read(&rest)) {
  }
  observer->Finish();
  for (auto until = std::chrono::steady_clock::now() + 10s;
       f.cluster.subscriptions() != 0 && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(f.cluster.subscriptions() == 0);
}

// --- with etcdctl against real masters ------------------------------------------------

namespace {

std::string etcdctl_binary() { return program("CONCLAVE_ETCDCTL", "/usr/bin/etcdctl"); }

// The masters, with etcdctl started against them.
struct lock_masters : etcd_masters {
  // Starts etcdctl (API 3) against every master; its output goes to `log`.
  pid_t etcdctl(std::vector<std::string> args, const std::string& log) {
    std::vector<std::string> all = {"/usr/bin/env", "ETCDCTL_API=3", etcdctl_binary(), "--endpoints", endpoints()};
    all.insert(all.end(), args.begin(), args.end());
    return c->spawn(all, log);
  }
  std::string output(const std::string& log) { return file_text(c->path(log)); }

  // Waits until `log` holds `text`.
  bool until_output(const std::string& log, const std::string& text) {
    for (auto until = std::chrono::steady_clock::now() + 60s; std::chrono::steady_clock::now() < until;) {
      if (output(log).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  std::string logs() { return c->log_of(1) + c->log_of(2) + c->log_of(3); }
};

// gRPC clients of one master.
struct stubs : lock_calls {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;

  explicit stubs(const std::string& at)
      : channel(grpc::CreateChannel(at, grpc::InsecureChannelCredentials())),
        lease(etcdserverpb::Lease::NewStub(channel)) {
    lock = v3lockpb::Lock::NewStub(channel);
    election = v3electionpb::Election::NewStub(channel);
  }

  std::int64_t grant() {
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(60);
    etcdserverpb::LeaseGrantResponse resp;
    grpc::Status st;
    for (int i = 0; i < 100; ++i) {  // until a leader answers
      grpc::ClientContext ctx;
      fake::within(ctx);
      st = lease->LeaseGrant(&ctx, req, &resp);
      if (st.ok()) return resp.id();
      std::this_thread::sleep_for(100ms);
    }
    FAIL("LeaseGrant: ", st.error_message());
    return 0;
  }
};

bool exited(process_cluster& c, pid_t pid, std::chrono::milliseconds within, int* code = nullptr) {
  auto status = c.wait_exit(pid, within);
  if (status && code) *code = WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  return status.has_value();
}

}  // namespace

TEST_CASE("etcdctl lock waits behind a lock held through the Lock service, and Lock waits behind etcdctl's lock") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  lock_masters e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  stubs s(e.client[*leader % 3 + 1]);  // a follower passes the writes on
  auto lease = s.grant();
  v3lockpb::LockRequest req;
  req.set_name("job");
  req.set_lease(lease);
  v3lockpb::LockResponse held;
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    auto st = s.lock->Lock(&ctx, req, &held);
    REQUIRE_MESSAGE(st.ok(), st.error_message());
  }
  CHECK(held.key() == "job/" + hex(lease));
  auto pid = e.etcdctl({"lock", "job", "--", "sh", "-c", "echo ran-under-lock"}, "etcdctl-lock-cmd.log");
  CHECK_FALSE(exited(*e.c, pid, 1500ms));
  CHECK(e.output("etcdctl-lock-cmd.log").find("ran-under-lock") == std::string::npos);
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    v3lockpb::UnlockRequest un;
    un.set_key(held.key());
    v3lockpb::UnlockResponse resp;
    REQUIRE(s.lock->Unlock(&ctx, un, &resp).ok());
  }
  int code = -1;
  REQUIRE_MESSAGE(exited(*e.c, pid, 60s, &code), e.output("etcdctl-lock-cmd.log"));
  CHECK(code == 0);
  CHECK(e.output("etcdctl-lock-cmd.log").find("ran-under-lock") != std::string::npos);

  // etcdctl holds the lock (it prints its key once held) until SIGINT.
  pid = e.etcdctl({"lock", "job"}, "etcdctl-lock.log");
  REQUIRE_MESSAGE(e.until_output("etcdctl-lock.log", "job/"), e.output("etcdctl-lock.log"));
  auto second = s.grant();
  req.set_lease(second);
  v3lockpb::LockResponse got;
  auto waiting = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    fake::within(ctx, 60s);
    return s.lock->Lock(&ctx, req, &got);
  });
  CHECK(waiting.wait_for(1500ms) == std::future_status::timeout);
  ::kill(pid, SIGINT);
  REQUIRE(waiting.wait_for(60s) == std::future_status::ready);
  auto st = waiting.get();
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(got.key() == "job/" + hex(second));
  CHECK(exited(*e.c, pid, 30s, &code));
  CHECK(code == 0);
}

TEST_CASE("etcdctl elect -l observes a leader campaigned through the Election service; Leader names etcdctl's leader") {
  if (::access(etcdctl_binary().c_str(), X_OK) != 0) CONCLAVE_SKIP("no etcdctl (Debian's etcd-client)");
  lock_masters e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  stubs s(e.client[*leader % 3 + 1]);
  auto lease = s.grant();
  v3electionpb::CampaignRequest creq;
  creq.set_name("svc");
  creq.set_lease(lease);
  creq.set_value("first-value");
  v3electionpb::CampaignResponse won;
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    auto st = s.election->Campaign(&ctx, creq, &won);
    REQUIRE_MESSAGE(st.ok(), st.error_message());
  }
  auto observer = e.etcdctl({"elect", "-l", "svc"}, "etcdctl-observe.log");
  REQUIRE_MESSAGE(e.until_output("etcdctl-observe.log", "svc/" + hex(lease) + "\nfirst-value\n"),
                  e.output("etcdctl-observe.log"));
  REQUIRE(s.proclaim(won.leader(), "second-value").ok());
  CHECK_MESSAGE(e.until_output("etcdctl-observe.log", "svc/" + hex(lease) + "\nsecond-value\n"),
                e.output("etcdctl-observe.log"));
  ::kill(observer, SIGINT);
  CHECK(exited(*e.c, observer, 30s));

  // etcdctl campaigns (it prints its key and value once elected) and leads until SIGINT.
  auto candidate = e.etcdctl({"elect", "svc2", "etcdctl-value"}, "etcdctl-elect.log");
  REQUIRE_MESSAGE(e.until_output("etcdctl-elect.log", "etcdctl-value"), e.output("etcdctl-elect.log"));
  v3electionpb::LeaderRequest lreq;
  lreq.set_name("svc2");
  v3electionpb::LeaderResponse now;
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    REQUIRE(s.election->Leader(&ctx, lreq, &now).ok());
  }
  CHECK(now.kv().value() == "etcdctl-value");
  CHECK(e.output("etcdctl-elect.log").find(now.kv().key()) != std::string::npos);
  creq.set_name("svc2");
  creq.set_value("mine");
  v3electionpb::CampaignResponse next;
  auto waiting = std::async(std::launch::async, [&] {
    grpc::ClientContext ctx;
    fake::within(ctx, 60s);
    return s.election->Campaign(&ctx, creq, &next);
  });
  CHECK(waiting.wait_for(1500ms) == std::future_status::timeout);
  ::kill(candidate, SIGINT);  // etcdctl resigns
  REQUIRE(waiting.wait_for(60s) == std::future_status::ready);
  auto st = waiting.get();
  REQUIRE_MESSAGE(st.ok(), st.error_message());
  CHECK(next.leader().key() == "svc2/" + hex(lease));
  {
    grpc::ClientContext ctx;
    fake::within(ctx);
    REQUIRE(s.election->Leader(&ctx, lreq, &now).ok());
  }
  CHECK(now.kv().value() == "mine");
}

TEST_CASE("Lock waiters and Observe streams wait without a thread of the master's each, and leave when their client goes") {
  lock_masters e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;
  auto pid = e.c->at(follower).pid;
  stubs s(e.client[follower]);
  auto kv = etcdserverpb::KV::NewStub(s.channel);
  auto keys_under = [&](const std::string& prefix) {
    grpc::ClientContext ctx;
    fake::within(ctx);
    etcdserverpb::RangeRequest req;
    req.set_key(prefix);
    req.set_range_end(prefix.substr(0, prefix.size() - 1) + static_cast<char>(prefix.back() + 1));
    req.set_count_only(true);
    etcdserverpb::RangeResponse resp;
    auto st = kv->Range(&ctx, req, &resp);
    return st.ok() ? resp.count() : -1;
  };
  auto until_keys = [&](const std::string& prefix, std::int64_t n) {
    for (auto until = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < until;) {
      if (keys_under(prefix) == n) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };

  // The lock is held, and a leader elected, before the count starts (the
  // master's own clients and threads exist).
  auto lease = s.grant();
  v3lockpb::LockResponse held;
  REQUIRE(s.take("busy", lease, &held).ok());
  v3electionpb::CampaignResponse won;
  REQUIRE(s.campaign("svc", lease, "first", &won).ok());
  auto before = threads_of(pid);
  REQUIRE(before > 0);

  // 100 waiters, each with a lease of its own (0: the master grants one),
  // on one completion queue of this process.
  constexpr int waiters = 100, observers = 50;
  grpc::CompletionQueue cq;
  struct waiting {
    grpc::ClientContext ctx;
    v3lockpb::LockResponse resp;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v3lockpb::LockResponse>> rpc;
  };
  std::vector<std::unique_ptr<waiting>> line;
  for (int i = 0; i < waiters; ++i) {
    auto w = std::make_unique<waiting>();
    fake::within(w->ctx, 120s);
    v3lockpb::LockRequest req;
    req.set_name("busy");
    w->rpc = s.lock->AsyncLock(&w->ctx, req, &cq);
    w->rpc->Finish(&w->resp, &w->status, w.get());
    line.push_back(std::move(w));
  }
  struct observing {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v3electionpb::LeaderResponse>> reader;
  };
  std::vector<std::unique_ptr<observing>> watching;
  // Cancels the waiters and waits for their ends; closes the observers.
  int drained = 0;
  auto cancel_waiters = [&] {
    for (auto& w : line) w->ctx.TryCancel();
    for (void* tag = nullptr; drained < static_cast<int>(line.size()); ++drained) {
      bool ok = false;
      if (!cq.Next(&tag, &ok)) break;
    }
  };
  auto close_observers = [&] {
    for (auto& o : watching) {
      o->ctx.TryCancel();
      v3electionpb::LeaderResponse rest;
      while (o->reader->Read(&rest)) {
      }
      (void)o->reader->Finish();
    }
    watching.clear();
  };
  // However the test ends, no call is left pending on what it frees.
  struct cleanup {
    std::function<void()> run;
    ~cleanup() { run(); }
  } at_exit{[&] {
    cancel_waiters();
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
    close_observers();
  }};
  v3electionpb::LeaderRequest observe;
  observe.set_name("svc");
  for (int i = 0; i < observers; ++i) {
    auto o = std::make_unique<observing>();
    fake::within(o->ctx, 120s);
    o->reader = s.election->Observe(&o->ctx, observe);
    v3electionpb::LeaderResponse first;
    REQUIRE(o->reader->Read(&first));
    CHECK(first.kv().value() == "first");
    watching.push_back(std::move(o));
  }
  REQUIRE(until_keys("busy/", waiters + 1));
  // 150 calls waiting: a thread each (gRPC's synchronous server) would show here.
  auto during = threads_of(pid);
  CHECK_MESSAGE(during - before < 40, "threads before: " << before << ", with " << waiters << " waiters and "
                                                         << observers << " observers: " << during);

  // Every observer is pushed the leader's new value.
  REQUIRE(s.proclaim(won.leader(), "second").ok());
  for (auto& o : watching) {
    v3electionpb::LeaderResponse next;
    REQUIRE(o->reader->Read(&next));
    CHECK(next.kv().value() == "second");
  }

  // Waiters whose clients give up leave the line: only the holder's key is
  // left (the master is told by gRPC; the client's own answer is CANCELLED
  // whatever the master does).
  cancel_waiters();
  REQUIRE(drained == waiters);
  CHECK(until_keys("busy/", 1));
  close_observers();
  // The lock still works: the next caller gets it once the holder unlocks.
  REQUIRE(s.unlock(held.key()).ok());
  v3lockpb::LockResponse got;
  REQUIRE(s.take("busy", lease, &got).ok());
  CHECK(got.key() == held.key());
}
