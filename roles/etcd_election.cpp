// etcd's Election service (v3electionpb) as etcd 3.4 serves it, with its
// concurrency package's election: a candidate's key NAME/LEASEHEX holds its
// value, the key created first leads, and Campaign answers once every key
// created before the candidate's is gone. Candidates campaigning here and
// through etcdctl's `elect` (the same recipe over KV) share one line.
#include "roles/etcd_queue.hpp"
#include "schema/etcd/election.grpc.pb.h"

namespace conclave::etcd::detail {

namespace {

// etcd's election errors, as its server passes them on (code UNKNOWN).
const grpc::Status not_leader{grpc::StatusCode::UNKNOWN, "election: not leader"};
const grpc::Status no_leader{grpc::StatusCode::UNKNOWN, "election: no leader"};
const grpc::Status missing_leader_key{grpc::StatusCode::UNKNOWN, "\"leader\" field must be provided"};

struct election_service final : v3electionpb::Election::Service {
  api& a;
  explicit election_service(api& x) : a(x) {}

  grpc::Status Campaign(grpc::ServerContext* ctx, const v3electionpb::CampaignRequest* req,
                        v3electionpb::CampaignResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto lease = lease_or_new(a, req->lease(), until_of(ctx));
    if (!lease) return status_of(lease.error());
    place p;
    if (auto s = claim(a, req->name(), *lease, req->value(), until_of(ctx), p); !s.ok()) return s;
    auto rev = p.kv.created;
    // A candidate campaigning again with another value proclaims it first.
    if (!p.created && p.kv.value != req->value()) {
      written w;
      auto s = proclaim(p.key, rev, *lease, req->value(), until_of(ctx), w);
      if (!s.ok()) {
        (void)resign(p.key, rev, until_of(ctx));  // best effort, as etcd's
        return s;
      }
    }
    bool lost = false;
    if (last_before(p.keys, rev)) {
      key_queue line(a, req->name() + "/", p.rev, std::move(p.keys));
      auto s = line.wait_turn(ctx, ctx->deadline(), p.key, rev, lost);
      if (!s.ok()) {
        // As etcd's: a candidate that gives up resigns (if that fails, its
        // lease's end removes the key).
        (void)resign(p.key, rev, steady::now() + std::chrono::seconds(5));
        return s;
      }
    }
    // etcd 3.4 answered as elected; the key is gone, so it is not.
    if (lost) return not_leader;
    // As etcd's: the header of the campaign's first write.
    a.header(resp->mutable_header(), p.rev, p.term);
    auto* leader = resp->mutable_leader();
    leader->set_name(req->name());
    leader->set_key(p.key);
    leader->set_rev(static_cast<std::int64_t>(rev));
    leader->set_lease(*lease);
    return grpc::Status::OK;
  }

  grpc::Status Proclaim(grpc::ServerContext* ctx, const v3electionpb::ProclaimRequest* req,
                        v3electionpb::ProclaimResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    if (!req->has_leader()) return missing_leader_key;
    const auto& l = req->leader();
    auto lease = lease_or_new(a, l.lease(), until_of(ctx));
    if (!lease) return status_of(lease.error());
    written w;
    auto s = proclaim(l.key(), static_cast<registry::revision>(l.rev()), *lease, req->value(), until_of(ctx), w);
    if (!s.ok()) return s;
    a.header(resp->mutable_header(), w.rev, w.term);
    return grpc::Status::OK;
  }

  grpc::Status Leader(grpc::ServerContext* ctx, const v3electionpb::LeaderRequest* req,
                      v3electionpb::LeaderResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto got = a.ask(registry::range_query{prefix_range(req->name() + "/"), 0}, false, until_of(ctx));
    if (!got) return status_of(got.error());
    keys_map keys(got->keys.begin(), got->keys.end());
    const auto* first = first_created(keys);
    if (!first) return no_leader;
    a.header(resp->mutable_header(), got->rev, a.b.term());
    fill(resp->mutable_kv(), first->first, first->second);
    return grpc::Status::OK;
  }

  // The leader as it changes: the key created first and each new value it
  // puts, each once, in order, until the client goes.
  grpc::Status Observe(grpc::ServerContext* ctx, const v3electionpb::LeaderRequest* req,
                       grpc::ServerWriter<v3electionpb::LeaderResponse>* writer) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    auto got = a.ask(registry::range_query{prefix_range(req->name() + "/"), 0}, false, until_of(ctx));
    if (!got) return status_of(got.error());
    key_queue line(a, req->name() + "/", got->rev, keys_map(got->keys.begin(), got->keys.end()));
    std::optional<std::pair<std::string, registry::revision>> sent;  // the leader's key and mod revision
    for (;;) {
      if (const auto* first = first_created(line.keys())) {
        std::pair<std::string, registry::revision> now{first->first, first->second.modified};
        if (now != sent) {
          v3electionpb::LeaderResponse r;
          a.header(r.mutable_header(), line.rev(), a.b.term());
          fill(r.mutable_kv(), first->first, first->second);
          if (!writer->Write(r)) return grpc::Status::OK;
          sent = std::move(now);
        }
      }
      if (auto s = line.advance(ctx, ctx->deadline()); !s.ok()) return s;
    }
  }

  grpc::Status Resign(grpc::ServerContext* ctx, const v3electionpb::ResignRequest* req,
                      v3electionpb::ResignResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
    if (!req->has_leader()) return missing_leader_key;
    const auto& l = req->leader();
    // As etcd's: a key that is not the leader's any more is left alone, and
    // that is no error.
    auto done = resign(l.key(), static_cast<registry::revision>(l.rev()), until_of(ctx));
    if (!done) return status_of(done.error());
    a.header(resp->mutable_header(), done->first.value, done->second);
    return grpc::Status::OK;
  }

  // The revision of a write and the term it committed in.
  struct written {
    registry::revision rev = 0;
    std::uint64_t term = 0;
  };

  // Puts `value` on `key` if it is still the one created at `rev`; etcd's
  // "not leader" otherwise.
  grpc::Status proclaim(const std::string& key, registry::revision rev, std::int64_t lease, const std::string& value,
                        steady::time_point until, written& out) {
    registry::txn t;
    t.compares = {created_at(key, rev)};
    registry::txn_op put;
    put.kind = registry::op_kind::put;
    put.range = registry::key_range{key, {}};
    put.value = value;
    put.session = static_cast<registry::session_id>(lease);
    t.success = {put};
    auto done = a.run(t, until);
    if (!done) return status_of(done.error());
    auto& [o, term] = *done;
    if (o.code == registry::code::no_session) return as_passed_on(lease_not_found);
    if (o.code != registry::code::ok) {
      return {grpc::StatusCode::UNKNOWN, std::string("conclave: ") + registry::to_string(o.code) + ": " + o.detail};
    }
    if (!o.succeeded) return not_leader;
    out = written{o.value, term};
    return grpc::Status::OK;
  }

  // Deletes `key` if it is still the one created at `rev`.
  expected<std::pair<registry::outcome, std::uint64_t>> resign(const std::string& key, registry::revision rev,
                                                               steady::time_point until) {
    registry::txn t;
    t.compares = {created_at(key, rev)};
    registry::txn_op del;
    del.kind = registry::op_kind::remove;
    del.range = registry::key_range{key, {}};
    t.success = {del};
    return a.run(t, until);
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_election_service(api& a) { return std::make_unique<election_service>(a); }

}  // namespace conclave::etcd::detail
