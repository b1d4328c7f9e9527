// etcd's Lease service: a lease is a registry session. Its keys go when it
// ends; the leader expires it by its TTL with conclave's bounds across a
// leader change (actors/registry/liveness.hpp), and its heartbeats reach
// the leader through whichever master the client talks to, tied to no
// connection.
#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

const char* const lease_owner = "etcd lease";

namespace {

// What etcd clients read as a lease's TTL: whole seconds, rounded up.
std::int64_t seconds(std::uint64_t ms) { return static_cast<std::int64_t>((ms + 999) / 1000); }

struct lease_service final : etcdserverpb::Lease::Service {
  api& a;
  explicit lease_service(api& x) : a(x) {}

  grpc::Status LeaseGrant(grpc::ServerContext* ctx, const etcdserverpb::LeaseGrantRequest* req,
                          etcdserverpb::LeaseGrantResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    static const grpc::Status too_large{grpc::StatusCode::OUT_OF_RANGE, "etcdserver: too large lease TTL"};
    if (req->ttl() > 9000000000LL) return too_large;
    if (req->id() < 0) return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: a lease ID is positive"};
    auto ttl = std::max(req->ttl(), min_lease_ttl_s);
    registry::open_session open;
    open.owner = lease_owner;
    open.ttl_ms = static_cast<std::uint64_t>(ttl) * 1000;
    open.id = static_cast<registry::session_id>(req->id());
    auto done = a.run(open, until_of(ctx));
    if (!done) return status_of(done.error());
    auto& [o, term] = *done;
    if (o.code == registry::code::exists) return lease_exists;
    if (o.code != registry::code::ok) return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: " + o.detail};
    if (auto s = a.local_header(resp->mutable_header(), until_of(ctx)); !s.ok()) return s;
    resp->mutable_header()->set_raft_term(term);
    resp->set_id(static_cast<std::int64_t>(o.value));
    resp->set_ttl(ttl);
    return grpc::Status::OK;
  }

  grpc::Status LeaseRevoke(grpc::ServerContext* ctx, const etcdserverpb::LeaseRevokeRequest* req,
                           etcdserverpb::LeaseRevokeResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto done = a.run(registry::close_session{static_cast<registry::session_id>(req->id()), false}, until_of(ctx));
    if (!done) return status_of(done.error());
    auto& [o, term] = *done;
    if (o.code == registry::code::no_session) return lease_not_found;
    if (o.code != registry::code::ok) return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: " + o.detail};
    a.header(resp->mutable_header(), o.value, term);
    return grpc::Status::OK;
  }

  // Each request renews the lease at the leader and is answered with its TTL
  // (0: the lease is gone), in order.
  grpc::Status LeaseKeepAlive(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<etcdserverpb::LeaseKeepAliveResponse, etcdserverpb::LeaseKeepAliveRequest>* stream)
      override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    etcdserverpb::LeaseKeepAliveRequest req;
    while (stream->Read(&req)) {
      auto until = steady::now() + std::chrono::seconds(5);
      auto id = static_cast<registry::session_id>(req.id());
      auto renewed = a.b.keepalive(id, left(until));
      if (!renewed) return status_of(renewed.error());
      etcdserverpb::LeaseKeepAliveResponse resp;
      if (auto s = a.local_header(resp.mutable_header(), until); !s.ok()) return s;
      resp.set_id(req.id());
      if (*renewed) {
        // The TTL as granted: this master may not have applied the grant yet.
        auto got = a.ask(registry::session_query{id, false}, true, until);
        if (got && !got->value) got = a.ask(registry::session_query{id, false}, false, until);
        if (!got) return status_of(got.error());
        resp.set_ttl(got->value ? seconds(got->value->ttl_ms) : 0);
      }
      if (!stream->Write(resp) || ctx->IsCancelled()) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status LeaseTimeToLive(grpc::ServerContext* ctx, const etcdserverpb::LeaseTimeToLiveRequest* req,
                               etcdserverpb::LeaseTimeToLiveResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto until = until_of(ctx);
    auto got = a.ask(registry::session_query{static_cast<registry::session_id>(req->id()), req->keys()}, false, until);
    if (!got) return status_of(got.error());
    if (auto s = a.local_header(resp->mutable_header(), until); !s.ok()) return s;
    resp->set_id(req->id());
    if (!got->value) {
      resp->set_ttl(-1);  // as etcd: an unknown lease has TTL -1
      return grpc::Status::OK;
    }
    // The remaining TTL as of the leader's last checkpoint (at most a second old).
    resp->set_ttl(seconds(got->value->remaining_ms));
    resp->set_grantedttl(seconds(got->value->ttl_ms));
    for (const auto& k : got->keys) resp->add_keys(k);
    return grpc::Status::OK;
  }

  grpc::Status LeaseLeases(grpc::ServerContext* ctx, const etcdserverpb::LeaseLeasesRequest*,
                           etcdserverpb::LeaseLeasesResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto until = until_of(ctx);
    auto got = a.ask(registry::sessions_query{}, false, until);
    if (!got) return status_of(got.error());
    if (auto s = a.local_header(resp->mutable_header(), until); !s.ok()) return s;
    // The leases etcd clients granted (not members' registrations, which are sessions too).
    for (const auto& s : got->sessions) {
      if (s.owner == lease_owner) resp->add_leases()->set_id(static_cast<std::int64_t>(s.id));
    }
    return grpc::Status::OK;
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_lease_service(api& a) { return std::make_unique<lease_service>(a); }

}  // namespace conclave::etcd::detail
