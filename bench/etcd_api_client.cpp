// The etcd-API rows of conclave-bench: see etcd_api_client.hpp. Every call
// is a gRPC call of etcd's v3 API through stubs generated from the project's
// protos (schema/etcd); nothing here knows which system answers.
#include "bench/etcd_api_client.hpp"

#include <fmt/core.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "bench/closed_loop.hpp"
#include "bench/watch.hpp"
#include "schema/etcd/rpc.grpc.pb.h"
#include "test/processes.hpp"
#include "test/temp_dir.hpp"

namespace conclave::bench {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;
namespace pb = etcdserverpb;

double ms_between(clock_type::time_point from, clock_type::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

double ms_since(clock_type::time_point t) { return ms_between(t, clock_type::now()); }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t from = 0;
  for (auto p = s.find(sep); p != std::string::npos; from = p + 1, p = s.find(sep, from))
    out.push_back(s.substr(from, p - from));
  out.push_back(s.substr(from));
  return out;
}

// The end of the range of keys that start with `prefix` (its last byte below 0xff).
std::string prefix_end(std::string prefix) {
  ++prefix.back();
  return prefix;
}

// ---------------------------------------------------------------------------
// One client: one connection to one server, and the stubs of the services used.

struct api_client {
  explicit api_client(std::string at)
      : endpoint(std::move(at)),
        channel(connect(endpoint)),
        kv(pb::KV::NewStub(channel)),
        lease(pb::Lease::NewStub(channel)),
        watch(pb::Watch::NewStub(channel)),
        maintenance(pb::Maintenance::NewStub(channel)) {}

  // A connection of its own: gRPC would otherwise share one among every
  // channel to the same address, and each client here stands for one.
  static std::shared_ptr<grpc::Channel> connect(const std::string& endpoint) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
  }

  std::string endpoint;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Maintenance::Stub> maintenance;
};

void set_timeout(grpc::ClientContext& ctx, milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

// A put, acknowledged once committed; the store's revision after it.
std::optional<std::int64_t> put(api_client& c, const std::string& key, const std::string& value, milliseconds timeout,
                                std::int64_t lease = 0) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout);
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  pb::PutResponse resp;
  if (!c.kv->Put(&ctx, req, &resp).ok()) return std::nullopt;
  return resp.header().revision();
}

// The value under `key` ("" when there is none).
std::optional<std::string> get_value(api_client& c, const std::string& key, milliseconds timeout) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout);
  pb::RangeRequest req;
  req.set_key(key);
  pb::RangeResponse resp;
  if (!c.kv->Range(&ctx, req, &resp).ok()) return std::nullopt;
  return resp.kvs().empty() ? std::string() : resp.kvs(0).value();
}

bool delete_key(api_client& c, const std::string& key, milliseconds timeout) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout);
  pb::DeleteRangeRequest req;
  req.set_key(key);
  pb::DeleteRangeResponse resp;
  return c.kv->DeleteRange(&ctx, req, &resp).ok();
}

std::optional<pb::StatusResponse> status(api_client& c, milliseconds timeout) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout);
  pb::StatusResponse resp;
  if (!c.maintenance->Status(&ctx, pb::StatusRequest{}, &resp).ok()) return std::nullopt;
  return resp;
}

struct lease_grant {
  std::int64_t id = 0;
  std::int64_t ttl_s = 0;  // as granted: servers raise a TTL below their minimum
};

std::optional<lease_grant> grant(api_client& c, std::int64_t ttl_s, milliseconds timeout) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout);
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_s);
  pb::LeaseGrantResponse resp;
  if (!c.lease->LeaseGrant(&ctx, req, &resp).ok() || !resp.error().empty() || resp.id() == 0) return std::nullopt;
  return lease_grant{resp.id(), resp.ttl()};
}

bool revoke(api_client& c, std::int64_t id, milliseconds timeout) {
  grpc::ClientContext ctx;
  set_timeout(ctx, timeout);
  pb::LeaseRevokeRequest req;
  req.set_id(id);
  pb::LeaseRevokeResponse resp;
  return c.lease->LeaseRevoke(&ctx, req, &resp).ok();
}

