// etcd's JSON gateway on http-listen (roles/etcd_gateway.hpp): first against
// a fake gRPC server in this process (the JSON mapping, streams, errors, a
// client that leaves, stopping), then curl and python3-etcd3gw against three
// masters started with client-listen and http-listen.
#include <doctest/doctest.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>
#include <httplib.h>

#include <atomic>
#include <map>

#include "roles/config.hpp"
#include "roles/etcd_api.hpp"
#include "roles/etcd_gateway.hpp"
#include "roles/http_listener.hpp"
#include "roles/node.hpp"
#include "schema/etcd/rpc.grpc.pb.h"
#include "test/etcd_masters.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;
namespace pb = google::protobuf;

namespace {

// --- the gateway against a fake gRPC server -------------------------------------------

using range_request = etcdserverpb::RangeRequest;
using range_response = etcdserverpb::RangeResponse;

// Methods of a test service, with etcd's Range messages:
//   Echo   (unary): key, revision, limit and keys_only back as kvs[0].key,
//          kvs[0].create_revision, count and more; the Authorization metadata as kvs[0].value
//   Fail   (unary): fails with code `limit` and message `key`
//   Chat   (bidi): one answer per request (its key)
//   Break  (server stream): one answer, then fails (FAILED_PRECONDITION)
//   Hang   (server stream): one answer, then waits until the call is cancelled
struct fake_service final : grpc::Service {
  std::atomic<int> hanging{0}, cancelled{0};

  fake_service() {
    using namespace grpc::internal;
    AddMethod(new RpcServiceMethod("/test.Gateway/Echo", RpcMethod::NORMAL_RPC,
                                   new RpcMethodHandler<fake_service, range_request, range_response>(
                                       [](fake_service*, grpc::ServerContext* ctx, const range_request* in,
                                          range_response* out) {
                                         auto* kv = out->add_kvs();
                                         kv->set_key(in->key());
                                         kv->set_create_revision(in->revision());
                                         auto auth = ctx->client_metadata().find("authorization");
                                         if (auth != ctx->client_metadata().end()) {
                                           kv->set_value(std::string(auth->second.data(), auth->second.size()));
                                         }
                                         out->set_count(in->limit());
                                         out->set_more(in->keys_only());
                                         return grpc::Status::OK;
                                       },
                                       this)));
    AddMethod(new RpcServiceMethod(
        "/test.Gateway/Fail", RpcMethod::NORMAL_RPC,
        new RpcMethodHandler<fake_service, range_request, range_response>(
            [](fake_service*, grpc::ServerContext*, const range_request* in, range_response*) {
              return grpc::Status(static_cast<grpc::StatusCode>(in->limit()), in->key());
            },
            this)));
    AddMethod(new RpcServiceMethod(
        "/test.Gateway/Chat", RpcMethod::BIDI_STREAMING,
        new BidiStreamingHandler<fake_service, range_request, range_response>(
            [](fake_service*, grpc::ServerContext*, grpc::ServerReaderWriter<range_response, range_request>* rw) {
              range_request in;
              while (rw->Read(&in)) {
                range_response out;
                out.add_kvs()->set_key(in.key());
                rw->Write(out);
              }
              return grpc::Status::OK;
            },
            this)));
    AddMethod(new RpcServiceMethod(
        "/test.Gateway/Break", RpcMethod::SERVER_STREAMING,
        new ServerStreamingHandler<fake_service, range_request, range_response>(
            [](fake_service*, grpc::ServerContext*, const range_request*, grpc::ServerWriter<range_response>* w) {
              range_response out;
              out.set_count(1);
              w->Write(out);
              return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "broken \"here\"");
            },
            this)));
    AddMethod(new RpcServiceMethod(
        "/test.Gateway/Hang", RpcMethod::SERVER_STREAMING,
        new ServerStreamingHandler<fake_service, range_request, range_response>(
            [](fake_service* self, grpc::ServerContext* ctx, const range_request*,
               grpc::ServerWriter<range_response>* w) {
              range_response out;
              out.set_count(1);
              ++self->hanging;  // (before the write: its client may read it before the handler goes on)
              w->Write(out);
              while (!ctx->IsCancelled()) std::this_thread::sleep_for(5ms);
              ++self->cancelled;
              return grpc::Status::CANCELLED;
            },
            this)));
  }
};

