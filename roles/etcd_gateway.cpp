#include "roles/etcd_gateway.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <cassert>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>

namespace conclave::etcd {

namespace pb = google::protobuf;
using namespace std::chrono_literals;

const std::vector<gateway_route>& gateway_routes() {
  static const std::vector<gateway_route> table = [] {
    std::vector<gateway_route> t;
    // A method of `service` ("package.Service"); its messages are in the same package.
    auto add = [&t](const std::string& path, const std::string& service, const std::string& method,
                    const std::string& request, const std::string& response, streaming kind = streaming::unary) {
      auto package = service.substr(0, service.find('.') + 1);
      t.push_back({path, "/" + service + "/" + method, package + request, package + response, kind});
    };
    const std::string kv = "etcdserverpb.KV", lease = "etcdserverpb.Lease", cluster = "etcdserverpb.Cluster",
                      maintenance = "etcdserverpb.Maintenance", auth = "etcdserverpb.Auth";
    add("kv/range", kv, "Range", "RangeRequest", "RangeResponse");
    add("kv/put", kv, "Put", "PutRequest", "PutResponse");
    add("kv/deleterange", kv, "DeleteRange", "DeleteRangeRequest", "DeleteRangeResponse");
    add("kv/txn", kv, "Txn", "TxnRequest", "TxnResponse");
    add("kv/compaction", kv, "Compact", "CompactionRequest", "CompactionResponse");
    add("watch", "etcdserverpb.Watch", "Watch", "WatchRequest", "WatchResponse", streaming::bidi);
    add("lease/grant", lease, "LeaseGrant", "LeaseGrantRequest", "LeaseGrantResponse");
    add("lease/keepalive", lease, "LeaseKeepAlive", "LeaseKeepAliveRequest", "LeaseKeepAliveResponse",
        streaming::bidi);
    // Revoke, TimeToLive and Leases also answer under /v3/kv/lease/ (etcd 3.4's additional bindings).
    for (const std::string prefix : {"lease/", "kv/lease/"}) {
      add(prefix + "revoke", lease, "LeaseRevoke", "LeaseRevokeRequest", "LeaseRevokeResponse");
      add(prefix + "timetolive", lease, "LeaseTimeToLive", "LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse");
      add(prefix + "leases", lease, "LeaseLeases", "LeaseLeasesRequest", "LeaseLeasesResponse");
    }
    add("cluster/member/add", cluster, "MemberAdd", "MemberAddRequest", "MemberAddResponse");
    add("cluster/member/remove", cluster, "MemberRemove", "MemberRemoveRequest", "MemberRemoveResponse");
    add("cluster/member/update", cluster, "MemberUpdate", "MemberUpdateRequest", "MemberUpdateResponse");
    add("cluster/member/list", cluster, "MemberList", "MemberListRequest", "MemberListResponse");
    add("cluster/member/promote", cluster, "MemberPromote", "MemberPromoteRequest", "MemberPromoteResponse");
    add("maintenance/alarm", maintenance, "Alarm", "AlarmRequest", "AlarmResponse");
    add("maintenance/status", maintenance, "Status", "StatusRequest", "StatusResponse");
    add("maintenance/defragment", maintenance, "Defragment", "DefragmentRequest", "DefragmentResponse");
    // etcd 3.4 binds Hash and HashKV both to /v3/maintenance/hash, and Hash
    // answers there; /v3/maintenance/hashkv is etcd 3.5's (3.4: 404).
    add("maintenance/hash", maintenance, "Hash", "HashRequest", "HashResponse");
    add("maintenance/snapshot", maintenance, "Snapshot", "SnapshotRequest", "SnapshotResponse", streaming::server);
    add("maintenance/transfer-leadership", maintenance, "MoveLeader", "MoveLeaderRequest", "MoveLeaderResponse");
    add("auth/enable", auth, "AuthEnable", "AuthEnableRequest", "AuthEnableResponse");
    add("auth/disable", auth, "AuthDisable", "AuthDisableRequest", "AuthDisableResponse");
    add("auth/authenticate", auth, "Authenticate", "AuthenticateRequest", "AuthenticateResponse");
    add("auth/user/add", auth, "UserAdd", "AuthUserAddRequest", "AuthUserAddResponse");
    add("auth/user/get", auth, "UserGet", "AuthUserGetRequest", "AuthUserGetResponse");
    add("auth/user/list", auth, "UserList", "AuthUserListRequest", "AuthUserListResponse");
    add("auth/user/delete", auth, "UserDelete", "AuthUserDeleteRequest", "AuthUserDeleteResponse");
    add("auth/user/changepw", auth, "UserChangePassword", "AuthUserChangePasswordRequest",
        "AuthUserChangePasswordResponse");
    add("auth/user/grant", auth, "UserGrantRole", "AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse");
    add("auth/user/revoke", auth, "UserRevokeRole", "AuthUserRevokeRoleRequest", "AuthUserRevokeRoleResponse");
    add("auth/role/add", auth, "RoleAdd", "AuthRoleAddRequest", "AuthRoleAddResponse");
    add("auth/role/get", auth, "RoleGet", "AuthRoleGetRequest", "AuthRoleGetResponse");
    add("auth/role/list", auth, "RoleList", "AuthRoleListRequest", "AuthRoleListResponse");
    add("auth/role/delete", auth, "RoleDelete", "AuthRoleDeleteRequest", "AuthRoleDeleteResponse");
    add("auth/role/grant", auth, "RoleGrantPermission", "AuthRoleGrantPermissionRequest",
        "AuthRoleGrantPermissionResponse");
    add("auth/role/revoke", auth, "RoleRevokePermission", "AuthRoleRevokePermissionRequest",
        "AuthRoleRevokePermissionResponse");
    add("lock/lock", "v3lockpb.Lock", "Lock", "LockRequest", "LockResponse");
    add("lock/unlock", "v3lockpb.Lock", "Unlock", "UnlockRequest", "UnlockResponse");
    const std::string election = "v3electionpb.Election";
    add("election/campaign", election, "Campaign", "CampaignRequest", "CampaignResponse");
    add("election/proclaim", election, "Proclaim", "ProclaimRequest", "ProclaimResponse");
    add("election/leader", election, "Leader", "LeaderRequest", "LeaderResponse");
    add("election/observe", election, "Observe", "LeaderRequest", "LeaderResponse", streaming::server);
    add("election/resign", election, "Resign", "ResignRequest", "ResignResponse");
    return t;
  }();
  return table;
}

namespace {

const char* const json_type = "application/json";

// grpc-gateway's HTTP status for a gRPC code, as etcd 3.4's gateway answers
// (its grpc-gateway predates v1.9.5: FAILED_PRECONDITION is 412, not 400).
int http_status_of(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::CANCELLED: return 408;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return 400;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED: return 409;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::FAILED_PRECONDITION: return 412;
    case grpc::StatusCode::UNIMPLEMENTED: return 501;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    default: return 500;  // UNKNOWN, INTERNAL, DATA_LOSS
  }
}

// The reason phrase of each status above (a stream's error names it).
const char* reason_of(int http_status) {
  switch (http_status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 429: return "Too Many Requests";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Internal Server Error";
  }
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// grpc-gateway's error answer.
std::string error_body(const grpc::Status& s) {
  auto message = quoted(s.error_message());
  return "{\"error\":" + message + ",\"message\":" + message + ",\"code\":" + std::to_string(s.error_code()) + "}";
}

// grpc-gateway's error line in a stream.
std::string stream_error(const grpc::Status& s) {
  auto http = http_status_of(s.error_code());
  return "{\"error\":{\"grpc_code\":" + std::to_string(s.error_code()) + ",\"http_code\":" + std::to_string(http) +
         ",\"message\":" + quoted(s.error_message()) + ",\"http_status\":" + quoted(reason_of(http)) + "}}";
}

// The JSON values of `body`, one after another (whitespace between them);
// false when the last one is cut off.
bool split_values(const std::string& body, std::vector<std::string>& values) {
  std::size_t i = 0, n = body.size();
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  for (;;) {
    while (i < n && space(body[i])) ++i;
    if (i >= n) return true;
    auto start = i;
    int depth = 0;
    bool in_string = false;
    do {
      char c = body[i++];
      if (in_string) {
        if (c == '\\') ++i;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        --depth;
      }
    } while (i < n && (depth > 0 || in_string));
    if (depth > 0 || in_string || i > n) return false;
    values.push_back(body.substr(start, i - start));
  }
}

// A new message of type `name` from the protos compiled in; null when that
// type is not there (yet).
std::unique_ptr<pb::Message> new_message(const std::string& name) {
  const auto* type = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(name);
  if (!type) return nullptr;
  const auto* prototype = pb::MessageFactory::generated_factory()->GetPrototype(type);
  return prototype ? std::unique_ptr<pb::Message>(prototype->New()) : nullptr;
}

grpc::ByteBuffer to_buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// A `response` message's JSON as etcd's gateway writes it; none when the
// bytes are not such a message.
std::optional<std::string> to_json(pb::Message& response, const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  if (!b.Dump(&slices).ok()) return std::nullopt;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!response.ParseFromString(bytes)) return std::nullopt;
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;  // zero values left out, enums by name: the defaults
  std::string json;
  if (!pb::util::MessageToJsonString(response, &json, options).ok()) return std::nullopt;
  return json;
}

grpc::Status not_a(const std::string& type) {
  return {grpc::StatusCode::INTERNAL, "conclave: an answer is not a " + type};
}

// gRPC metadata keys are lowercase letters, digits and - _ . (binary "-bin" keys are left out).
bool plain_metadata_key(const std::string& key) {
  if (key.empty() || key.rfind("grpc-", 0) == 0) return false;
  if (key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0) return false;
  for (char c : key) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

}  // namespace

struct gateway::impl {
  grpc::GenericStub stub;
  std::map<std::string, gateway_route> routes;
  std::mutex mutex;
  bool stopping = false;                  // guarded by mutex
  std::set<grpc::ClientContext*> calls;   // in flight; guarded by mutex