// Ends a blocking call from another thread: the call registers its
// context while it waits, cancel() cancels it and every later one.
class canceller {
 public:
  void cancel() {
    std::lock_guard lock(m_);
    cancelled_ = true;
    if (ctx_) ctx_->TryCancel();
  }
  bool cancelled() {
    std::lock_guard lock(m_);
    return cancelled_;
  }
  // False when already cancelled (the call should not start).
  bool enter(grpc::ClientContext* ctx) {
    std::lock_guard lock(m_);
    ctx_ = ctx;
    return !cancelled_;
  }
  void leave() {
    std::lock_guard lock(m_);
    ctx_ = nullptr;
  }

 private:
  std::mutex m_;
  grpc::ClientContext* ctx_ = nullptr;
  bool cancelled_ = false;
};

// Waits on a watch of `key` alone, from revision `from`, until it is deleted
// (true), or the stream fails or is cancelled (false). `on_created` runs once
// the server confirmed the watch.
bool wait_deleted(api_client& c, const std::string& key, std::int64_t from, canceller& cancel,
                  const std::function<void()>& on_created = {}) {
  grpc::ClientContext ctx;
  if (!cancel.enter(&ctx)) return false;
  auto stream = c.watch->Watch(&ctx);
  pb::WatchRequest req;
  req.mutable_create_request()->set_key(key);
  req.mutable_create_request()->set_start_revision(from);
  bool deleted = false;
  if (stream->Write(req)) {
    pb::WatchResponse resp;
    while (!deleted && stream->Read(&resp)) {
      if (resp.created() && on_created) on_created();
      if (resp.canceled()) break;
      for (const auto& e : resp.events())
        if (e.type() == mvccpb::Event::DELETE) deleted = true;
    }
  }
  cancel.leave();
  ctx.TryCancel();
  (void)stream->Finish();
  return deleted;
}

// ---------------------------------------------------------------------------
// etcd's lock recipe (that of clientv3's concurrency.Mutex), written once
// against the KV, Lease and Watch services that both systems serve: the
// holder's key is NAME/LEASE (hex) on its lease; one txn creates it unless
// it exists and reads the lock's first key by create revision. The lock is
// held when that key is ours; otherwise the client watches the key created
// just before its own until it is deleted, and looks again.

struct lock_key {
  std::string key;
  std::int64_t revision = 0;  // its create revision
};

// Blocks until the lock `name` is held on `lease`: its key. `on_waiting`
// runs each time the client is queued (watching the key ahead of its own).
std::optional<lock_key> lock(api_client& c, const std::string& name, std::int64_t lease, canceller& cancel,
                             milliseconds timeout, const std::function<void()>& on_waiting = {}) {
  const std::string prefix = name + "/", end = prefix_end(prefix);
  lock_key mine{prefix + fmt::format("{:x}", lease), 0};
  auto first_by_create = [&](pb::RangeRequest* r) {
    r->set_key(prefix);
    r->set_range_end(end);
    r->set_sort_target(pb::RangeRequest::CREATE);
    r->set_sort_order(pb::RangeRequest::ASCEND);
    r->set_limit(1);
  };
  pb::TxnResponse resp;
  {
    grpc::ClientContext ctx;
    set_timeout(ctx, timeout);
    pb::TxnRequest txn;
    auto* cmp = txn.add_compare();
    cmp->set_key(mine.key);
    cmp->set_target(pb::Compare::CREATE);
    cmp->set_result(pb::Compare::EQUAL);
    cmp->set_create_revision(0);
    auto* p = txn.add_success()->mutable_request_put();
    p->set_key(mine.key);
    p->set_lease(lease);
    first_by_create(txn.add_success()->mutable_request_range());
    txn.add_failure()->mutable_request_range()->set_key(mine.key);
    first_by_create(txn.add_failure()->mutable_request_range());
    if (!c.kv->Txn(&ctx, txn, &resp).ok() || resp.responses_size() != 2) return std::nullopt;
  }
  if (resp.succeeded()) mine.revision = resp.header().revision();
  else if (!resp.responses(0).response_range().kvs().empty())
    mine.revision = resp.responses(0).response_range().kvs(0).create_revision();
  else return std::nullopt;
  const auto& owner = resp.responses(1).response_range().kvs();
  if (owner.empty() || owner[0].create_revision() == mine.revision) return mine;
  // Queued: wait for every key created before ours to go.
  auto until = clock_type::now() + timeout;
  while (clock_type::now() < until && !cancel.cancelled()) {
    grpc::ClientContext ctx;
    set_timeout(ctx, timeout);
    pb::RangeRequest ahead;
    ahead.set_key(prefix);
    ahead.set_range_end(end);
    ahead.set_sort_target(pb::RangeRequest::CREATE);
    ahead.set_sort_order(pb::RangeRequest::DESCEND);
    ahead.set_max_create_revision(mine.revision - 1);
    ahead.set_limit(1);
    pb::RangeResponse r;
    if (!c.kv->Range(&ctx, ahead, &r).ok()) return std::nullopt;
    if (r.kvs().empty()) return mine;
    if (!wait_deleted(c, r.kvs(0).key(), r.header().revision() + 1, cancel, on_waiting)) return std::nullopt;
  }
  return std::nullopt;
}