std::vector<etcd::gateway_route> test_routes() {
  const std::string in = "etcdserverpb.RangeRequest", out = "etcdserverpb.RangeResponse";
  using etcd::streaming;
  return {
      {"t/echo", "/test.Gateway/Echo", in, out, streaming::unary},
      {"t/fail", "/test.Gateway/Fail", in, out, streaming::unary},
      {"t/chat", "/test.Gateway/Chat", in, out, streaming::bidi},
      {"t/break", "/test.Gateway/Break", in, out, streaming::server},
      {"t/hang", "/test.Gateway/Hang", in, out, streaming::server},
      {"t/missing", "/test.Gateway/Missing", in, out, streaming::unary},
      {"t/missing-stream", "/test.Gateway/Missing", in, out, streaming::bidi},
      {"t/no-type", "/test.Gateway/Echo", "etcdserverpb.NoSuchRequest", out, streaming::unary},
      {"t/no-type-stream", "/test.Gateway/Chat", "etcdserverpb.NoSuchRequest", out, streaming::bidi},
  };
}

// The fake server, the gateway onto it (in-process channel) and an HTTP listener on any port.
struct fake_gateway {
  fake_service service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<etcd::gateway> gateway;
  std::unique_ptr<http_listener> http;

  fake_gateway() {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    REQUIRE(server);
    gateway = std::make_unique<etcd::gateway>(server->InProcessChannel(grpc::ChannelArguments()), test_routes());
    auto h = http_listener::start(raft::endpoint{"127.0.0.1", 0}, {gateway->routes()});
    REQUIRE_MESSAGE(h, h.error().message());
    http = std::move(*h);
  }

  ~fake_gateway() {
    gateway->stop();
    http.reset();
    gateway.reset();
    server->Shutdown(std::chrono::system_clock::now() + 1s);
  }

  // POSTs `body` to `path`: the HTTP status and body (-1: no answer).
  std::pair<int, std::string> post(const std::string& path, const std::string& body,
                                   const httplib::Headers& headers = {}) {
    httplib::Client c("127.0.0.1", http->port());
    c.set_read_timeout(20, 0);
    auto r = c.Post(path.c_str(), headers, body, "application/json");
    if (!r) return {-1, httplib::to_string(r.error())};
    return {r->status, r->body};
  }
};

// A connection to 127.0.0.1:`port` that has sent a POST of `body` to `path`
// (reads time out after 20 s).
int raw_post(std::uint16_t port, const std::string& path, const std::string& body) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto request = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  return fd;
}