  impl(std::shared_ptr<grpc::Channel> channel, const std::vector<gateway_route>& table) : stub(std::move(channel)) {
    for (const auto& r : table) routes[r.path] = r;
  }

  void handle(const httplib::Request& req, httplib::Response& res);
};

namespace {

// One gRPC call of any kind (unary calls too: on the wire, each is a stream
// that carries one request and one answer), driven from the HTTP thread. A
// read is outstanding whenever it waits, also while requests are being sent:
// an in-process channel completes a send only once the other side takes it,
// and a server that answers each request before reading the next would
// otherwise wait for us as we wait for it.
class rpc {
 public:
  enum class got { message, ended, waiting };

  // Carries the request's `Authorization` header and its `Grpc-Metadata-*`
  // headers as metadata, as grpc-gateway does.
  rpc(gateway::impl& g, const std::string& method, const httplib::Request& req) : gateway_(g), method_(method) {
    for (const auto& [name, value] : req.headers) {
      std::string key;
      for (char c : name) key += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      if (key == "authorization") {
        context_.AddMetadata(key, value);
      } else if (key.rfind("grpc-metadata-", 0) == 0 && plain_metadata_key(key.substr(14))) {
        context_.AddMetadata(key.substr(14), value);
      }
    }
    std::lock_guard<std::mutex> guard(gateway_.mutex);
    gateway_.calls.insert(&context_);
    if (gateway_.stopping) context_.TryCancel();
  }

