// etcd's Lease service: a lease is a registry session. Its keys go when it
// ends; the leader expires it by its TTL with conclave's bounds across a
// leader change (actors/registry/liveness.hpp), and its heartbeats reach
// the leader through whichever master the client talks to, tied to no
// connection.
#include <mutex>

#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

const char* const lease_owner = "etcd lease";

namespace {

// What etcd clients read as a lease's TTL: whole seconds, rounded up.
std::int64_t seconds(std::uint64_t ms) { return static_cast<std::int64_t>((ms + 999) / 1000); }

// Each answer is filled and sent from the backend's reply: the handlers
// return at once and no thread waits (a DefaultReactor keeps the request
// and response until it is finished).
struct lease_service final : etcdserverpb::Lease::CallbackService {
  api& a;
  explicit lease_service(api& x) : a(x) {}

  // Answers `reactor` with this master's revision in `h` (api::local_header),
  // then what `then` returns.
  void with_local_header(grpc::ServerUnaryReactor* reactor, etcdserverpb::ResponseHeader* h,
                         steady::time_point until, std::function<grpc::Status()> then) {
    a.ask_async(registry::revision_query{}, true, until,
                [this, reactor, h, then = std::move(then)](expected<registry::revision_query::result> rev) {
                  if (!rev) return reactor->Finish(status_of(rev.error()));
                  a.header(h, rev->rev, a.b.term());
                  reactor->Finish(filled(then));
                });
  }

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx, const etcdserverpb::LeaseGrantRequest* req,
                                       etcdserverpb::LeaseGrantResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    static const grpc::Status too_large{grpc::StatusCode::OUT_OF_RANGE, "etcdserver: too large lease TTL"};
    if (req->ttl() > 9000000000LL) return answer_now(ctx, too_large);
    if (req->id() < 0) return answer_now(ctx, {grpc::StatusCode::INVALID_ARGUMENT, "conclave: a lease ID is positive"});
    auto ttl = std::max(req->ttl(), min_lease_ttl_s);
    registry::open_session open;
    open.owner = lease_owner;
    open.ttl_ms = static_cast<std::uint64_t>(ttl) * 1000;
    open.id = static_cast<registry::session_id>(req->id());
    auto* reactor = ctx->DefaultReactor();
    auto until = until_of(ctx);
    a.run_async(open, until, [this, reactor, resp, ttl, until](api::ran done) {
      if (!done) return reactor->Finish(status_of(done.error()));
      auto& [o, term] = *done;
      if (o.code == registry::code::exists) return reactor->Finish(lease_exists);
      if (o.code != registry::code::ok) {
        return reactor->Finish({grpc::StatusCode::INVALID_ARGUMENT, "conclave: " + o.detail});
      }
      with_local_header(reactor, resp->mutable_header(), until, [resp, ttl, term = term, id = o.value] {
        resp->mutable_header()->set_raft_term(term);
        resp->set_id(static_cast<std::int64_t>(id));
        resp->set_ttl(ttl);
        return grpc::Status::OK;
      });
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx, const etcdserverpb::LeaseRevokeRequest* req,
                                        etcdserverpb::LeaseRevokeResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    auto* reactor = ctx->DefaultReactor();
    a.run_async(registry::close_session{static_cast<registry::session_id>(req->id()), false}, until_of(ctx),
                [this, reactor, resp](api::ran done) {
                  if (!done) return reactor->Finish(status_of(done.error()));
                  auto& [o, term] = *done;
                  if (o.code == registry::code::no_session) return reactor->Finish(lease_not_found);
                  if (o.code != registry::code::ok) {
                    return reactor->Finish({grpc::StatusCode::INVALID_ARGUMENT, "conclave: " + o.detail});
                  }
                  a.header(resp->mutable_header(), o.value, term);
                  reactor->Finish(grpc::Status::OK);
                });
    return reactor;
  }

  // The LeaseKeepAlive stream: see keepalive_stream.
  grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>* LeaseKeepAlive(
      grpc::CallbackServerContext* ctx) override;

  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const etcdserverpb::LeaseTimeToLiveRequest* req,
                                            etcdserverpb::LeaseTimeToLiveResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    auto* reactor = ctx->DefaultReactor();
    auto until = until_of(ctx);
    a.ask_async(registry::session_query{static_cast<registry::session_id>(req->id()), req->keys()}, false, until,
                [this, reactor, req, resp, until](expected<registry::session_query::result> got) {
                  if (!got) return reactor->Finish(status_of(got.error()));
                  with_local_header(reactor, resp->mutable_header(), until, [req, resp, got = std::move(*got)] {
                    resp->set_id(req->id());
                    if (!got.value) {
                      resp->set_ttl(-1);  // as etcd: an unknown lease has TTL -1
                      return grpc::Status::OK;
                    }
                    // The remaining TTL as of the leader's last checkpoint (at most a second old).
                    resp->set_ttl(seconds(got.value->remaining_ms));
                    resp->set_grantedttl(seconds(got.value->ttl_ms));
                    for (const auto& k : got.keys) resp->add_keys(k);
                    return grpc::Status::OK;
                  });
                });
    return reactor;
  }

  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx, const etcdserverpb::LeaseLeasesRequest*,
                                        etcdserverpb::LeaseLeasesResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    auto* reactor = ctx->DefaultReactor();
    auto until = until_of(ctx);
    a.ask_async(registry::sessions_query{}, false, until,
                [this, reactor, resp, until](expected<registry::sessions_query::result> got) {
                  if (!got) return reactor->Finish(status_of(got.error()));
                  with_local_header(reactor, resp->mutable_header(), until, [resp, got = std::move(*got)] {
                    // The leases etcd clients granted (not members' registrations, which are sessions too).
                    for (const auto& s : got.sessions) {
                      if (s.owner == lease_owner) resp->add_leases()->set_id(static_cast<std::int64_t>(s.id));
                    }
                    return grpc::Status::OK;
                  });
                });
    return reactor;
  }
};