// Reads from `fd` until `text` has come (true) or the connection ends or times out (false).
bool read_until(int fd, const std::string& text, std::string& got) {
  char buf[4096];
  while (got.find(text) == std::string::npos) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

template <class F>
bool eventually(F f, std::chrono::milliseconds timeout = 20s) {
  for (auto until = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < until;) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

}  // namespace

TEST_CASE("the gateway's table names each method with the request, response and streaming its proto declares") {
  const auto* pool = pb::DescriptorPool::generated_pool();
  int checked = 0;
  for (const auto& r : etcd::gateway_routes()) {
    // "/package.Service/Method" -> package.Service.Method
    auto slash = r.method.find('/', 1);
    REQUIRE_MESSAGE(slash != std::string::npos, r.method);
    const auto* m = pool->FindMethodByName(r.method.substr(1, slash - 1) + "." + r.method.substr(slash + 1));
    if (!m) continue;  // not in the protos yet
    CHECK_MESSAGE(m->input_type()->full_name() == r.request, r.path);
    CHECK_MESSAGE(m->output_type()->full_name() == r.response, r.path);
    auto kind = m->client_streaming() ? etcd::streaming::bidi
                : m->server_streaming() ? etcd::streaming::server
                                        : etcd::streaming::unary;
    CHECK_MESSAGE(kind == r.kind, r.path);
    ++checked;
  }
  CHECK(checked >= 8);  // KV, Cluster's MemberList, Maintenance's Status and MoveLeader at least
}

TEST_CASE("gateway JSON: requests take proto or lowerCamel names, answers use proto names, int64 as strings, bytes as base64") {
  fake_gateway g;
  // "a" is YQ==; unknown fields are ignored, as etcd's gateway does.
  auto [status, body] = g.post("/v3/t/echo", R"({"key":"YQ==","revision":"5","limit":7,"keysOnly":true,"bogus":1})");
  CHECK(status == 200);
  CHECK(body == R"({"kvs":[{"key":"YQ==","create_revision":"5"}],"more":true,"count":"7"})");
  std::tie(status, body) = g.post("/v3/t/echo", R"({"key":"YQ==","keys_only":false,"limit":"0"})");
  CHECK(status == 200);
  CHECK(body == R"({"kvs":[{"key":"YQ=="}]})");  // zero values left out
  // An empty body is an empty request; /v3beta serves the same paths.
  std::tie(status, body) = g.post("/v3beta/t/echo", "");
  CHECK(status == 200);
  CHECK(body == R"({"kvs":[{}]})");
  // Authorization reaches the server as gRPC metadata (etcd reads its token there).
  std::tie(status, body) = g.post("/v3/t/echo", "{}", {{"Authorization", "tok"}});
  CHECK(body == R"({"kvs":[{"value":"dG9r"}]})");
}

TEST_CASE("gateway errors are grpc-gateway's JSON with its HTTP status for the code") {
  fake_gateway g;
  auto fail = [&](grpc::StatusCode code, const std::string& message) {
    range_request r;
    r.set_key(message);
    r.set_limit(code);
    std::string json;
    REQUIRE(pb::util::MessageToJsonString(r, &json).ok());
    return g.post("/v3/t/fail", json);
  };
  auto [status, body] = fail(grpc::StatusCode::INVALID_ARGUMENT, "etcdserver: key is not provided");
  CHECK(status == 400);
  CHECK(body == R"({"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3})");
  std::tie(status, body) = fail(grpc::StatusCode::FAILED_PRECONDITION, "a \"quoted\" \\ word");
  CHECK(status == 412);  // etcd 3.4's grpc-gateway (later ones answer 400)
  CHECK(body == R"({"error":"a \"quoted\" \\ word","message":"a \"quoted\" \\ word","code":9})");
  CHECK(fail(grpc::StatusCode::NOT_FOUND, "etcdserver: requested lease not found").first == 404);
  CHECK(fail(grpc::StatusCode::OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted").first == 400);
  CHECK(fail(grpc::StatusCode::UNAVAILABLE, "etcdserver: no leader").first == 503);
  CHECK(fail(grpc::StatusCode::RESOURCE_EXHAUSTED, "etcdserver: too many requests").first == 429);
  CHECK(fail(grpc::StatusCode::PERMISSION_DENIED, "etcdserver: permission denied").first == 403);
  CHECK(fail(grpc::StatusCode::UNAUTHENTICATED, "etcdserver: invalid auth token").first == 401);
  CHECK(fail(grpc::StatusCode::DEADLINE_EXCEEDED, "context deadline exceeded").first == 504);
  // A body that is not JSON: INVALID_ARGUMENT for one request, UNKNOWN in a request stream (as etcd's gateway).
  std::tie(status, body) = g.post("/v3/t/echo", R"({"key":"YQ==")");
  CHECK(status == 400);
  CHECK(body.find(R"("code":3)") != std::string::npos);
  std::tie(status, body) = g.post("/v3/t/chat", R"({"key":"YQ=="} {"key")");
  CHECK(status == 500);
  CHECK(body.find(R"("code":2)") != std::string::npos);
  // Only POST; an unknown path is not found.
  httplib::Client c("127.0.0.1", g.http->port());
  auto got = c.Get("/v3/t/echo");
  REQUIRE(got);
  CHECK(got->status == 405);
  CHECK(g.post("/v3/t/nothing", "{}").first == 404);
  CHECK(g.post("/v3alpha/t/echo", "{}").first == 404);  // etcd 3.4 no longer serves /v3alpha
}

TEST_CASE("a method the server does not implement, or whose messages are not in the protos yet, answers 501 with code 12") {
  fake_gateway g;
  for (const auto* path : {"/v3/t/missing", "/v3/t/missing-stream", "/v3/t/no-type", "/v3/t/no-type-stream"}) {
    auto [status, body] = g.post(path, "{}");
    CHECK_MESSAGE(status == 501, path);
    CHECK_MESSAGE(body.find(R"("code":12})") != std::string::npos, path << ": " << body);
  }
}

TEST_CASE("a gateway stream answers one {\"result\": ...} line per message; each JSON value of a bidi body is a request") {
  fake_gateway g;
  auto [status, body] = g.post("/v3/t/chat", R"({"key":"YQ=="}{"key":"Yg=="} {"key":"Yw=="})");
  CHECK(status == 200);
  CHECK(body == "{\"result\":{\"kvs\":[{\"key\":\"YQ==\"}]}}\n"
                "{\"result\":{\"kvs\":[{\"key\":\"Yg==\"}]}}\n"
                "{\"result\":{\"kvs\":[{\"key\":\"Yw==\"}]}}\n");
  // A stream that fails once it has begun ends with grpc-gateway's error line.
  std::tie(status, body) = g.post("/v3/t/break", "{}");
  CHECK(status == 200);
  CHECK(body == "{\"result\":{\"count\":\"1\"}}\n"
                R"({"error":{"grpc_code":9,"http_code":412,"message":"broken \"here\"","http_status":"Precondition Failed"}})");
  // The answer is chunked, never compressed (a gzip stream would hold back events).
  int fd = raw_post(g.http->port(), "/v3/t/chat", R"({"key":"YQ=="})");
  std::string got;
  CHECK(read_until(fd, "\r\n0\r\n\r\n", got));
  ::close(fd);
  CHECK(got.find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(got.find("Content-Encoding") == std::string::npos);
  httplib::Client c("127.0.0.1", g.http->port());
  auto gz = c.Post("/v3/t/echo", {{"Accept-Encoding", "gzip, deflate"}}, "{}", "application/json");
  REQUIRE(gz);
  CHECK_FALSE(gz->has_header("Content-Encoding"));
}