  // Starts the call; `requests` are sent in turn as next() waits, then the
  // sending side is closed (as grpc-gateway does once it has read the body).
  void start(std::vector<grpc::ByteBuffer> requests) {
    call_ = gateway_.stub.PrepareCall(&context_, method_, &queue_);
    call_->StartCall(tag(op::start));
    void* t = nullptr;
    bool ok = false;
    bool got_event = queue_.Next(&t, &ok);
    assert(got_event && t == tag(op::start));
    (void)got_event;
    if (!ok) {
      // Not started (cancelled): nothing to send or read; Finish has the status.
      sending_closed_ = reading_over_ = true;
      return;
    }
    to_send_.assign(std::make_move_iterator(requests.begin()), std::make_move_iterator(requests.end()));
    send_next();
  }

  // The next answer into `out`; or the end of the call (status()); or, after
  // `wait` (none: no limit), nothing yet.
  got next(grpc::ByteBuffer* out, std::optional<std::chrono::milliseconds> wait) {
    assert(call_);
    auto deadline = std::chrono::system_clock::now() + wait.value_or(std::chrono::milliseconds(0));
    for (;;) {
      if (ended_) return got::ended;
      if (!reading_ && !reading_over_) {
        call_->Read(&buffer_, tag(op::read));
        reading_ = true;
      }
      // Finish once nothing is outstanding.
      if (reading_over_ && !sending_ && !finishing_) {
        call_->Finish(&status_, tag(op::finish));
        finishing_ = true;
      }
      void* t = nullptr;
      bool ok = false;
      if (wait) {
        if (queue_.AsyncNext(&t, &ok, deadline) == grpc::CompletionQueue::TIMEOUT) return got::waiting;
      } else {
        bool got_event = queue_.Next(&t, &ok);
        assert(got_event);
        (void)got_event;
      }
      switch (static_cast<op>(reinterpret_cast<std::intptr_t>(t))) {
        case op::write:
          sending_ = false;
          if (ok) {
            send_next();
          } else {
            sending_closed_ = true;  // the call is over: its status comes with Finish
          }
          break;
        case op::writes_done:
          sending_ = false;
          break;
        case op::read:
          reading_ = false;
          if (ok) {
            *out = std::move(buffer_);
            return got::message;
          }
          reading_over_ = true;
          break;
        case op::finish:
          finishing_ = false;
          ended_ = true;
          break;
        default:
          assert(false);
      }
    }
  }

