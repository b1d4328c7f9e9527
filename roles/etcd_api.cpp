#include "roles/etcd_api.hpp"

#include <algorithm>

#include "roles/etcd_service.hpp"

namespace conclave::etcd {

namespace detail {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

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

const grpc::Status empty_key{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: key is not provided"};
const grpc::Status key_not_found{grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: key not found"};
const grpc::Status lease_not_found{grpc::StatusCode::NOT_FOUND, "etcdserver: requested lease not found"};
const grpc::Status lease_exists{grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: lease already exists"};
const grpc::Status compacted{grpc::StatusCode::OUT_OF_RANGE,
                             "etcdserver: mvcc: required revision has been compacted"};
const grpc::Status future_revision{grpc::StatusCode::OUT_OF_RANGE,
                                   "etcdserver: mvcc: required revision is a future revision"};
const grpc::Status duplicate_key{grpc::StatusCode::INVALID_ARGUMENT,
                                 "etcdserver: duplicate key given in txn request"};

steady::time_point until_of(const grpc::ServerContext* ctx) {
  auto left = std::chrono::duration_cast<ms>(ctx->deadline() - std::chrono::system_clock::now());
  return steady::now() + std::clamp(left, ms(1), ms(10s));
}

ms left(steady::time_point until) {
  return std::max(ms(1), std::chrono::duration_cast<ms>(until - steady::now()));
}

void fill(mvccpb::KeyValue* out, const std::string& key, const registry::key_value& kv, bool with_value) {
  out->set_key(key);
  out->set_create_revision(static_cast<std::int64_t>(kv.created));
  out->set_mod_revision(static_cast<std::int64_t>(kv.modified));
  out->set_version(static_cast<std::int64_t>(kv.version));
  if (with_value) out->set_value(kv.value);
  out->set_lease(static_cast<std::int64_t>(kv.session));
}

void api::header(etcdserverpb::ResponseHeader* h, registry::revision rev, std::uint64_t term) const {
  h->set_cluster_id(cluster_id);
  h->set_member_id(member_id);
  h->set_revision(static_cast<std::int64_t>(rev));
  h->set_raft_term(term);
}

grpc::Status api::local_header(etcdserverpb::ResponseHeader* h, steady::time_point until) {
  auto rev = ask(registry::revision_query{}, true, until);
  if (!rev) return status_of(rev.error());
  header(h, rev->rev, b.term());
  return grpc::Status::OK;
}

expected<std::pair<registry::outcome, std::uint64_t>> api::run(const registry::command& c, steady::time_point until) {
  auto committed = b.propose(c, left(until));
  if (!committed) return committed.error();
  auto res = wire::decode_result(committed->result);
  if (!res) return res.error();
  return std::make_pair(std::move(res->outcome), committed->term);
}

}  // namespace detail

using namespace detail;

namespace {

// FNV-1a, 64 bits: the same number for the same text on every build.
std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h ? h : 1;
}

// The etcd API version these masters answer as (Status.version): clients
// choose features by it.
const char* const etcd_api_version = "3.4.0";

}  // namespace

std::uint64_t cluster_number(const std::string& cluster_id) { return fnv1a("cluster/" + cluster_id); }

std::uint64_t member_number(const std::string& cluster_id, std::uint64_t server_id) {
  return fnv1a("member/" + cluster_id + "/" + std::to_string(server_id));
}

struct server::impl {
  api a;
  std::vector<std::unique_ptr<grpc::Service>> services;
  std::unique_ptr<grpc::Server> grpc_server;
  int port = 0;
};

namespace {

// Cluster: the configured masters (etcd's members).
struct cluster_service final : etcdserverpb::Cluster::Service {
  api& a;
  explicit cluster_service(api& x) : a(x) {}
  grpc::Status MemberList(grpc::ServerContext* ctx, const etcdserverpb::MemberListRequest*,
                          etcdserverpb::MemberListResponse* out) override;
};

// Maintenance: this master's Raft state, and leadership transfer.
struct maintenance_service final : etcdserverpb::Maintenance::Service {
  api& a;
  explicit maintenance_service(api& x) : a(x) {}
  grpc::Status Status(grpc::ServerContext* ctx, const etcdserverpb::StatusRequest*,
                      etcdserverpb::StatusResponse* out) override;
  grpc::Status MoveLeader(grpc::ServerContext* ctx, const etcdserverpb::MoveLeaderRequest* in,
                          etcdserverpb::MoveLeaderResponse* out) override;
  grpc::Status Alarm(grpc::ServerContext* ctx, const etcdserverpb::AlarmRequest* in,
                     etcdserverpb::AlarmResponse* out) override;
  // Nothing to do: LMDB reuses the pages it frees, and a snapshot compacts the log.
  grpc::Status Defragment(grpc::ServerContext*, const etcdserverpb::DefragmentRequest*,
                          etcdserverpb::DefragmentResponse*) override {
    return grpc::Status::OK;
  }
};

grpc::Status cluster_service::MemberList(grpc::ServerContext* ctx, const etcdserverpb::MemberListRequest*,
                                         etcdserverpb::MemberListResponse* out) {
  // As etcd's: the header names no revision (the member list is not in the key space).
  (void)ctx;
  a.header(out->mutable_header(), 0, a.b.term());
  for (const auto& m : a.b.masters) {
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
  auto st = a.b.status();
  if (!st) return status_of(st.error());
  if (auto s = a.local_header(out->mutable_header(), until); !s.ok()) return s;
  out->mutable_header()->set_raft_term(st->term);
  out->set_version(etcd_api_version);
  auto bytes = static_cast<std::int64_t>(a.b.disk_bytes());
  out->set_dbsize(bytes);
  out->set_dbsizeinuse(bytes);
  for (const auto& m : a.b.masters) {
    if (m.server_id == st->leader_id) out->set_leader(m.member_id);
  }
  out->set_raftindex(st->commit_index);
  out->set_raftterm(st->term);
  out->set_raftappliedindex(st->applied_index);
  // A full disk is etcd's NOSPACE alarm.
  if (!st->storage_error.empty()) out->add_errors("memberID:" + std::to_string(a.member_id) + " alarm:NOSPACE " + st->storage_error);
  return grpc::Status::OK;
}

// A full disk is etcd's NOSPACE alarm, for this master (as it knows its own
// disk only). It clears itself once the master can write again, so there is
// nothing to deactivate, and an operator cannot raise one.
grpc::Status maintenance_service::Alarm(grpc::ServerContext* ctx, const etcdserverpb::AlarmRequest* in,
                                        etcdserverpb::AlarmResponse* out) {
  if (in->action() == etcdserverpb::AlarmRequest::ACTIVATE) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: alarms are raised by the masters, not by clients"};
  }
  auto st = a.b.status();
  if (!st) return status_of(st.error());
  if (auto s = a.local_header(out->mutable_header(), until_of(ctx)); !s.ok()) return s;
  if (!st->storage_error.empty() && (in->memberid() == 0 || in->memberid() == a.member_id)) {
    auto* alarm = out->add_alarms();
    alarm->set_memberid(a.member_id);
    alarm->set_alarm(etcdserverpb::NOSPACE);
  }
  return grpc::Status::OK;
}

grpc::Status maintenance_service::MoveLeader(grpc::ServerContext* ctx, const etcdserverpb::MoveLeaderRequest* in,
                                             etcdserverpb::MoveLeaderResponse* out) {
  auto until = until_of(ctx);
  const master_info* target = nullptr;
  for (const auto& m : a.b.masters) {
    if (m.member_id == in->targetid()) target = &m;
  }
  if (!target) return {grpc::StatusCode::NOT_FOUND, "etcdserver: bad leader transferee"};
  if (auto done = a.b.transfer(target->server_id, left(until)); !done) return status_of(done.error());
  return a.local_header(out->mutable_header(), until);
}

}  // namespace

server::server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

expected<std::unique_ptr<server>> server::start(const raft::endpoint& at, std::uint64_t cluster_id,
                                                std::uint64_t member_id, backend b) {
  auto p = std::make_unique<impl>();
  p->a.cluster_id = cluster_id;
  p->a.member_id = member_id;
  p->a.b = std::move(b);
  grpc::ServerBuilder builder;
  // An address taken by another process is an error, not shared (gRPC
  // would otherwise set SO_REUSEPORT and split clients between the two).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(at.text(), grpc::InsecureServerCredentials(), &p->port);
  p->services.push_back(make_kv_service(p->a));
  p->services.push_back(make_lease_service(p->a));
  p->services.push_back(make_watch_service(p->a));
  p->services.push_back(make_lock_service(p->a));
  p->services.push_back(make_election_service(p->a));
  p->services.push_back(std::make_unique<cluster_service>(p->a));
  p->services.push_back(std::make_unique<maintenance_service>(p->a));
  for (auto& service : p->services) builder.RegisterService(service.get());
  p->grpc_server = builder.BuildAndStart();
  if (!p->grpc_server || p->port == 0) {
    return make_error(errc::io_error, "client-listen: cannot listen on " + at.text());
  }
  // Where this master answers (the port it got when asked for any).
  for (auto& m : p->a.b.masters) {
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