TEST_CASE("a gateway stream whose HTTP client leaves ends its gRPC call (a watch is not left behind)") {
  fake_gateway g;
  int fd = raw_post(g.http->port(), "/v3/t/hang", "{}");
  std::string got;
  REQUIRE(read_until(fd, "{\"result\":{\"count\":\"1\"}}\n", got));
  CHECK(g.service.hanging == 1);
  CHECK(g.service.cancelled == 0);
  ::close(fd);
  CHECK(eventually([&] { return g.service.cancelled == 1; }));
}

TEST_CASE("stopping the gateway ends its streams and refuses new requests with UNAVAILABLE") {
  fake_gateway g;
  int fd = raw_post(g.http->port(), "/v3/t/hang", "{}");
  std::string got;
  REQUIRE(read_until(fd, "{\"result\":{\"count\":\"1\"}}\n", got));
  g.gateway->stop();
  // The stream ends (with the cancelled call's error line) and the server saw the call cancelled.
  CHECK(read_until(fd, "\r\n0\r\n\r\n", got));
  CHECK(got.find(R"("grpc_code":1,)") != std::string::npos);
  ::close(fd);
  CHECK(eventually([&] { return g.service.cancelled == 1; }));
  auto [status, body] = g.post("/v3/t/echo", "{}");
  CHECK(status == 503);
  CHECK(body.find(R"("code":14})") != std::string::npos);
}

TEST_CASE("http-listen: masters only, also without client-listen; port 0 takes any port; a taken address is refused") {
  settings base = {{"role", "master"}, {"id", "1"}, {"peers", "1=127.0.0.1:7001"}, {"cluster-id", "c"},
                   {"data-dir", "/tmp/unused"}};
  auto s = base;
  // Without the etcd API: metrics and health only (no JSON gateway).
  s["http-listen"] = "127.0.0.1:8080";
  auto c = parse_settings(s);
  REQUIRE_MESSAGE(c, c.error().message());
  CHECK(c->http_listen);
  CHECK_FALSE(c->client_listen);
  s["client-listen"] = "127.0.0.1:2379";
  s["http-listen"] = "127.0.0.1:0";
  c = parse_settings(s);
  REQUIRE_MESSAGE(c, c.error().message());
  REQUIRE(c->http_listen);
  CHECK(c->http_listen->port == 0);
  s["http-listen"] = "127.0.0.1";
  CHECK_FALSE(parse_settings(s));
  auto w = parse_settings({{"role", "worker"}, {"peers", "1=127.0.0.1:7001"}, {"cluster-id", "c"},
                           {"http-listen", "127.0.0.1:8080"}});
  REQUIRE_FALSE(w);
  CHECK(w.error().message().find("http-listen: only masters") != std::string::npos);

  // The address is taken by someone else: the master does not start (and stops what it started).
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  auto taken = http_listener::start(raft::endpoint{"127.0.0.1", 0}, {});
  REQUIRE(taken);
  auto with = base;
  with["peers"] = "1=127.0.0.1:" + std::to_string(free_port());
  with["data-dir"] = dir.path() + "/m1";
  with["client-listen"] = "127.0.0.1:0";
  with["http-listen"] = "127.0.0.1:" + std::to_string((*taken)->port());
  auto refused = node::start(sys, with);
  REQUIRE_FALSE(refused.has_value());
  CHECK_MESSAGE(refused.error().message().find("http-listen: cannot listen on") != std::string::npos,
                refused.error().message());
}

