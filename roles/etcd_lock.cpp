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

struct lock_service final : v3lockpb::Lock::Service {
  api& a;
  explicit lock_service(api& x) : a(x) {}

  grpc::Status Lock(grpc::ServerContext* ctx, const v3lockpb::LockRequest* req, v3lockpb::LockResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto lease = lease_or_new(a, req->lease(), until_of(ctx));
    if (!lease) return status_of(lease.error());
    place p;
    if (auto s = claim(a, req->name(), *lease, "", until_of(ctx), p); !s.ok()) return s;
    // First in line: held (also by a lease that held it already: its key is reused).
    if (!last_before(p.keys, p.kv.created)) {
      a.header(resp->mutable_header(), p.rev, p.term);
      resp->set_key(p.key);
      return grpc::Status::OK;
    }
    key_queue line(a, req->name() + "/", p.rev, std::move(p.keys));
    bool lost = false;
    auto s = line.wait_turn(ctx, ctx->deadline(), p.key, p.kv.created, lost);
    if (!s.ok()) {
      // As etcd's: a caller that gives up leaves the line (if that fails,
      // its lease's end removes the key).
      (void)remove(p.key, steady::now() + std::chrono::seconds(5));
      return s;
    }
    if (lost) return session_expired;
    a.header(resp->mutable_header(), line.rev(), a.b.term());
    resp->set_key(p.key);
    return grpc::Status::OK;
  }

  grpc::Status Unlock(grpc::ServerContext* ctx, const v3lockpb::UnlockRequest* req,
                      v3lockpb::UnlockResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    if (req->key().empty()) return as_passed_on(empty_key);
    auto done = remove(req->key(), until_of(ctx));
    if (!done) return status_of(done.error());
    a.header(resp->mutable_header(), done->first.value, done->second);
    return grpc::Status::OK;
  }

  // Deletes `key` (absent: nothing to do).
  expected<std::pair<registry::outcome, std::uint64_t>> remove(const std::string& key, steady::time_point until) {
    registry::txn t;
    registry::txn_op del;
    del.kind = registry::op_kind::remove;
    del.range = registry::key_range{key, {}};
    t.success = {del};
    return a.run(t, until);
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_lock_service(api& a) { return std::make_unique<lock_service>(a); }

}  // namespace conclave::etcd::detail
