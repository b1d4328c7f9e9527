// etcd's Lock service (v3lockpb) as etcd 3.4 serves it, with its
// concurrency package's mutex: the caller's key NAME/LEASEHEX joins the
// line, and Lock answers once every key created before it is gone (first
// come, first served), so a lock taken here and one taken by etcdctl's
// `lock` (the same recipe over KV) exclude each other. Unlock deletes the key.
#include "roles/etcd_queue.hpp"
#include "schema/etcd/lock.grpc.pb.h"

namespace conclave::etcd::detail {

namespace {

// etcd 3.5's answer when the caller's key went while it waited (etcd 3.4
// answered as if the lock were held).
const grpc::Status session_expired{grpc::StatusCode::UNKNOWN, "mutex: session is expired"};

struct lock_service final : v3lockpb::Lock::CallbackService {
  api& a;
  explicit lock_service(api& x) : a(x) {}

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx, const v3lockpb::LockRequest* req,
                                 v3lockpb::LockResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    auto [reactor, call] = line_call::start(a, ctx->deadline());
    auto until = until_of(ctx);
    call->join(req->name(), req->lease(), "", until, [this, call = call, name = req->name(), resp](std::int64_t,
                                                                                                  place p) {
      bool first = !last_before(p.keys, p.kv.created);
      // A caller that gives up leaves the line: the key it put, or the one
      // it waits with (as etcd's, which unlocks when the wait fails). A key
      // that holds the lock already (a lease that locked before) stays.
      std::function<void()> leave;
      if (p.created || !first) {
        leave = [this, key = p.key, created = p.kv.created] {
          registry::txn t;
          t.compares = {created_at(key, created)};
          t.success = {remove_op(key)};
          a.run_async(t, steady::now() + std::chrono::seconds(5), [](api::ran) {});
        };
      }
      if (!call->entered(std::move(leave))) return;
      auto granted = [this, key = p.key, resp](registry::revision rev, std::uint64_t term) {
        a.header(resp->mutable_header(), rev, term);
        resp->set_key(key);
        return grpc::Status::OK;
      };
      // First in line: held (also by a lease that held it already: its key is reused).
      if (first) return call->answer([&] { return granted(p.rev, p.term); });
      call->wait(name + "/", p.key, p.kv.created, p.rev, std::move(p.keys),
                 [this, granted](registry::revision rev) { return granted(rev, a.b.term()); }, session_expired);
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx, const v3lockpb::UnlockRequest* req,
                                   v3lockpb::UnlockResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    if (req->key().empty()) return answer_now(ctx, as_passed_on(empty_key));
    auto* reactor = ctx->DefaultReactor();
    remove(req->key(), until_of(ctx), [this, reactor, resp](api::ran done) {
      if (!done) return reactor->Finish(status_of(done.error()));
      a.header(resp->mutable_header(), done->first.value, done->second);
      reactor->Finish(grpc::Status::OK);
    });
    return reactor;
  }

  // Deletes `key` (absent: nothing to do); `done` as api::run_async's.
  void remove(const std::string& key, steady::time_point until, std::function<void(api::ran)> done) {
    registry::txn t;
    t.success = {remove_op(key)};
    a.run_async(t, until, std::move(done));
  }

  static registry::txn_op remove_op(const std::string& key) {
    registry::txn_op del;
    del.kind = registry::op_kind::remove;
    del.range = registry::key_range{key, {}};
    return del;
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_lock_service(api& a) { return std::make_unique<lock_service>(a); }

}  // namespace conclave::etcd::detail