// --- curl and python3-etcd3gw against real masters -------------------------------------

namespace {

std::string curl_binary() { return program("CONCLAVE_CURL", "/usr/bin/curl"); }


// `json` parsed as a message of type M (etcd's answer), or a failed check.
template <class M>
M parsed(const std::string& json) {
  M m;
  auto st = pb::util::JsonStringToMessage(json, &m);
  CHECK_MESSAGE(st.ok(), json);
  return m;
}

// Three masters, each with the etcd API and its JSON gateway on any free
// ports, which they log.
struct gateway_cluster : etcd_masters {
  int runs = 0;

  gateway_cluster() : etcd_masters({}, true) {}

  // POSTs `body` to `path` at master `id` with curl: the HTTP status (0: no
  // answer) and the body.
  std::pair<int, std::string> post(std::uint64_t id, const std::string& path, const std::string& body) {
    auto name = "curl-" + std::to_string(++runs);
    auto pid = c->spawn({curl_binary(), "-s", "-S", "-m", "30", "-o", c->path(name + ".body"), "-w", "%{http_code}",
                         "-X", "POST", "--data-binary", body, "http://" + http[id] + path},
                        name + ".log");
    REQUIRE(c->wait_exit(pid, 60s).has_value());
    return {std::atoi(file_text(c->path(name + ".log")).c_str()), file_text(c->path(name + ".body"))};
  }

  // Runs test/etcd_clients/python_etcd3gw.py AREA against master `id`: its exit code and output.
  std::pair<int, std::string> etcd3gw(std::uint64_t id, const std::string& area, const std::string& arg = "") {
    auto script = program("CONCLAVE_ETCD_CLIENTS", "test/etcd_clients") + std::string("/python_etcd3gw.py");
    auto log = "etcd3gw-" + area + ".log";
    std::vector<std::string> argv{"/usr/bin/python3", script, http[id], area};
    if (!arg.empty()) argv.push_back(arg);
    auto pid = c->spawn(argv, log);
    auto status = c->wait_exit(pid, 120s);
    auto out = file_text(c->path(log));
    REQUIRE_MESSAGE(status.has_value(), out);
    return {WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, out};
  }

  std::string logs() { return c->log_of(1) + c->log_of(2) + c->log_of(3); }
};

bool have_curl() { return ::access(curl_binary().c_str(), X_OK) == 0; }
bool have_etcd3gw() { return std::system("/usr/bin/python3 -c 'import etcd3gw' >/dev/null 2>&1") == 0; }

// etcd3gw's exit code when the gateway answers that a method is not implemented yet.
const int not_served = 3;

}  // namespace

