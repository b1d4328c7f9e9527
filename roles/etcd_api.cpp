#include "roles/etcd_api.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <optional>

#include "schema/etcd/rpc.grpc.pb.h"
#include "schema/registry_codec.hpp"

namespace conclave::etcd {

namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

// FNV-1a, 64 bits: the same number for the same text on every build.
std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ? h : 1;
}

// etcd's messages and codes (its clients match on them): a request whose
// outcome is unknown is "request timed out", which clients never report as a
// definite failure nor resend when it changes state.
grpc::Status status_of(const error& e) {
  switch (e.code) {
    case errc::outcome_unknown: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: request timed out"};
    case errc::unavailable:
    case errc::not_leader:
    case errc::transferring: return {grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader"};
    case errc::busy:
    case errc::resource_exhausted: return {grpc::StatusCode::RESOURCE_EXHAUSTED, "etcdserver: too many requests"};
    case errc::disk_full:
    case errc::map_full:
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded"};
    case errc::invalid_argument: return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: " + e.message()};
    default: return {grpc::StatusCode::INTERNAL, "conclave: " + e.message()};
  }
}

grpc::Status refused(const registry::outcome& o) {
  if (o.code == registry::code::invalid) return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: " + o.detail};
  return {grpc::StatusCode::FAILED_PRECONDITION,
          std::string("conclave: ") + registry::to_string(o.code) + ": " + o.detail};
}

// The etcd API version these masters answer as (Status.version): clients
// choose features by it.
const char* const etcd_api_version = "3.4.0";

const grpc::Status empty_key{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: key is not provided"};
const grpc::Status key_not_found{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: key not found"};
const grpc::Status value_provided{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: value is provided"};
const grpc::Status lease_provided{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: lease is provided"};
// No leases yet (a lease will be a conclave session): every lease id is unknown.
const grpc::Status lease_not_found{grpc::StatusCode::NOT_FOUND, "etcdserver: requested lease not found"};
const grpc::Status future_revision{grpc::StatusCode::OUT_OF_RANGE,
                                   "etcdserver: mvcc: required revision is a future revision"};

void fill(mvccpb::KeyValue* out, const std::string& key, const registry::key_value& kv, bool with_value = true) {
  out->set_key(key);
  out->set_create_revision(static_cast<std::int64_t>(kv.created));
  out->set_mod_revision(static_cast<std::int64_t>(kv.modified));
  out->set_version(static_cast<std::int64_t>(kv.version));
  if (with_value) out->set_value(kv.value);
  out->set_lease(static_cast<std::int64_t>(kv.session));
}

// How long a request may take: the client's deadline, at most 10 s.
std::chrono::steady_clock::time_point until_of(const grpc::ServerContext* ctx) {
  auto left = std::chrono::duration_cast<ms>(ctx->deadline() - std::chrono::system_clock::now());
  return std::chrono::steady_clock::now() + std::clamp(left, ms(1), ms(10s));
}

ms left(std::chrono::steady_clock::time_point until) {
  return std::max(ms(1), std::chrono::duration_cast<ms>(until - std::chrono::steady_clock::now()));
}

using keys = std::vector<std::pair<std::string, registry::key_value>>;

}  // namespace

std::uint64_t cluster_number(const std::string& cluster_id) { return fnv1a("cluster/" + cluster_id); }

std::uint64_t member_number(const std::string& cluster_id, std::uint64_t server_id) {
  return fnv1a("member/" + cluster_id + "/" + std::to_string(server_id));
}

bool key_range::contains(const std::string& k) const {
  if (end.empty()) return k == key;
  if (k < key) return false;  // std::string orders bytes as unsigned, as etcd does
  return end == std::string(1, '\0') || k < end;
}

std::string key_range::listing_prefix() const {
  if (end.empty()) return key;
  if (end == std::string(1, '\0')) return {};
  std::size_t n = 0;
  while (n < key.size() && n < end.size() && key[n] == end[n]) ++n;
  // [c x..., c x+1): every key starts with c x (a prefix range).
  bool next_byte = end.size() == n + 1 && key.size() > n &&
                   static_cast<unsigned char>(end[n]) == static_cast<unsigned char>(key[n]) + 1;
  return key.substr(0, next_byte ? n + 1 : n);
}

struct server::impl final : etcdserverpb::KV::Service {
  std::uint64_t cluster_id = 0, member_id = 0;
  std::unique_ptr<grpc::Service> cluster, maintenance;
  backend b;
  std::unique_ptr<grpc::Server> grpc_server;
  int port = 0;

  void header(etcdserverpb::ResponseHeader* h, registry::revision rev, std::uint64_t term) const {
    h->set_cluster_id(cluster_id);
    h->set_member_id(member_id);
    h->set_revision(static_cast<std::int64_t>(rev));
    h->set_raft_term(term);
  }

  // The keys of `r` (in key order) and the revision they are at.
  expected<registry::keys_result> list(const key_range& r, bool serializable,
                                       std::chrono::steady_clock::time_point until) {
    if (r.end.empty()) {
      // One key: a lookup, not a listing of every key it prefixes.
      auto got = b.read(registry::get_key{r.key}, serializable, left(until));
      if (!got) return got.error();
      auto one = wire::decode_answer<registry::get_key>(got->result);
      if (!one) return one.error();
      registry::keys_result res;
      res.rev = one->rev;
      if (one->value) res.keys.emplace_back(r.key, *one->value);
      return res;
    }
    auto got = b.read(registry::list_prefix{r.listing_prefix()}, serializable, left(until));
    if (!got) return got.error();
    auto res = wire::decode_answer<registry::list_prefix>(got->result);
    if (!res) return res.error();
    auto& ks = res->keys;
    ks.erase(std::remove_if(ks.begin(), ks.end(), [&](const auto& kv) { return !r.contains(kv.first); }), ks.end());
    return res;
  }

  expected<std::optional<registry::key_value>> get(const std::string& key,
                                                   std::chrono::steady_clock::time_point until) {
    auto r = list(key_range{key, {}}, false, until);
    if (!r) return r.error();
    if (r->keys.empty()) return std::optional<registry::key_value>();
    return std::optional<registry::key_value>(r->keys.front().second);
  }

  expected<std::pair<registry::outcome, std::uint64_t>> run(const registry::command& c,
                                                            std::chrono::steady_clock::time_point until) {
    auto committed = b.propose(c, left(until));
    if (!committed) return committed.error();
    auto res = wire::decode_result(committed->result);
    if (!res) return res.error();
    return std::make_pair(res->outcome, committed->term);
  }

  grpc::Status Range(grpc::ServerContext* ctx, const etcdserverpb::RangeRequest* req,
                     etcdserverpb::RangeResponse* resp) override {
    if (req->key().empty()) return empty_key;
    auto until = until_of(ctx);
    auto listed = list(key_range{req->key(), req->range_end()}, req->serializable(), until);
    if (!listed) return status_of(listed.error());
    auto rev = listed->rev;
    if (req->revision() > 0 && static_cast<registry::revision>(req->revision()) != rev) {
      if (static_cast<registry::revision>(req->revision()) > rev) return future_revision;
      return {grpc::StatusCode::UNIMPLEMENTED, "conclave: reads at a past revision are not supported yet"};
    }
    header(resp->mutable_header(), rev, b.term());
    auto& ks = listed->keys;
    // count: every key in the range, before filters and limit (as etcd).
    resp->set_count(static_cast<std::int64_t>(ks.size()));
    if (req->count_only()) return grpc::Status::OK;
    auto in_bounds = [&](const registry::key_value& kv) {
      auto mod = static_cast<std::int64_t>(kv.modified), created = static_cast<std::int64_t>(kv.created);
      return (req->min_mod_revision() == 0 || mod >= req->min_mod_revision()) &&
             (req->max_mod_revision() == 0 || mod <= req->max_mod_revision()) &&
             (req->min_create_revision() == 0 || created >= req->min_create_revision()) &&
             (req->max_create_revision() == 0 || created <= req->max_create_revision());
    };
    ks.erase(std::remove_if(ks.begin(), ks.end(), [&](const auto& kv) { return !in_bounds(kv.second); }), ks.end());
    // Keys come in key order; another target without an order sorts ascending (as etcd).
    using req_t = etcdserverpb::RangeRequest;
    auto order = req->sort_order();
    if (order == req_t::NONE && req->sort_target() != req_t::KEY) order = req_t::ASCEND;
    if (order != req_t::NONE) {
      auto target = req->sort_target();
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
    if (req->limit() > 0 && n > static_cast<std::size_t>(req->limit())) {
      n = static_cast<std::size_t>(req->limit());
      resp->set_more(true);
    }
    for (std::size_t i = 0; i < n; ++i) fill(resp->add_kvs(), ks[i].first, ks[i].second, !req->keys_only());
    return grpc::Status::OK;
  }

  grpc::Status Put(grpc::ServerContext* ctx, const etcdserverpb::PutRequest* req,
                   etcdserverpb::PutResponse* resp) override {
    if (req->key().empty()) return empty_key;
    if (req->ignore_value() && !req->value().empty()) return value_provided;
    if (req->ignore_lease() && req->lease() != 0) return lease_provided;
    if (req->lease() != 0) return lease_not_found;
    auto until = until_of(ctx);
    // The previous value is read, then the put is made only if the key is
    // still at that version (else read again), so prev_kv is what it replaced.
    bool needs_prev = req->prev_kv() || req->ignore_value() || req->ignore_lease();
    for (;;) {
      std::optional<registry::key_value> prev;
      std::optional<std::uint64_t> if_version;
      std::string value = req->value();
      if (needs_prev) {
        auto current = get(req->key(), until);
        if (!current) return status_of(current.error());
        prev = *current;
        if ((req->ignore_value() || req->ignore_lease()) && !prev) return key_not_found;
        if (req->ignore_value()) value = prev->value;
        if_version = prev ? prev->version : 0;
      }
      auto done = run(registry::put{req->key(), value, 0, if_version}, until);
      if (!done) return status_of(done.error());
      auto& [o, term] = *done;
      if (o.code == registry::code::version_mismatch && needs_prev) continue;
      if (o.code != registry::code::ok) return refused(o);
      header(resp->mutable_header(), o.value, term);
      if (req->prev_kv() && prev) fill(resp->mutable_prev_kv(), req->key(), *prev);
      return grpc::Status::OK;
    }
  }

  // Not atomic over several keys yet: each key is removed on its own (its own
  // revision), if still at the version listed (else read again).
  grpc::Status DeleteRange(grpc::ServerContext* ctx, const etcdserverpb::DeleteRangeRequest* req,
                           etcdserverpb::DeleteRangeResponse* resp) override {
    if (req->key().empty()) return empty_key;
    auto until = until_of(ctx);
    auto listed = list(key_range{req->key(), req->range_end()}, false, until);
    if (!listed) return status_of(listed.error());
    registry::revision rev = listed->rev;
    std::uint64_t term = b.term();
    std::int64_t deleted = 0;
    for (auto& [key, listed_kv] : listed->keys) {
      std::optional<registry::key_value> kv = listed_kv;
      while (kv) {
        auto done = run(registry::remove_key{key, kv->version}, until);
        if (!done) return status_of(done.error());
        auto& [o, t] = *done;
        if (o.code == registry::code::ok) {
          ++deleted;
          rev = o.value;
          term = t;
          if (req->prev_kv()) fill(resp->add_prev_kvs(), key, *kv);
          break;
        }
        if (o.code == registry::code::not_found) break;
        if (o.code != registry::code::version_mismatch) return refused(o);
        auto current = get(key, until);
        if (!current) return status_of(current.error());
        kv = *current;
      }
    }
    resp->set_deleted(deleted);
    header(resp->mutable_header(), rev, term);
    return grpc::Status::OK;
  }
};

namespace {

// Cluster: the configured masters (etcd's members).
struct cluster_service final : etcdserverpb::Cluster::Service {
  server::impl& api;
  explicit cluster_service(server::impl& a) : api(a) {}
  grpc::Status MemberList(grpc::ServerContext* ctx, const etcdserverpb::MemberListRequest*,
                          etcdserverpb::MemberListResponse* out) override;
};

// Maintenance: this master's Raft state, and leadership transfer.
struct maintenance_service final : etcdserverpb::Maintenance::Service {
  server::impl& api;
  explicit maintenance_service(server::impl& a) : api(a) {}
  grpc::Status Status(grpc::ServerContext* ctx, const etcdserverpb::StatusRequest*,
                      etcdserverpb::StatusResponse* out) override;
  grpc::Status MoveLeader(grpc::ServerContext* ctx, const etcdserverpb::MoveLeaderRequest* in,
                          etcdserverpb::MoveLeaderResponse* out) override;
};

// The header of an answer that reads no keys: this master's revision and term.
grpc::Status local_header(server::impl& api, etcdserverpb::ResponseHeader* h, std::chrono::steady_clock::time_point until) {
  auto got = api.b.read(registry::revision_query{}, true, left(until));
  if (!got) return status_of(got.error());
  auto rev = wire::decode_answer<registry::revision_query>(got->result);
  if (!rev) return status_of(rev.error());
  api.header(h, rev->rev, api.b.term());
  return grpc::Status::OK;
}

grpc::Status cluster_service::MemberList(grpc::ServerContext* ctx, const etcdserverpb::MemberListRequest*,
                                         etcdserverpb::MemberListResponse* out) {
  if (auto s = local_header(api, out->mutable_header(), until_of(ctx)); !s.ok()) return s;
  for (const auto& m : api.b.masters) {
    auto* x = out->add_members();
    x->set_id(m.member_id);
    x->set_name(std::to_string(m.server_id));
    x->add_peerurls(m.peer_url);
    if (!m.client_url.empty()) x->add_clienturls(m.client_url);
  }
  return grpc::Status::OK;
}

grpc::Status maintenance_service::Status(grpc::ServerContext* ctx, const etcdserverpb::StatusRequest*,
                                         etcdserverpb::StatusResponse* out) {
  auto until = until_of(ctx);
  auto st = api.b.status();
  if (!st) return status_of(st.error());
  if (auto s = local_header(api, out->mutable_header(), until); !s.ok()) return s;
  out->mutable_header()->set_raft_term(st->term);
  out->set_version(etcd_api_version);
  auto bytes = static_cast<std::int64_t>(api.b.disk_bytes());
  out->set_dbsize(bytes);
  out->set_dbsizeinuse(bytes);
  for (const auto& m : api.b.masters) {
    if (m.server_id == st->leader_id) out->set_leader(m.member_id);
  }
  out->set_raftindex(st->commit_index);
  out->set_raftterm(st->term);
  out->set_raftappliedindex(st->applied_index);
  // A full disk is etcd's NOSPACE alarm.
  if (!st->storage_error.empty()) out->add_errors("memberID:" + std::to_string(api.member_id) + " alarm:NOSPACE " + st->storage_error);
  return grpc::Status::OK;
}

grpc::Status maintenance_service::MoveLeader(grpc::ServerContext* ctx, const etcdserverpb::MoveLeaderRequest* in,
                                             etcdserverpb::MoveLeaderResponse* out) {
  auto until = until_of(ctx);
  const master_info* target = nullptr;
  for (const auto& m : api.b.masters) {
    if (m.member_id == in->targetid()) target = &m;
  }
  if (!target) return {grpc::StatusCode::NOT_FOUND, "etcdserver: bad leader transferee"};
  if (auto done = api.b.transfer(target->server_id, left(until)); !done) return status_of(done.error());
  return local_header(api, out->mutable_header(), until);
}

}  // namespace

server::server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

expected<std::unique_ptr<server>> server::start(const raft::endpoint& at, std::uint64_t cluster_id,
                                                std::uint64_t member_id, backend b) {
  auto p = std::make_unique<impl>();
  p->cluster_id = cluster_id;
  p->member_id = member_id;
  p->b = std::move(b);
  grpc::ServerBuilder builder;
  // An address taken by another process is an error, not shared (gRPC
  // would otherwise set SO_REUSEPORT and split clients between the two).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(at.text(), grpc::InsecureServerCredentials(), &p->port);
  builder.RegisterService(p.get());
  p->cluster = std::make_unique<cluster_service>(*p);
  p->maintenance = std::make_unique<maintenance_service>(*p);
  builder.RegisterService(p->cluster.get());
  builder.RegisterService(p->maintenance.get());
  p->grpc_server = builder.BuildAndStart();
  if (!p->grpc_server || p->port == 0) {
    return make_error(errc::io_error, "client-listen: cannot listen on " + at.text());
  }
  // Where this master answers (the port it got when asked for any).
  for (auto& m : p->b.masters) {
    if (m.member_id == member_id) m.client_url = "http://" + at.host + ":" + std::to_string(p->port);
  }
  return std::unique_ptr<server>(new server(std::move(p)));
}

server::~server() { impl_->grpc_server->Shutdown(std::chrono::system_clock::now() + 1s); }

std::uint16_t server::port() const { return static_cast<std::uint16_t>(impl_->port); }

std::shared_ptr<grpc::Channel> server::in_process_channel() const {
  return impl_->grpc_server->InProcessChannel(grpc::ChannelArguments());
}

}  // namespace conclave::etcd