  const grpc::Status& status() const { return status_; }

  // Ends the call (its client left); the server sees it cancelled.
  void cancel() { context_.TryCancel(); }

  ~rpc() {
    if (call_) {
      context_.TryCancel();  // (no effect on a call that has ended)
      grpc::ByteBuffer ignored;
      while (next(&ignored, std::nullopt) != got::ended) {
      }
    }
    call_.reset();
    queue_.Shutdown();
    void* t = nullptr;
    bool ok = false;
    while (queue_.Next(&t, &ok)) {
    }
    std::lock_guard<std::mutex> guard(gateway_.mutex);
    gateway_.calls.erase(&context_);
  }

 private:
  // Each outstanding operation's tag names it: at most one send (write or
  // writes_done), one read and one finish at a time.
  enum class op : std::intptr_t { start = 1, write, writes_done, read, finish };
  static void* tag(op o) { return reinterpret_cast<void*>(static_cast<std::intptr_t>(o)); }

  void send_next() {
    if (sending_closed_) return;
    if (to_send_.empty()) {
      call_->WritesDone(tag(op::writes_done));
      sending_closed_ = true;
    } else {
      call_->Write(to_send_.front(), tag(op::write));
      to_send_.pop_front();
    }
    sending_ = true;
  }

  gateway::impl& gateway_;
  std::string method_;
  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  std::deque<grpc::ByteBuffer> to_send_;
  grpc::ByteBuffer buffer_;
  grpc::Status status_;
  bool sending_ = false, sending_closed_ = false;  // a send is outstanding; nothing more will be sent
  bool reading_ = false, reading_over_ = false;    // a read is outstanding; no answer will come
  bool finishing_ = false, ended_ = false;
};

}  // namespace

void gateway::impl::handle(const httplib::Request& req, httplib::Response& res) {
  auto found = routes.find(req.matches[2].str());
  if (found == routes.end()) {
    res.status = 404;
    res.set_content("Not Found\n", "text/plain; charset=utf-8");
    return;
  }
  if (req.method != "POST") {
    res.status = 405;
    res.set_content("Method Not Allowed\n", "text/plain; charset=utf-8");
    return;
  }
  const auto& route = found->second;
  auto fail = [&res](const grpc::Status& s) {
    res.status = http_status_of(s.error_code());
    res.set_content(error_body(s), json_type);
  };
  {
    std::lock_guard<std::mutex> guard(mutex);
    if (stopping) return fail({grpc::StatusCode::UNAVAILABLE, "conclave: this master is stopping"});
  }
  auto request = new_message(route.request);
  std::shared_ptr<pb::Message> response = new_message(route.response);
  if (!request || !response) {
    return fail({grpc::StatusCode::UNIMPLEMENTED, "conclave: " + route.method + " is not served yet"});
  }
  // One request, or (bidi) each JSON value of the body in turn. A body that
  // does not decode is INVALID_ARGUMENT for one request and UNKNOWN in a
  // request stream, as etcd's gateway answers.
  bool streamed = route.kind == streaming::bidi;
  auto bad_body = [&](const std::string& why) {
    fail({streamed ? grpc::StatusCode::UNKNOWN : grpc::StatusCode::INVALID_ARGUMENT, why});
  };
  std::vector<std::string> values;
  if (!split_values(req.body, values)) return bad_body("unexpected EOF");
  if (!streamed) values.resize(1, "{}");  // an empty body is an empty request; more than one value: the first
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  std::vector<grpc::ByteBuffer> requests;
  for (const auto& v : values) {
    request->Clear();
    if (auto parsed = pb::util::JsonStringToMessage(v, request.get(), options); !parsed.ok()) {
      return bad_body(std::string(parsed.message()));
    }
    requests.push_back(to_buffer(request->SerializeAsString()));
  }

  auto call = std::make_shared<rpc>(*this, route.method, req);
  call->start(std::move(requests));
  grpc::ByteBuffer got;
  if (route.kind == streaming::unary) {
    std::optional<std::string> json;
    if (call->next(&got, std::nullopt) == rpc::got::message) {
      json = to_json(*response, got);
      while (call->next(&got, std::nullopt) != rpc::got::ended) {
      }
    }
    if (!call->status().ok()) return fail(call->status());
    if (!json) return fail(not_a(route.response));
    res.status = 200;
    res.set_content(*json, json_type);
    return;
  }
  // A stream's first answer or its end sets the HTTP status, as grpc-gateway's
  // does: a stream that fails before its first answer (an unimplemented
  // method) is an error answer. One whose first answer takes longer than a
  // second is answered 200, and its client watched for leaving from then on.
  auto first = call->next(&got, 1s);
  if (first == rpc::got::ended) {
    if (!call->status().ok()) return fail(call->status());
    res.status = 200;
    res.set_content("", json_type);
    return;
  }
  std::optional<grpc::ByteBuffer> held;
  if (first == rpc::got::message) held = std::move(got);
  res.status = 200;
  auto type = route.response;
  res.set_chunked_content_provider(json_type, [call, response, held, type](std::size_t, httplib::DataSink& sink) mutable {
    for (;;) {
      grpc::ByteBuffer b;
      auto next = held ? rpc::got::message : call->next(&b, 1s);
      if (held) {
        b = std::move(*held);
        held.reset();
      }
      switch (next) {
        case rpc::got::message: {
          if (auto json = to_json(*response, b)) {
            auto out = "{\"result\":" + *json + "}\n";
            return sink.write(out.data(), out.size());
          }
          auto e = stream_error(not_a(type));
          sink.write(e.data(), e.size());
          sink.done();
          return true;  // (the rpc cancels the call)
        }
        case rpc::got::ended: {
          if (!call->status().ok()) {
            auto e = stream_error(call->status());
            sink.write(e.data(), e.size());
          }
          sink.done();
          return true;
        }
        case rpc::got::waiting:
          // The client left (etcd3gw ends a watch by closing its socket): the
          // call ends with the answer (the rpc cancels it).
          if (!sink.is_writable()) return false;
          break;
      }
    }
  });
}

gateway::gateway(std::shared_ptr<grpc::Channel> channel, std::vector<gateway_route> table)
    : impl_(std::make_unique<impl>(std::move(channel), table)) {}

gateway::~gateway() { stop(); }

http_listener::routes gateway::routes() {
  return [raw = impl_.get()](httplib::Server& s) {
    // etcd 3.4 serves its gateway under /v3 and /v3beta (not /v3alpha).
    const std::string pattern = R"(/v3(beta)?/(.+))";
    auto handler = [raw](const httplib::Request& req, httplib::Response& res) { raw->handle(req, res); };
    s.Post(pattern, handler);
    s.Get(pattern, handler);
    s.Put(pattern, handler);
    s.Delete(pattern, handler);
    s.Patch(pattern, handler);
  };
}

void gateway::stop() {
  std::lock_guard<std::mutex> guard(impl_->mutex);
  impl_->stopping = true;
  for (auto* c : impl_->calls) c->TryCancel();
}

}  // namespace conclave::etcd