TEST_CASE("curl puts, gets, lists by prefix and deletes through the JSON gateway of any master, in etcd's JSON") {
  if (!have_curl()) CONCLAVE_SKIP("no curl");
  gateway_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;

  // A put through a follower; the answer's header as etcd writes it.
  auto [status, body] = e.post(follower, "/v3/kv/put",
                               R"({"key":")" + base64("gw/a") + R"(","value":")" + base64(std::string("v\x00\xff", 3)) + "\"}");
  REQUIRE_MESSAGE(status == 200, body << e.logs());
  auto put = parsed<etcdserverpb::PutResponse>(body);
  CHECK(put.header().revision() > 0);
  CHECK(put.header().member_id() == etcd::member_number(e.c->cluster_id, follower));
  CHECK(body.find(R"("cluster_id":")" + std::to_string(etcd::cluster_number(e.c->cluster_id)) + "\"") !=
        std::string::npos);
  CHECK(body.find(R"("revision":")" + std::to_string(put.header().revision()) + "\"") != std::string::npos);

  std::tie(status, body) = e.post(*leader, "/v3/kv/range", R"({"key":")" + base64("gw/a") + "\"}");
  CHECK(status == 200);
  auto one = parsed<etcdserverpb::RangeResponse>(body);
  REQUIRE(one.kvs_size() == 1);
  CHECK(one.kvs(0).value() == std::string("v\x00\xff", 3));
  CHECK(one.kvs(0).mod_revision() == put.header().revision());
  // Proto field names, 64-bit numbers as strings, bytes as base64.
  CHECK(body.find(R"("kvs":[{"key":")" + base64("gw/a") + R"(","create_revision":")") != std::string::npos);
  CHECK(body.find(R"("value":")" + base64(std::string("v\x00\xff", 3)) + "\"") != std::string::npos);
  CHECK(body.find(R"("count":"1")") != std::string::npos);

  for (const auto& k : {"gw/b", "gw/c", "gx"}) REQUIRE(e.post(follower, "/v3/kv/put", R"({"key":")" + base64(k) + "\"}").first == 200);
  // A prefix: [gw/, gw0); lowerCamel names are taken too; /v3beta is the same gateway.
  std::tie(status, body) = e.post(follower, "/v3beta/kv/range",
                                  R"({"key":")" + base64("gw/") + R"(","rangeEnd":")" + base64("gw0") + R"(","limit":2})");
  CHECK(status == 200);
  auto listed = parsed<etcdserverpb::RangeResponse>(body);
  REQUIRE(listed.kvs_size() == 2);
  CHECK(listed.kvs(0).key() == "gw/a");
  CHECK(listed.kvs(1).key() == "gw/b");
  CHECK(listed.more());
  CHECK(listed.count() == 3);

  std::tie(status, body) = e.post(*leader, "/v3/kv/deleterange",
                                  R"({"key":")" + base64("gw/") + R"(","range_end":")" + base64("gw0") + R"(","prev_kv":true})");
  CHECK(status == 200);
  auto deleted = parsed<etcdserverpb::DeleteRangeResponse>(body);
  CHECK(deleted.deleted() == 3);
  CHECK(deleted.prev_kvs_size() == 3);
  std::tie(status, body) = e.post(follower, "/v3/kv/range",
                                  R"({"key":")" + base64("g") + R"(","range_end":")" + base64("h") + "\"}");
  auto rest = parsed<etcdserverpb::RangeResponse>(body);
  REQUIRE(rest.kvs_size() == 1);
  CHECK(rest.kvs(0).key() == "gx");

  // etcd's error JSON: an empty key.
  std::tie(status, body) = e.post(follower, "/v3/kv/range", "{}");
  CHECK(status == 400);
  CHECK(body == R"({"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3})");
}

