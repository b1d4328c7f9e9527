// etcd's KV service over the registry's keys: Range (at any revision the
// history keeps), and Put, DeleteRange and Txn as one registry transaction
// each (atomic, one new revision), Compact as the registry's compaction.
#include <algorithm>

#include "roles/etcd_service.hpp"

namespace conclave::etcd::detail {

namespace {

using keys = std::vector<std::pair<std::string, registry::key_value>>;
using req_t = etcdserverpb::RangeRequest;

// A Range's answer from the keys of its range: count (before filters and
// limit, as etcd), revision filters, sort, limit and `more`, keys or count only.
void answer_range(const req_t& req, keys ks, etcdserverpb::RangeResponse* resp) {
  resp->set_count(static_cast<std::int64_t>(ks.size()));
  if (req.count_only()) return;
  auto in_bounds = [&](const registry::key_value& kv) {
    auto mod = static_cast<std::int64_t>(kv.modified), created = static_cast<std::int64_t>(kv.created);
    return (req.min_mod_revision() == 0 || mod >= req.min_mod_revision()) &&
           (req.max_mod_revision() == 0 || mod <= req.max_mod_revision()) &&
           (req.min_create_revision() == 0 || created >= req.min_create_revision()) &&
           (req.max_create_revision() == 0 || created <= req.max_create_revision());
  };
  ks.erase(std::remove_if(ks.begin(), ks.end(), [&](const auto& kv) { return !in_bounds(kv.second); }), ks.end());
  // Keys come in key order; another target without an order sorts ascending (as etcd).
  auto order = req.sort_order();
  if (order == req_t::NONE && req.sort_target() != req_t::KEY) order = req_t::ASCEND;
  if (order != req_t::NONE) {
    auto target = req.sort_target();
    auto less = [target](const auto& a, const auto& b) {
      switch (target) {
        case req_t::VERSION: return a.second.version < b.second.version;
        case req_t::CREATE: return a.second.created < b.second.created;
        case req_t::MOD: return a.second.modified < b.second.modified;
        case req_t::VALUE: return a.second.value < b.second.value;
        default: return a.first < b.first;
      }
    };
    if (order == req_t::DESCEND) {
      std::stable_sort(ks.begin(), ks.end(), [&](const auto& a, const auto& b) { return less(b, a); });
    } else {
      std::stable_sort(ks.begin(), ks.end(), less);
    }
  }
  std::size_t n = ks.size();
  if (req.limit() > 0 && n > static_cast<std::size_t>(req.limit())) {
    n = static_cast<std::size_t>(req.limit());
    resp->set_more(true);
  }
  for (std::size_t i = 0; i < n; ++i) fill(resp->add_kvs(), ks[i].first, ks[i].second, !req.keys_only());
}

registry::txn_op put_op(const etcdserverpb::PutRequest& p) {
  registry::txn_op op;
  op.kind = registry::op_kind::put;
  op.range = registry::key_range{p.key(), {}};
  op.value = p.value();
  op.session = static_cast<registry::session_id>(p.lease());
  op.ignore_value = p.ignore_value();
  op.ignore_session = p.ignore_lease();
  return op;
}

registry::txn_op remove_op(const etcdserverpb::DeleteRangeRequest& d) {
  registry::txn_op op;
  op.kind = registry::op_kind::remove;
  op.range = registry::key_range{d.key(), d.range_end()};
  return op;
}

registry::txn_op range_op(const req_t& r) {
  registry::txn_op op;
  op.kind = registry::op_kind::range;
  op.range = registry::key_range{r.key(), r.range_end()};
  return op;
}

// etcd's checks of a put before it is proposed.
grpc::Status check_put(const etcdserverpb::PutRequest& p) {
  static const grpc::Status value_provided{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: value is provided"};
  static const grpc::Status lease_provided{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: lease is provided"};
  if (p.key().empty()) return empty_key;
  if (p.ignore_value() && !p.value().empty()) return value_provided;
  if (p.ignore_lease() && p.lease() != 0) return lease_provided;
  return grpc::Status::OK;
}

// A registry refusal of a KV write as etcd words it.
grpc::Status refused(const registry::outcome& o) {
  switch (o.code) {
    case registry::code::no_session: return lease_not_found;
    case registry::code::not_found: return key_not_found;
    case registry::code::invalid: return duplicate_key;  // (empty keys are refused before)
    default:
      return {grpc::StatusCode::FAILED_PRECONDITION,
              std::string("conclave: ") + registry::to_string(o.code) + ": " + o.detail};
  }
}

// Turns a Txn request into the registry's transaction; etcd's refusals of
// malformed ones.
grpc::Status txn_of(const etcdserverpb::TxnRequest& req, registry::txn& t) {
  for (const auto& c : req.compare()) {
    if (c.key().empty()) return empty_key;
    registry::compare x;
    x.range = registry::key_range{c.key(), c.range_end()};
    using C = etcdserverpb::Compare;
    switch (c.target()) {
      case C::VERSION: x.target = registry::compare_target::version; x.number = static_cast<std::uint64_t>(c.version()); break;
      case C::CREATE: x.target = registry::compare_target::created; x.number = static_cast<std::uint64_t>(c.create_revision()); break;
      case C::MOD: x.target = registry::compare_target::modified; x.number = static_cast<std::uint64_t>(c.mod_revision()); break;
      case C::VALUE: x.target = registry::compare_target::value; x.value = c.value(); break;
      case C::LEASE: x.target = registry::compare_target::session; x.number = static_cast<std::uint64_t>(c.lease()); break;
      default: return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: unknown comparison target"};
    }
    switch (c.result()) {
      case C::EQUAL: x.op = registry::compare_op::equal; break;
      case C::GREATER: x.op = registry::compare_op::greater; break;
      case C::LESS: x.op = registry::compare_op::less; break;
      case C::NOT_EQUAL: x.op = registry::compare_op::not_equal; break;
      default: return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: unknown comparison"};
    }
    t.compares.push_back(std::move(x));
  }
  auto ops_of = [](const auto& list, std::vector<registry::txn_op>& out) -> grpc::Status {
    for (const auto& op : list) {
      switch (op.request_case()) {
        case etcdserverpb::RequestOp::kRequestRange:
          if (op.request_range().key().empty()) return empty_key;
          if (op.request_range().revision() > 0) {
            return {grpc::StatusCode::UNIMPLEMENTED, "conclave: a range at a past revision inside a txn"};
          }
          out.push_back(range_op(op.request_range()));
          break;
        case etcdserverpb::RequestOp::kRequestPut:
          if (auto s = check_put(op.request_put()); !s.ok()) return s;
          out.push_back(put_op(op.request_put()));
          break;
        case etcdserverpb::RequestOp::kRequestDeleteRange:
          if (op.request_delete_range().key().empty()) return empty_key;
          out.push_back(remove_op(op.request_delete_range()));
          break;
        default: return {grpc::StatusCode::UNIMPLEMENTED, "conclave: a txn inside a txn"};
      }
    }
    return grpc::Status::OK;
  };
  if (auto s = ops_of(req.success(), t.success); !s.ok()) return s;
  return ops_of(req.failure(), t.failure);
}

// A committed Txn's answer: each operation's response, in order.
void answer_txn(const etcdserverpb::TxnRequest& req, registry::outcome& o, etcdserverpb::TxnResponse* resp) {
  resp->set_succeeded(o.succeeded);
  const auto& ops = o.succeeded ? req.success() : req.failure();
  for (int i = 0; i < ops.size() && static_cast<std::size_t>(i) < o.ops.size(); ++i) {
    auto& found = o.ops[static_cast<std::size_t>(i)].keys;
    auto* out = resp->add_responses();
    switch (ops[i].request_case()) {
      case etcdserverpb::RequestOp::kRequestRange: {
        auto* r = out->mutable_response_range();
        r->mutable_header()->set_revision(static_cast<std::int64_t>(o.value));  // as etcd's: the revision only
        answer_range(ops[i].request_range(), std::move(found), r);
        break;
      }
      case etcdserverpb::RequestOp::kRequestPut: {
        auto* r = out->mutable_response_put();
        r->mutable_header()->set_revision(static_cast<std::int64_t>(o.value));  // as etcd's: the revision only
        if (ops[i].request_put().prev_kv() && !found.empty()) {
          fill(r->mutable_prev_kv(), found[0].first, found[0].second);
        }
        break;
      }
      default: {
        auto* r = out->mutable_response_delete_range();
        r->mutable_header()->set_revision(static_cast<std::int64_t>(o.value));  // as etcd's: the revision only
        r->set_deleted(static_cast<std::int64_t>(found.size()));
        if (ops[i].request_delete_range().prev_kv()) {
          for (const auto& [k, kv] : found) fill(r->add_prev_kvs(), k, kv);
        }
      }
    }
  }
}

// The KV calls are callback handlers: each returns at once and answers
// when the master does, so no thread waits on a write or a read however
// many are in flight (gRPC's synchronous server queued them behind its
// threads; bench/README.md, issue #16).
struct kv_service final : etcdserverpb::KV::CallbackService {
  api& a;
  explicit kv_service(api& x) : a(x) {}

  // One transaction through the leader; `then` fills the answer of a
  // committed one, a refusal is answered as etcd words it.
  template <class Then>
  grpc::ServerUnaryReactor* run(grpc::CallbackServerContext* ctx, const registry::command& c, Then then) {
    auto* reactor = ctx->DefaultReactor();
    a.run_async(c, until_of(ctx), [reactor, then = std::move(then)](api::ran done) mutable {
      if (!done) return reactor->Finish(status_of(done.error()));
      auto& [o, term] = *done;
      reactor->Finish(filled([&] { return then(o, term); }));
    });
    return reactor;
  }

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx, const req_t* req,
                                  etcdserverpb::RangeResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    if (req->key().empty()) return answer_now(ctx, empty_key);
    auto at = static_cast<registry::revision>(std::max<std::int64_t>(req->revision(), 0));
    auto* reactor = ctx->DefaultReactor();
    a.ask_async(registry::range_query{registry::key_range{req->key(), req->range_end()}, at}, req->serializable(),
                until_of(ctx), [this, reactor, req, resp](expected<registry::range_query::result> got) {
                  if (!got) return reactor->Finish(status_of(got.error()));
                  if (got->status == registry::code::compacted) return reactor->Finish(compacted);
                  if (got->status == registry::code::future_revision) return reactor->Finish(future_revision);
                  a.header(resp->mutable_header(), got->rev, a.b.term());
                  reactor->Finish(filled([&] {
                    answer_range(*req, std::move(got->keys), resp);
                    return grpc::Status::OK;
                  }));
                });
    return reactor;
  }

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const etcdserverpb::PutRequest* req,
                                etcdserverpb::PutResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    if (auto s = check_put(*req); !s.ok()) return answer_now(ctx, s);
    registry::txn t;
    t.success = {put_op(*req)};
    return run(ctx, t, [this, req, resp](registry::outcome& o, std::uint64_t term) {
      if (o.code != registry::code::ok) return refused(o);
      a.header(resp->mutable_header(), o.value, term);
      if (req->prev_kv() && !o.ops.empty() && !o.ops[0].keys.empty()) {
        fill(resp->mutable_prev_kv(), req->key(), o.ops[0].keys[0].second);
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx, const etcdserverpb::DeleteRangeRequest* req,
                                        etcdserverpb::DeleteRangeResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    if (req->key().empty()) return answer_now(ctx, empty_key);
    registry::txn t;
    t.success = {remove_op(*req)};
    return run(ctx, t, [this, req, resp](registry::outcome& o, std::uint64_t term) {
      if (o.code != registry::code::ok) return refused(o);
      a.header(resp->mutable_header(), o.value, term);
      if (o.ops.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "conclave: a delete answered no keys");
      const auto& removed = o.ops[0].keys;
      resp->set_deleted(static_cast<std::int64_t>(removed.size()));
      if (req->prev_kv()) {
        for (const auto& [k, kv] : removed) fill(resp->add_prev_kvs(), k, kv);
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx, const etcdserverpb::TxnRequest* req,
                                etcdserverpb::TxnResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    registry::txn t;
    if (auto s = txn_of(*req, t); !s.ok()) return answer_now(ctx, s);
    return run(ctx, t, [this, req, resp](registry::outcome& o, std::uint64_t term) {
      if (o.code != registry::code::ok) return refused(o);
      a.header(resp->mutable_header(), o.value, term);
      answer_txn(*req, o, resp);
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx, const etcdserverpb::CompactionRequest* req,
                                    etcdserverpb::CompactionResponse* resp) override {
    if (auto denied = a.authorize(ctx); !denied.ok()) return answer_now(ctx, denied);
    registry::compact c{static_cast<registry::revision>(std::max<std::int64_t>(req->revision(), 0))};
    return run(ctx, c, [this, resp](registry::outcome& o, std::uint64_t term) {
      if (o.code == registry::code::compacted) return compacted;
      if (o.code == registry::code::future_revision) return future_revision;
      if (o.code != registry::code::ok) return refused(o);
      a.header(resp->mutable_header(), o.value, term);
      return grpc::Status::OK;
    });
  }
};

}  // namespace

std::unique_ptr<grpc::Service> make_kv_service(api& a) { return std::make_unique<kv_service>(a); }

}  // namespace conclave::etcd::detail
