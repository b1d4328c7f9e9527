#include "roles/etcd_api.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "actors/stage_trace.hpp"
#include "roles/etcd_service.hpp"
#include "schema/backup_file.hpp"

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

steady::time_point until_of(const grpc::ServerContextBase* ctx) {
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

void api::run_async(const registry::command& c, steady::time_point until, std::function<void(ran)> done) {
  auto called_ns = stage_trace::enabled() ? stage_trace::now_ns() : 0;
  b.propose(c, left(until), calls->track<expected<client::committed>>([called_ns, done = std::move(done)](
                                                                          expected<client::committed> committed) {
    if (!committed) return done(committed.error());
    if (called_ns) {
      stage_trace::mark(stage_trace::stage::api_called, committed->index, committed->index, called_ns);
      stage_trace::mark(stage_trace::stage::api_returned, committed->index);
    }
    auto res = wire::decode_result(committed->result);
    if (!res) return done(res.error());
    done(std::make_pair(std::move(res->outcome), committed->term));
  }));
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

// Cluster: the masters of the Raft configuration (etcd's members), and
// changes to it.
struct cluster_service final : etcdserverpb::Cluster::Service {
  api& a;
  explicit cluster_service(api& x) : a(x) {}
  grpc::Status MemberList(grpc::ServerContext* ctx, const etcdserverpb::MemberListRequest*,
                          etcdserverpb::MemberListResponse* out) override;
  grpc::Status MemberAdd(grpc::ServerContext* ctx, const etcdserverpb::MemberAddRequest* in,
                         etcdserverpb::MemberAddResponse* out) override;
  grpc::Status MemberRemove(grpc::ServerContext* ctx, const etcdserverpb::MemberRemoveRequest* in,
                            etcdserverpb::MemberRemoveResponse* out) override;
  grpc::Status MemberPromote(grpc::ServerContext* ctx, const etcdserverpb::MemberPromoteRequest* in,
                             etcdserverpb::MemberPromoteResponse* out) override;

  // The configuration's masters as etcd members: peer URL from the
  // configuration, name and client URL from what each registered.
  grpc::Status members(google::protobuf::RepeatedPtrField<etcdserverpb::Member>* out, steady::time_point until);
  // The configuration's server with etcd member id `id`.
  expected<client::config_member> server_of(std::uint64_t id);
  // A membership change, answered as etcd does: the header, then the members.
  template <class Response>
  grpc::Status change(std::uint8_t kind, std::uint64_t server, const std::string& address, Response* out);
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
  grpc::Status Snapshot(grpc::ServerContext* ctx, const etcdserverpb::SnapshotRequest*,
                        grpc::ServerWriter<etcdserverpb::SnapshotResponse>* out) override;
  grpc::Status Hash(grpc::ServerContext* ctx, const etcdserverpb::HashRequest*, etcdserverpb::HashResponse* out) override;
  grpc::Status HashKV(grpc::ServerContext* ctx, const etcdserverpb::HashKVRequest* in,
                      etcdserverpb::HashKVResponse* out) override;
  // Nothing to do: LMDB reuses the pages it frees, and a snapshot compacts the log.
  grpc::Status Defragment(grpc::ServerContext* ctx, const etcdserverpb::DefragmentRequest*,
                          etcdserverpb::DefragmentResponse*) override {
    return a.authorize(ctx);
  }
};

grpc::Status cluster_service::members(google::protobuf::RepeatedPtrField<etcdserverpb::Member>* out,
                                      steady::time_point until) {
  auto st = a.b.status();
  if (!st) return status_of(st.error());
  std::map<std::uint64_t, const registry::member*> registered;
  auto reg = a.ask(registry::members_query{}, true, until);
  if (!reg) return status_of(reg.error());
  for (const auto& m : reg->members) {
    auto it = m.labels.find(server_id_label);
    if (it == m.labels.end() || m.status == registry::member_status::left) continue;
    registered[std::strtoull(it->second.c_str(), nullptr, 10)] = &m;
  }
  for (const auto& m : st->members) {
    auto* x = out->Add();
    x->set_id(member_number(a.b.cluster, m.id));
    x->add_peerurls("http://" + m.address);
    x->set_islearner(m.learner);
    if (auto it = registered.find(m.id); it != registered.end()) {
      x->set_name(it->second->id);
      if (auto url = it->second->labels.find(client_url_label); url != it->second->labels.end()) {
        x->add_clienturls(url->second);
      }
    }
  }
  return grpc::Status::OK;
}

expected<client::config_member> cluster_service::server_of(std::uint64_t id) {
  auto st = a.b.status();
  if (!st) return st.error();
  for (const auto& m : st->members) {
    if (member_number(a.b.cluster, m.id) == id) return m;
  }
  return make_error(errc::not_found, "etcdserver: member not found");
}

template <class Response>
grpc::Status cluster_service::change(std::uint8_t kind, std::uint64_t server, const std::string& address,
                                     Response* out) {
  auto until = steady::now() + std::chrono::milliseconds(client::membership_wait_ms + 5000);
  if (auto done = a.b.change_membership(kind, server, address, left(until)); !done) {
    if (done.error().code == errc::not_caught_up) {
      return {grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: can only promote a learner member which is in sync with leader"};
    }
    return status_of(done.error());
  }
  a.header(out->mutable_header(), 0, a.b.term());
  return members(out->mutable_members(), until);
}

grpc::Status cluster_service::MemberList(grpc::ServerContext* ctx, const etcdserverpb::MemberListRequest*,
                                         etcdserverpb::MemberListResponse* out) {
  if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
  // As etcd's: the header names no revision (the member list is not in the key space).
  a.header(out->mutable_header(), 0, a.b.term());
  return members(out->mutable_members(), until_of(ctx));
}

// A new master joins as a learner, whatever was asked: it becomes a voter
// with MemberPromote once it has caught up, so an added master that is slow
// to start never stalls the quorum. Its name is the server id to start it
// with (`conclave -r master --id N --join ...`).
grpc::Status cluster_service::MemberAdd(grpc::ServerContext* ctx, const etcdserverpb::MemberAddRequest* in,
                                        etcdserverpb::MemberAddResponse* out) {
  if (auto denied = a.authorize(ctx, true); !denied.ok()) return denied;
  if (in->peerurls_size() != 1) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "conclave: a new master has one peer URL (http://HOST:PORT)"};
  }
  std::string address = in->peerurls(0);
  if (auto scheme = address.find("://"); scheme != std::string::npos) address = address.substr(scheme + 3);
  while (!address.empty() && address.back() == '/') address.pop_back();
  auto st = a.b.status();
  if (!st) return status_of(st.error());
  std::uint64_t id = 1;
  for (const auto& m : st->members) {
    if (m.address == address) return {grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"};
    id = std::max(id, m.id + 1);
  }
  if (auto s = change(0, id, address, out); !s.ok()) return s;
  auto* added = out->mutable_member();
  added->set_id(member_number(a.b.cluster, id));
  added->set_name(std::to_string(id));
  added->add_peerurls("http://" + address);
  added->set_islearner(true);
  return grpc::Status::OK;
}

grpc::Status cluster_service::MemberRemove(grpc::ServerContext* ctx, const etcdserverpb::MemberRemoveRequest* in,
                                           etcdserverpb::MemberRemoveResponse* out) {
  if (auto denied = a.authorize(ctx, true); !denied.ok()) return denied;
  auto server = server_of(in->id());
  if (!server) return {grpc::StatusCode::NOT_FOUND, "etcdserver: member not found"};
  return change(2, server->id, {}, out);
}

grpc::Status cluster_service::MemberPromote(grpc::ServerContext* ctx, const etcdserverpb::MemberPromoteRequest* in,
                                            etcdserverpb::MemberPromoteResponse* out) {
  if (auto denied = a.authorize(ctx, true); !denied.ok()) return denied;
  auto server = server_of(in->id());
  if (!server) return {grpc::StatusCode::NOT_FOUND, "etcdserver: member not found"};
  if (!server->learner) {
    return {grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: can only promote a learner member"};
  }
  return change(1, server->id, {}, out);
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
  if (st->leader_id != 0) out->set_leader(member_number(a.b.cluster, st->leader_id));
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
  if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
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

// The registry as of a linearizable read (every key, session, lock and the
// revision) as a conclave backup file (schema/backup_file.hpp: whole 512-byte
// pages, then their SHA-256, as etcd's stream ends): what `etcdctl snapshot
// save` writes to its file, and `conclave restore` reads. (etcd's stream is a
// bbolt database; this one restores into conclave, not etcd.)
grpc::Status maintenance_service::Snapshot(grpc::ServerContext* ctx, const etcdserverpb::SnapshotRequest*,
                                           grpc::ServerWriter<etcdserverpb::SnapshotResponse>* out) {
  if (auto denied = a.authorize(ctx, true); !denied.ok()) return denied;
  auto until = until_of(ctx);
  auto got = a.ask(registry::state_query{}, false, until);
  if (!got) return status_of(got.error());
  if (!got->state) return {grpc::StatusCode::INTERNAL, "conclave: an empty state answer"};
  auto bytes = backup::encode(a.b.cluster, *got->state);
  constexpr std::size_t chunk = 64 * 1024;
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    etcdserverpb::SnapshotResponse r;
    auto n = std::min(chunk, bytes.size() - at);
    a.header(r.mutable_header(), got->state->rev, a.b.term());
    r.set_remaining_bytes(bytes.size() - at - n);
    r.set_blob(bytes.substr(at, n));
    if (!out->Write(r)) return {grpc::StatusCode::CANCELLED, "conclave: the client went away"};
  }
  return grpc::Status::OK;
}

// etcd's consistency checks, answered from this master's applied state: equal
// on masters that applied the same commands. Hash: the whole registry (its
// digest); HashKV: the keys as of a revision (0: the current one).
std::uint32_t fold(std::uint64_t h) { return static_cast<std::uint32_t>(h ^ (h >> 32)); }

grpc::Status maintenance_service::Hash(grpc::ServerContext* ctx, const etcdserverpb::HashRequest*,
                                       etcdserverpb::HashResponse* out) {
  if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
  auto got = a.ask(registry::digest_query{}, true, until_of(ctx));
  if (!got) return status_of(got.error());
  a.header(out->mutable_header(), got->rev, a.b.term());
  out->set_hash(fold(got->digest));
  return grpc::Status::OK;
}

grpc::Status maintenance_service::HashKV(grpc::ServerContext* ctx, const etcdserverpb::HashKVRequest* in,
                                         etcdserverpb::HashKVResponse* out) {
  if (auto denied = a.authorize(ctx); !denied.ok()) return denied;
  auto every = registry::key_range{std::string(1, '\0'), std::string(1, '\0')};
  auto got = a.ask(registry::range_query{every, static_cast<registry::revision>(std::max<std::int64_t>(in->revision(), 0))},
                   true, until_of(ctx));
  if (!got) return status_of(got.error());
  if (got->status == registry::code::compacted) return compacted;
  if (got->status == registry::code::future_revision) return future_revision;
  std::uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const std::string& bytes) {
    for (unsigned char c : bytes + '\xff') h = (h ^ c) * 1099511628211ull;
  };
  for (const auto& [key, kv] : got->keys) {
    mix(key);
    mix(kv.value);
    mix(std::to_string(kv.created) + "/" + std::to_string(kv.modified) + "/" + std::to_string(kv.version) + "/" +
        std::to_string(kv.session));
  }
  a.header(out->mutable_header(), got->rev, a.b.term());
  out->set_hash(fold(h));
  out->set_compact_revision(static_cast<std::int64_t>(got->floor));
  return grpc::Status::OK;
}

grpc::Status maintenance_service::MoveLeader(grpc::ServerContext* ctx, const etcdserverpb::MoveLeaderRequest* in,
                                             etcdserverpb::MoveLeaderResponse* out) {
  if (auto denied = a.authorize(ctx, true); !denied.ok()) return denied;
  auto until = until_of(ctx);
  auto st = a.b.status();
  if (!st) return status_of(st.error());
  const client::config_member* target = nullptr;
  for (const auto& m : st->members) {
    if (member_number(a.b.cluster, m.id) == in->targetid() && !m.learner) target = &m;
  }
  if (!target) return {grpc::StatusCode::NOT_FOUND, "etcdserver: bad leader transferee"};
  if (auto done = a.b.transfer(target->id, left(until)); !done) return status_of(done.error());
  return a.local_header(out->mutable_header(), until);
}

// The bytes of a file (gRPC takes PEM text, not paths).
std::optional<std::string> whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

server::server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

expected<std::unique_ptr<server>> server::start(const raft::endpoint& at, std::uint64_t cluster_id,
                                                std::uint64_t member_id, backend b, const tls_files& tls) {
  auto p = std::make_unique<impl>();
  p->a.cluster_id = cluster_id;
  p->a.member_id = member_id;
  p->a.b = std::move(b);
  grpc::ServerBuilder builder;
  // An address taken by another process is an error, not shared (gRPC
  // would otherwise set SO_REUSEPORT and split clients between the two).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  auto credentials = grpc::InsecureServerCredentials();
  if (tls.enabled()) {
    auto cert = whole_file(tls.cert), key = whole_file(tls.key), ca = whole_file(tls.ca);
    if (!cert || !key || (!tls.ca.empty() && !ca)) {
      return make_error(errc::io_error, "client-listen: cannot read the TLS files " + tls.cert + ", " + tls.key +
                                            (tls.ca.empty() ? "" : ", " + tls.ca));
    }
    // A client certificate is asked for when there is a CA to check it
    // against, and required with client-cert-auth (etcd's rule).
    grpc::SslServerCredentialsOptions o(
        tls.client_cert_auth ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
        : tls.ca.empty()     ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                             : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    o.pem_root_certs = ca ? *ca : std::string();
    o.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(o);
  }
  builder.AddListeningPort(at.text(), credentials, &p->port);
  p->services.push_back(make_auth_service(p->a));
  p->services.push_back(make_kv_service(p->a));
  p->services.push_back(make_lease_service(p->a));
  p->services.push_back(make_watch_service(p->a));
  p->services.push_back(make_lock_service(p->a));
  p->services.push_back(make_election_service(p->a));
  p->services.push_back(std::make_unique<cluster_service>(p->a));
  p->services.push_back(std::make_unique<maintenance_service>(p->a));
  for (auto& service : p->services) builder.RegisterService(service.get());
  if (p->a.b.stats) {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
    interceptors.push_back(make_request_metrics(*p->a.b.stats,
                                                {"etcdserverpb.KV", "etcdserverpb.Watch", "etcdserverpb.Lease",
                                                 "etcdserverpb.Cluster", "etcdserverpb.Maintenance",
                                                 "etcdserverpb.Auth", "v3lockpb.Lock", "v3electionpb.Election"}));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  p->grpc_server = builder.BuildAndStart();
  if (!p->grpc_server || p->port == 0) {
    return make_error(errc::io_error, "client-listen: cannot listen on " + at.text());
  }
  return std::unique_ptr<server>(new server(std::move(p)));
}

server::~server() {
  impl_->grpc_server->Shutdown(std::chrono::system_clock::now() + 1s);
  // Every stream and call has ended; what they asked of the backend may
  // still answer (by its deadline) into their state and this api.
  impl_->a.calls->wait();
}

std::uint16_t server::port() const { return static_cast<std::uint16_t>(impl_->port); }

std::shared_ptr<grpc::Channel> server::in_process_channel() const {
  return impl_->grpc_server->InProcessChannel(grpc::ChannelArguments());
}

}  // namespace conclave::etcd