TEST_CASE("curl reads the status and the member list through the JSON gateway") {
  if (!have_curl()) CONCLAVE_SKIP("no curl");
  gateway_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  for (std::uint64_t s = 1; s <= 3; ++s) {
    // Every master names the leader (a follower once it has heard from it).
    std::string body;
    CHECK_MESSAGE(eventually([&] {
                    int status = 0;
                    std::tie(status, body) = e.post(s, "/v3/maintenance/status", "{}");
                    return status == 200 && parsed<etcdserverpb::StatusResponse>(body).leader() ==
                                                etcd::member_number(e.c->cluster_id, *leader);
                  }),
                  body);
    auto st = parsed<etcdserverpb::StatusResponse>(body);
    CHECK(st.version() == "3.4.0");
    CHECK(st.raftindex() > 0);
    // StatusResponse's proto names are lowerCamel themselves.
    CHECK(body.find(R"("raftIndex":")") != std::string::npos);
    CHECK(body.find(R"("dbSize":")") != std::string::npos);
  }
  auto [status, body] = e.post(2, "/v3/cluster/member/list", "{}");
  REQUIRE(status == 200);
  auto members = parsed<etcdserverpb::MemberListResponse>(body);
  CHECK(members.members_size() == 3);
  CHECK(body.find(R"("peerURLs":["http://)" + e.c->at(1).address.text() + "\"]") != std::string::npos);
  CHECK(body.find(R"("ID":")" + std::to_string(etcd::member_number(e.c->cluster_id, 3)) + "\"") != std::string::npos);
}

TEST_CASE("python3-etcd3gw (Debian's JSON-gateway client) puts, gets, lists, deletes and reads the status through a follower") {
  if (!have_etcd3gw()) CONCLAVE_SKIP("no python3-etcd3gw under /usr/bin/python3");
  gateway_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  auto [code, out] = e.etcd3gw(*leader % 3 + 1, "kv");
  CHECK_MESSAGE(code == 0, out << e.logs());
  CHECK(out.find("FAIL") == std::string::npos);
  CHECK(out.find("members 3") != std::string::npos);
}

TEST_CASE("transactions through the JSON gateway: curl and python3-etcd3gw") {
  if (!have_curl()) CONCLAVE_SKIP("no curl");
  gateway_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;
  auto txn = R"({"compare":[{"key":")" + base64("tx") + R"(","result":"EQUAL","target":"CREATE","create_revision":0}],)" +
             R"("success":[{"request_put":{"key":")" + base64("tx") + R"(","value":")" + base64("1") + R"("}}],)" +
             R"("failure":[{"request_range":{"key":")" + base64("tx") + R"("}}]})";
  auto [status, body] = e.post(follower, "/v3/kv/txn", txn);
  if (status == 501 && body.find(R"("code":12})") != std::string::npos) CONCLAVE_SKIP("Txn not served yet");
  REQUIRE_MESSAGE(status == 200, body);
  CHECK(body.find(R"("succeeded":true)") != std::string::npos);
  CHECK(body.find(R"("response_put":)") != std::string::npos);
  std::tie(status, body) = e.post(*leader, "/v3/kv/txn", txn);
  CHECK(status == 200);
  CHECK(body.find(R"("succeeded")") == std::string::npos);  // false: left out
  CHECK(body.find(R"("response_range":{)") != std::string::npos);
  CHECK(body.find(R"("value":")" + base64("1") + "\"") != std::string::npos);
  if (!have_etcd3gw()) CONCLAVE_SKIP("no python3-etcd3gw under /usr/bin/python3");
  auto [code, out] = e.etcd3gw(follower, "txn");
  if (code == not_served) CONCLAVE_SKIP(out);
  CHECK_MESSAGE(code == 0, out << e.logs());
}

TEST_CASE("leases through the JSON gateway: grant, keep-alive, time to live with keys, revoke") {
  if (!have_curl()) CONCLAVE_SKIP("no curl");
  gateway_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;
  auto [status, body] = e.post(follower, "/v3/lease/grant", R"({"TTL":30})");
  if (status == 501 && body.find(R"("code":12})") != std::string::npos) CONCLAVE_SKIP("Lease not served yet");
  REQUIRE_MESSAGE(status == 200, body);
  // {"header":...,"ID":"<int64 as a string>","TTL":"30"}
  auto id_at = body.find(R"("ID":")");
  REQUIRE_MESSAGE(id_at != std::string::npos, body);
  auto id = std::strtoll(body.c_str() + id_at + 6, nullptr, 10);
  CHECK(id > 0);
  CHECK(body.find(R"("TTL":"30")") != std::string::npos);
  auto lease = std::to_string(id);
  std::tie(status, body) = e.post(*leader, "/v3/kv/put", R"({"key":")" + base64("lk") + R"(","lease":")" + lease + "\"}");
  CHECK_MESSAGE(status == 200, body);
  // The keep-alive stream: one request, one {"result": ...} line, then the end.
  std::tie(status, body) = e.post(follower, "/v3/lease/keepalive", R"({"ID":")" + lease + "\"}");
  if (status == 501 && body.find(R"("code":12})") != std::string::npos) CONCLAVE_SKIP("LeaseKeepAlive not served yet");
  CHECK(status == 200);
  CHECK(body.rfind(R"({"result":{"header":)", 0) == 0);
  CHECK(body.find(R"("ID":")" + lease + "\"") != std::string::npos);
  CHECK(body.back() == '\n');
  std::tie(status, body) = e.post(follower, "/v3/kv/lease/timetolive", R"({"ID":")" + lease + R"(","keys":true})");
  CHECK(status == 200);
  CHECK(body.find(R"("keys":[")" + base64("lk") + "\"]") != std::string::npos);
  std::tie(status, body) = e.post(follower, "/v3/lease/leases", "{}");
  CHECK(body.find(R"({"ID":")" + lease + "\"}") != std::string::npos);
  std::tie(status, body) = e.post(*leader, "/v3/kv/lease/revoke", R"({"ID":")" + lease + "\"}");
  CHECK(status == 200);
  std::tie(status, body) = e.post(*leader, "/v3/kv/range", R"({"key":")" + base64("lk") + "\"}");
  CHECK(body.find(R"("kvs")") == std::string::npos);
  std::tie(status, body) = e.post(*leader, "/v3/lease/revoke", R"({"ID":")" + lease + "\"}");
  CHECK(status == 404);
  CHECK(body == R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
  if (!have_etcd3gw()) CONCLAVE_SKIP("no python3-etcd3gw under /usr/bin/python3");
  auto [code, out] = e.etcd3gw(follower, "lease");
  if (code == not_served) CONCLAVE_SKIP(out);
  CHECK_MESSAGE(code == 0, out << e.logs());
}