bool unlock(api_client& c, const lock_key& k, milliseconds timeout) { return delete_key(c, k.key, timeout); }

// ---------------------------------------------------------------------------
// The system: the servers of another row, driven through this client.

// Where the system's servers are, and which one leads.
struct leader_at {
  std::string endpoint;
  pid_t pid = -1;
};

const std::string key_root = "/bench/etcd-api";
const std::string worker_key = key_root + "/worker";
const std::string cycle_lock = key_root + "/lock-cycle";
const std::string handoff_lock = key_root + "/lock-handoff";
constexpr std::int64_t long_ttl_s = 86400;  // outlives any run: no keepalives needed

// One contender of lock-handoff: its own lease, connection and thread.
struct contender {
  explicit contender(const std::string& endpoint) : c(endpoint) {}
  api_client c;
  std::int64_t lease = 0;
  std::thread waiter;  // its blocking lock call
  canceller cancel;
  std::mutex m;
  std::condition_variable cv;
  std::optional<lock_key> key;  // while it holds the lock
  bool waiting = false, failed = false;
  clock_type::time_point queued, acquired;
};

class etcd_api_system final : public system_under_test {
 public:
  explicit etcd_api_system(etcd_api_target t) : target_(std::move(t)) {
    auto lead = leader(20s);
    if (!lead) throw std::runtime_error(target_.name + ": no server names a leader through the etcd API within 20 s");
    auto& c = ctl(lead->endpoint);
    // The smallest TTL the servers grant: ask for 1 s and read back what they made of it.
    auto probe = grant(c, 1, 5s);
    auto cycle = grant(c, long_ttl_s, 5s);
    if (!probe || !cycle) throw std::runtime_error(target_.name + ": LeaseGrant failed");
    revoke(c, probe->id, 5s);
    lease_ttl_s_ = probe->ttl_s;
    cycle_lease_ = cycle->id;
    auto s = status(c, 5s);
    version_ = s ? s->version() : "?";
  }

  ~etcd_api_system() override {
    test::kill_pid(holder_pid_);
    for (auto pid : watcher_pids_) test::kill_pid(pid);
    drop_contenders(nullptr);
  }

  std::string name() const override { return target_.name; }
  std::string client() const override { return "etcd API"; }

  std::string description() const override {
    return fmt::format(
        "{} (answering as etcd {}), driven through etcd's v3 gRPC API by conclave-bench's etcd-API client "
        "(bench/etcd_api_client.cpp, stubs from schema/etcd): one gRPC connection per client, requests to the leader; "
        "locks with clientv3's recipe (a key on the holder's lease, a txn, a watch on the key ahead); lease-owner "
        "crash with a lease of {} s (the smallest granted) kept alive on a LeaseKeepAlive stream",
        target_.servers, version_, lease_ttl_s_);
  }

  bool supports(const std::string& scenario) const override {
    return scenario == "worker-crash" || scenario == "lock-cycle" || scenario == "lock-handoff" || scenario == "write";
  }

  std::optional<double> trial(const std::string& scenario) override {
    if (scenario == "worker-crash") return lease_owner_crash();
    if (scenario == "lock-cycle") return lock_cycle();
    if (scenario == "lock-handoff") return lock_handoff();
    if (scenario == "write") return one_write();
    return std::nullopt;
  }