using keepalive_reactor =
    grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>;

// A LeaseKeepAlive stream: each request renews the lease at the leader and
// is answered with its TTL (0: the lease is gone), in order, one at a time
// (read, renew, answer, read the next). It holds no thread: the renewal and
// the reads it needs answer on the backend's threads. Every member is
// guarded by `m`.
struct keepalive_state : std::enable_shared_from_this<keepalive_state> {
  api& a;
  std::mutex m;
  keepalive_reactor* reactor;  // null once gRPC is done with the stream (OnDone)
  etcdserverpb::LeaseKeepAliveRequest req;
  etcdserverpb::LeaseKeepAliveResponse resp;
  bool writing = false;
  bool ending = false;    // no more requests: Finish once no write is in flight
  bool finished = false;  // Finish was called
  grpc::Status status;

  keepalive_state(api& x, keepalive_reactor* r) : a(x), reactor(r) {}

  // Under m: the stream ends with `s` (the first reason given) once no
  // write is in flight; called again, it finishes once the write is done.
  void end(const grpc::Status& s) {
    if (!ending) {
      ending = true;
      status = s;
    }
    if (!writing) finish();
  }
  void finish() {
    if (finished || !reactor) return;
    finished = true;
    reactor->Finish(status);
  }
  void read_next() {
    if (!ending && reactor) reactor->StartRead(&req);
  }
  void fail(const grpc::Status& s) {
    std::lock_guard<std::mutex> guard(m);
    end(s);
  }

  // Whether the stream still wants the next step of a renewal (it may have
  // ended while the step before ran).
  bool wanted() {
    std::lock_guard<std::mutex> guard(m);
    return !ending && reactor;
  }

  // Renews `req`'s lease; then the answer: this master's revision, and the
  // lease's TTL as granted (this master may not have applied the grant yet:
  // then through the leader).
  void renew() {
    auto id = static_cast<registry::session_id>(req.id());
    auto until = steady::now() + std::chrono::seconds(5);
    auto self = shared_from_this();
    a.keepalive_async(id, until, [self, id, until](expected<bool> renewed) {
      if (!renewed) return self->fail(status_of(renewed.error()));
      if (!self->wanted()) return;
      self->a.ask_async(registry::revision_query{}, true, until,
                        [self, id, until, renewed = *renewed](expected<registry::revision_query::result> rev) {
                          if (!rev) return self->fail(status_of(rev.error()));
                          {
                            std::lock_guard<std::mutex> guard(self->m);
                            if (self->ending || !self->reactor) return;
                            self->resp.Clear();
                            self->a.header(self->resp.mutable_header(), rev->rev, self->a.b.term());
                            self->resp.set_id(static_cast<std::int64_t>(id));
                          }
                          if (!renewed) return self->answer();
                          self->ttl(id, until, true);
                        });
    });
  }

  void ttl(registry::session_id id, steady::time_point until, bool serializable) {
    if (!wanted()) return;
    auto self = shared_from_this();
    a.ask_async(registry::session_query{id, false}, serializable, until,
                [self, id, until, serializable](expected<registry::session_query::result> got) {
                  if (got && !got->value && serializable) return self->ttl(id, until, false);
                  if (!got) return self->fail(status_of(got.error()));
                  {
                    std::lock_guard<std::mutex> guard(self->m);
                    self->resp.set_ttl(got->value ? seconds(got->value->ttl_ms) : 0);
                  }
                  self->answer();
                });
  }

  void answer() {
    std::lock_guard<std::mutex> guard(m);
    if (ending || !reactor) return;
    writing = true;
    reactor->StartWrite(&resp);
  }

  void written(bool ok) {
    std::lock_guard<std::mutex> guard(m);
    writing = false;
    if (!ok) return end(grpc::Status::OK);  // the client left
    if (ending) return finish();
    read_next();
  }
};

class keepalive_stream final : public keepalive_reactor {
 public:
  keepalive_stream(api& a, grpc::CallbackServerContext* ctx) : st_(std::make_shared<keepalive_state>(a, this)) {
    std::lock_guard<std::mutex> guard(st_->m);
    if (auto denied = a.authorize(ctx); !denied.ok()) {
      st_->end(denied);
      return;
    }
    st_->read_next();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return st_->fail(grpc::Status::OK);  // the client's last request was answered
    st_->renew();
  }
  void OnWriteDone(bool ok) override { st_->written(ok); }
  void OnCancel() override { st_->fail(grpc::Status::CANCELLED); }
  void OnDone() override {
    {
      std::lock_guard<std::mutex> guard(st_->m);
      st_->ending = true;
      st_->reactor = nullptr;  // a renewal still on its way finds the stream gone
    }
    delete this;
  }

 private:
  std::shared_ptr<keepalive_state> st_;
};

grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest, etcdserverpb::LeaseKeepAliveResponse>*
lease_service::LeaseKeepAlive(grpc::CallbackServerContext* ctx) {
  return new keepalive_stream(a, ctx);
}

}  // namespace

std::unique_ptr<grpc::Service> make_lease_service(api& a) { return std::make_unique<lease_service>(a); }

}  // namespace conclave::etcd::detail