TEST_CASE("a watch through the JSON gateway streams events as JSON lines: curl and python3-etcd3gw") {
  if (!have_curl()) CONCLAVE_SKIP("no curl");
  gateway_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  std::uint64_t follower = *leader % 3 + 1;
  // curl holds the stream open (-N: each line as it comes) until killed.
  auto create = R"({"create_request":{"key":")" + base64("w/") + R"(","range_end":")" + base64("w0") +
                R"(","prev_kv":true}})";
  auto pid = e.c->spawn({curl_binary(), "-s", "-S", "-N", "-m", "60", "-X", "POST", "--data-binary", create,
                         "http://" + e.http[follower] + "/v3/watch"},
                        "watch.out");
  auto out = [&] { return file_text(e.c->path("watch.out")); };
  REQUIRE_MESSAGE(eventually([&] {
                    auto o = out();
                    return o.find(R"("created":true)") != std::string::npos || o.find(R"("code":12})") != std::string::npos;
                  }),
                  out());
  if (out().find(R"("code":12})") != std::string::npos) {
    e.c->wait_exit(pid, 10s);
    CONCLAVE_SKIP("Watch not served yet");
  }
  CHECK(out().rfind(R"({"result":{"header":)", 0) == 0);
  REQUIRE(e.post(*leader, "/v3/kv/put", R"({"key":")" + base64("w/a") + R"(","value":")" + base64("1") + "\"}").first == 200);
  REQUIRE(e.post(*leader, "/v3/kv/put", R"({"key":")" + base64("wx") + "\"}").first == 200);  // outside the range
  REQUIRE(e.post(*leader, "/v3/kv/deleterange", R"({"key":")" + base64("w/a") + "\"}").first == 200);
  CHECK_MESSAGE(eventually([&] { return out().find(R"("type":"DELETE")") != std::string::npos; }), out());
  ::kill(pid, SIGTERM);
  e.c->wait_exit(pid, 10s);
  auto text = out();
  // One {"result": ...} line per answer: created, the put (type PUT is 0: left out), the delete with its prev_kv.
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) lines.push_back(text.substr(at, nl - at));
  REQUIRE_MESSAGE(lines.size() == 3, text);
  for (const auto& l : lines) CHECK(l.rfind(R"({"result":{)", 0) == 0);
  CHECK(lines[1].find(R"("events":[{"kv":{"key":")" + base64("w/a") + "\"") != std::string::npos);
  CHECK(lines[2].find(R"("events":[{"type":"DELETE","kv":{"key":")" + base64("w/a") + "\"") != std::string::npos);
  CHECK(lines[2].find(R"("prev_kv":{"key":")" + base64("w/a") + "\"") != std::string::npos);
  CHECK(text.find(base64("wx")) == std::string::npos);
  if (!have_etcd3gw()) CONCLAVE_SKIP("no python3-etcd3gw under /usr/bin/python3");
  auto [code, log] = e.etcd3gw(follower, "watch");
  if (code == not_served) CONCLAVE_SKIP(log);
  CHECK_MESSAGE(code == 0, log << e.logs());
}

TEST_CASE("python3-etcd3gw through a follower's gateway: a watch and a lease live through a leader kill") {
  if (!have_etcd3gw()) CONCLAVE_SKIP("no python3-etcd3gw under /usr/bin/python3");
  gateway_cluster e;
  auto leader = e.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, e.logs());
  // The script kills the leader halfway through its watched writes.
  pid_t killed = e.c->at(*leader).pid;
  auto [code, log] = e.etcd3gw(*leader % 3 + 1, "failover", std::to_string(killed));
  CHECK_MESSAGE(code == 0, log << e.logs());
  CHECK(log.find("ok   the lease lived on") != std::string::npos);
  // The leader did die, and another master leads.
  CHECK(e.c->wait_exit(killed, 10s).has_value());
  CHECK(e.c->wait_for_leader(20s, *leader).has_value());
}