  throughput writes(int clients, double seconds) override;
  std::optional<watch_result> watch(const watch_plan& plan) override;

  std::vector<pid_t> server_pids() const override {
    std::vector<pid_t> pids;
    for (const auto& s : target_.current()) pids.push_back(s.pid);
    return pids;
  }

 private:
  // A long-lived client for the thread that runs trials, per endpoint.
  api_client& ctl(const std::string& endpoint) {
    auto& c = ctl_[endpoint];
    if (!c) c = std::make_unique<api_client>(endpoint);
    return *c;
  }

  // The server that says it leads (its member id is the leader it names).
  std::optional<leader_at> leader(milliseconds timeout = 5s) {
    auto until = clock_type::now() + timeout;
    while (clock_type::now() < until && !stop_requested) {
      for (const auto& s : target_.current()) {
        auto st = status(ctl(s.endpoint), 500ms);
        if (st && st->leader() != 0 && st->leader() == st->header().member_id()) return leader_at{s.endpoint, s.pid};
      }
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

  // Endpoints for a child, comma-separated, the leader's first.
  std::string endpoints_leader_first(const leader_at& lead) const {
    std::string out = lead.endpoint;
    for (const auto& s : target_.current())
      if (s.endpoint != lead.endpoint) out += "," + s.endpoint;
    return out;
  }

  std::optional<double> one_write() {
    auto lead = leader();
    if (!lead) return std::nullopt;
    auto start = clock_type::now();
    if (!put(ctl(lead->endpoint), key_root + "/write", std::string(100, 'w'), 5s)) return std::nullopt;
    return ms_since(start);
  }

  // Uncontended: lock and unlock of one lock on a lease granted beforehand.
  std::optional<double> lock_cycle() {
    auto lead = leader();
    if (!lead) return std::nullopt;
    auto& c = ctl(lead->endpoint);
    canceller never;
    auto start = clock_type::now();
    auto k = lock(c, cycle_lock, cycle_lease_, never, 5s);
    if (!k || !unlock(c, *k, 5s)) return std::nullopt;
    return ms_since(start);
  }

  // Four contenders queue on one lock (by the create revision of their
  // keys). From the start of the holder's unlock until the next contender's
  // lock call returns; the released holder then queues again.
  std::optional<double> lock_handoff() {
    auto lead = leader();
    if (!lead) return std::nullopt;
    if (!ensure_contenders(lead->endpoint)) return std::nullopt;
    auto& holder = *contenders_[0];
    auto& next = *contenders_[1];
    // As for etcd's native row: measure the hand-off to a contender settled
    // in the queue (etcd moves a new watch to its synced set within 100 ms).
    std::this_thread::sleep_until(next.queued + 300ms);
    lock_key held;
    {
      std::lock_guard g(holder.m);
      held = holder.key.value_or(lock_key{});
    }
    auto start = clock_type::now();
    if (!unlock(holder.c, held, 5s) || !await(next, 10s, [&] { return next.key.has_value(); })) {
      contenders_broken_ = true;
      return std::nullopt;
    }
    auto result = ms_between(start, next.acquired);
    if (!queue(holder, contenders_.size())) contenders_broken_ = true;
    std::rotate(contenders_.begin(), contenders_.begin() + 1, contenders_.end());
    return result;
  }

  // The four contenders, the first holding the lock and the others queued
  // behind it in order, all on the leader; rebuilt when anything went wrong
  // or the leader moved.
  bool ensure_contenders(const std::string& endpoint) {
    if (!contenders_.empty() && !contenders_broken_ && contenders_[0]->c.endpoint == endpoint) return true;
    drop_contenders(&ctl(endpoint));
    contenders_broken_ = true;
    for (int i = 0; i < 4; ++i) {
      auto c = std::make_unique<contender>(endpoint);
      auto l = grant(c->c, long_ttl_s, 5s);
      if (!l) return false;
      c->lease = l->id;
      contenders_.push_back(std::move(c));
    }
    for (std::size_t i = 0; i < contenders_.size(); ++i)
      if (!queue(*contenders_[i], i + 1)) return false;
    contenders_broken_ = false;
    return true;
  }

  // Starts `c`'s blocking lock call and waits until it holds the lock
  // (position 1) or is queued watching the key ahead (after the others).
  bool queue(contender& c, std::size_t position) {
    if (c.waiter.joinable()) c.waiter.join();
    {
      std::lock_guard g(c.m);
      c.key.reset();
      c.waiting = c.failed = false;
    }
    c.waiter = std::thread([&c] {
      auto k = lock(c.c, handoff_lock, c.lease, c.cancel, 600s, [&c] {
        std::lock_guard g(c.m);
        c.waiting = true;
        c.cv.notify_all();
      });
      auto now = clock_type::now();
      std::lock_guard g(c.m);
      c.key = k;
      c.acquired = now;
      c.failed = !k;
      c.cv.notify_all();
    });
    bool ok = await(c, 5s, [&] { return position == 1 ? c.key.has_value() : c.waiting; });
    c.queued = clock_type::now();
    return ok;
  }

  template <class Pred>
  static bool await(contender& c, milliseconds timeout, Pred pred) {
    std::unique_lock lock(c.m);
    return c.cv.wait_for(lock, timeout, [&] { return pred() || c.failed; }) && !c.failed;
  }

  // Ends the contenders: revoking their leases (through `via`, if given)
  // deletes their keys, and cancelling ends their lock calls.
  void drop_contenders(api_client* via) {
    for (auto& c : contenders_) {
      c->cancel.cancel();
      if (via) revoke(*via, c->lease, 2s);
    }
    for (auto& c : contenders_)
      if (c->waiter.joinable()) c->waiter.join();
    contenders_.clear();
  }

  // From kill -9 of a lease holder until a watcher on every server saw its
  // key deleted: the lease expires by its TTL at the leader, unrenewed.
  std::optional<double> lease_owner_crash() {
    auto lead = leader();
    if (!lead) return std::nullopt;
    auto token = fmt::format("holder-{}", ++holders_started_);
    holder_pid_ = test::fork_exec({target_.self_exe, "--etcd-api-holder", endpoints_leader_first(*lead), worker_key,
                                   token, std::to_string(lease_ttl_s_)},
                                  dir_ / "holder.log");
    auto result = watch_holder_death(*lead, token);
    test::kill_pid(holder_pid_);
    holder_pid_ = -1;
    return result;
  }

  std::optional<double> watch_holder_death(const leader_at& lead, const std::string& token) {
    auto until = clock_type::now() + 10s;
    while (get_value(ctl(lead.endpoint), worker_key, 1s) != token) {
      if (clock_type::now() > until || stop_requested) return std::nullopt;
      std::this_thread::sleep_for(10ms);
    }
    auto servers = target_.current();
    struct board {
      std::mutex m;
      std::condition_variable cv;
      std::size_t created = 0;
      std::vector<std::optional<clock_type::time_point>> deleted;
    } b;
    b.deleted.resize(servers.size());
    std::vector<std::unique_ptr<canceller>> cancels;
    std::vector<std::thread> watchers;
    // The key is there now; a watch from the next revision sees its deletion.
    auto from = put(ctl(lead.endpoint), key_root + "/mark", "m", 5s);
    if (!from) return std::nullopt;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      cancels.push_back(std::make_unique<canceller>());
      watchers.emplace_back([&, i, endpoint = servers[i].endpoint, cancel = cancels.back().get()] {
        api_client c(endpoint);
        bool deleted = wait_deleted(c, worker_key, *from + 1, *cancel, [&] {
          std::lock_guard g(b.m);
          ++b.created;
          b.cv.notify_all();
        });
        auto now = clock_type::now();
        std::lock_guard g(b.m);
        if (deleted) b.deleted[i] = now;
        b.cv.notify_all();
      });
    }
    std::optional<double> result;
    std::unique_lock lock(b.m);
    if (b.cv.wait_for(lock, 5s, [&] { return b.created == servers.size(); })) {
      lock.unlock();
      std::this_thread::sleep_for(300ms);
      auto start = clock_type::now();
      ::kill(holder_pid_, SIGKILL);
      lock.lock();
      auto all_seen = [&] {
        return std::all_of(b.deleted.begin(), b.deleted.end(), [](auto& t) { return t.has_value(); });
      };
      if (b.cv.wait_for(lock, 10s + std::chrono::seconds(lease_ttl_s_), all_seen))
        result = ms_between(start, **std::max_element(b.deleted.begin(), b.deleted.end()));
    }
    lock.unlock();
    for (auto& c : cancels) c->cancel();
    for (auto& w : watchers) w.join();
    return result;
  }

  etcd_api_target target_;
  test::temp_dir dir_;
  std::map<std::string, std::unique_ptr<api_client>> ctl_;
  std::string version_;
  std::int64_t lease_ttl_s_ = 0;
  std::int64_t cycle_lease_ = 0;
  pid_t holder_pid_ = -1;
  int holders_started_ = 0;
  std::vector<pid_t> watcher_pids_;
  std::vector<std::unique_ptr<contender>> contenders_;
  bool contenders_broken_ = false;
};

// Closed loop: each client (a connection of its own to the leader) sends
// its next put when the previous one was acknowledged; only puts
// acknowledged within the window count.
throughput etcd_api_system::writes(int clients, double seconds) {
  auto lead = leader();
  if (!lead) return throughput{clients, 0, {}, 0};
  const std::string value(100, 'v');
  return closed_loop(
      clients, seconds,
      [&](int who) {
        auto c = std::make_unique<api_client>(lead->endpoint);
        put(*c, fmt::format("{}/load/{}/warmup", key_root, who), value, 2s);  // opens the connection
        return c;
      },
      [&](std::unique_ptr<api_client>& c, int who, std::size_t n) {
        return put(*c, fmt::format("{}/load/{}/{}", key_root, who, n % 64), value, 2s).has_value();
      });
}

// The watch scenario: watcher children (two per server), each with all its
// watches on one Watch stream of one connection; the writes go to the leader.
std::optional<watch_result> etcd_api_system::watch(const watch_plan& plan) {
  const std::string prefix = key_root + "/watch/", key = prefix + "k";
  auto lead = leader();
  if (!lead) return std::nullopt;
  auto base = put(ctl(lead->endpoint), key, "base", 5s);
  if (!base) return std::nullopt;
  auto servers = target_.current();
  const int processes = 2 * static_cast<int>(servers.size());
  std::vector<pid_t> server_pids;
  for (const auto& s : servers) server_pids.push_back(s.pid);
  auto start = [&] {
    watcher_children children;
    for (int p = 0; p < processes; ++p) {
      children.outs.push_back(dir_ / fmt::format("watchers-{}.out", p));
      std::remove(children.outs.back().c_str());
      watcher_pids_.push_back(test::fork_exec(
          {target_.self_exe, "--etcd-api-watchers", servers[static_cast<std::size_t>(p) % servers.size()].endpoint,
           prefix, std::to_string(*base), std::to_string(watchers_in(p, processes, plan.watchers)),
           std::to_string(plan.writes + 1), children.outs.back()},
          dir_ / fmt::format("watchers-{}.log", p)));
    }
    children.pids = watcher_pids_;
    return children;
  };
  auto r = run_watch(plan, lead->pid, server_pids, start, [&](int k) {
    return put(ctl(lead->endpoint), key, std::to_string(k), 5s).has_value();
  });
  r.hosting = fmt::format(
      "{} watcher processes (process p on server p mod {}), each one gRPC connection with its ~{} watches on one "
      "Watch stream (as clientv3 multiplexes them), the etcd-API client; writes to the leader",
      processes, servers.size(), plan.watchers / processes);
  // They end by themselves once every write arrived; 10 s for all of them.
  auto until = clock_type::now() + 10s;
  for (auto pid : watcher_pids_) {
    auto left = std::chrono::duration_cast<milliseconds>(until - clock_type::now());
    if (!test::wait_pid(pid, std::max(left, milliseconds(1)))) test::kill_pid(pid);
  }
  watcher_pids_.clear();
  return r;
}

// `--etcd-api-holder`: see etcd_api_client.hpp. Moves on to the next
// endpoint when a call fails (a client with several endpoints).
int hold_lease(const std::vector<std::string>& endpoints, const std::string& key, const std::string& value,
               std::int64_t ttl_s) {
  const pid_t parent = ::getppid();
  std::size_t at = 0;
  std::optional<lease_grant> l;
  for (auto until = clock_type::now() + 10s; !l; at = (at + 1) % endpoints.size()) {
    api_client c(endpoints[at]);
    if ((l = grant(c, ttl_s, 2s)) && put(c, key, value, 2s, l->id)) break;
    l.reset();
    if (clock_type::now() > until) return 1;
    std::this_thread::sleep_for(100ms);
  }
  const auto period = milliseconds(l->ttl_s * 1000 / 3);
  while (::getppid() == parent) {
    api_client c(endpoints[at]);
    grpc::ClientContext ctx;
    auto stream = c.lease->LeaseKeepAlive(&ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(l->id);
    pb::LeaseKeepAliveResponse resp;
    for (auto next = clock_type::now(); ::getppid() == parent; next += period) {
      std::this_thread::sleep_until(next);
      if (!stream->Write(req) || !stream->Read(&resp)) break;
      if (resp.ttl() <= 0) {
        fmt::print(stderr, "etcd-API holder: lease {:x} is gone\n", l->id);
        return 1;
      }
    }
    ctx.TryCancel();
    at = (at + 1) % endpoints.size();
  }
  return 1;
}

// `--etcd-api-watchers`: see etcd_api_client.hpp. The creates go out from
// one thread while this one reads; the k-th watch the server confirms is
// watcher k (a stream answers its creates in order).
int watch_many(const std::string& endpoint, const std::string& prefix, std::int64_t after, int count, int writes,
               const std::string& out) {
  watch_recorder recorder(count, writes, out);
  api_client c(endpoint);
  grpc::ClientContext ctx;
  auto stream = c.watch->Watch(&ctx);
  std::thread creates([&] {
    pb::WatchRequest req;
    auto* cr = req.mutable_create_request();
    cr->set_key(prefix);
    cr->set_range_end(prefix_end(prefix));
    cr->set_start_revision(after + 1);
    for (int w = 0; w < count; ++w)
      if (!stream->Write(req)) return;
  });
  std::map<std::int64_t, int> watcher_of;  // watch id -> watcher
  pb::WatchResponse resp;
  int rc = 0;
  while (!recorder.complete()) {
    if (!stream->Read(&resp)) {
      fmt::print(stderr, "etcd-API watchers: the watch stream ended\n");
      rc = 1;
      break;
    }
    if (resp.created()) {
      auto w = static_cast<int>(watcher_of.size());
      watcher_of[resp.watch_id()] = w;
      if (w + 1 == count) recorder.watching();
    }
    if (resp.canceled()) {
      fmt::print(stderr, "etcd-API watchers: watch {} cancelled: {}\n", resp.watch_id(), resp.cancel_reason());
      rc = 1;
      break;
    }
    auto w = watcher_of.find(resp.watch_id());
    if (w == watcher_of.end()) continue;
    for (const auto& e : resp.events()) recorder.delivered(w->second, e.kv().value());
  }
  ctx.TryCancel();
  creates.join();
  return rc;
}

}  // namespace

std::string etcd_api_name(const std::string& native) {
  if (!native.empty() && native.back() == ')') return native.substr(0, native.size() - 1) + ", etcd API)";
  return native + " (etcd API)";
}

std::unique_ptr<system_under_test> make_etcd_api(etcd_api_target target) {
  return std::make_unique<etcd_api_system>(std::move(target));
}

int etcd_api_holder_main(int argc, char** argv) {
  if (argc != 5) {
    fmt::print(stderr, "usage: --etcd-api-holder ENDPOINTS KEY VALUE TTL\n");
    return 2;
  }
  return hold_lease(split(argv[1], ','), argv[2], argv[3], std::atoll(argv[4]));
}

int etcd_api_watchers_main(int argc, char** argv) {
  if (argc != 7) {
    fmt::print(stderr, "usage: --etcd-api-watchers ENDPOINT PREFIX AFTER COUNT WRITES OUT\n");
    return 2;
  }
  return watch_many(argv[1], argv[2], std::atoll(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]), argv[6]);
}

}  // namespace conclave::bench
