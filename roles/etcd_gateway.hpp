// etcd's JSON gateway on a master's HTTP listener (setting `http-listen`):
// `POST /v3/<path>` (and `/v3beta/<path>`, as etcd 3.4 serves both) with a
// JSON request, answered by calling the etcd API's gRPC server in this
// process (roles/etcd_api.hpp), so both share every rule of the API.
//
// The mapping is etcd 3.4's (grpc-gateway v1): protobuf's JSON with the
// proto field names ("create_revision", "raftIndex"), bytes as base64,
// 64-bit integers as strings, zero values left out; requests may use either
// the proto or the lowerCamel names, and unknown fields are ignored. A
// streaming answer (watch, lease keep-alive, snapshot, observe) is chunked,
// one `{"result": ...}` line per message. Errors are grpc-gateway's
// `{"error": msg, "message": msg, "code": grpc code}` with its HTTP status
// for that code (in a stream that has begun: `{"error": {"grpc_code": ...,
// "http_code": ..., "message": ..., "http_status": ...}}`).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "roles/http_listener.hpp"

namespace grpc {
class Channel;
}

namespace conclave::etcd {

// How a method streams: unary; a stream of answers to one request; or
// requests and answers both streamed (the HTTP body holds one JSON request
// after another, each sent in turn).
enum class streaming { unary, server, bidi };

// One gateway path: `POST /v3/<path>` calls `method` ("/package.Service/Method")
// with a `request` message and answers `response` messages (full proto
// names). Types are looked up by name in the protos compiled in when a
// request comes: a method whose messages are not there yet answers as one
// the server does not implement (UNIMPLEMENTED).
struct gateway_route {
  std::string path;
  std::string method;
  std::string request;
  std::string response;
  streaming kind = streaming::unary;
};

// Every path etcd 3.4's gateway serves.
const std::vector<gateway_route>& gateway_routes();

class gateway {
 public:
  // Calls the gRPC server behind `channel` (the etcd API's, in-process) for
  // the paths of `table`.
  explicit gateway(std::shared_ptr<grpc::Channel> channel, std::vector<gateway_route> table = gateway_routes());
  // Stops first (below).
  ~gateway();
  // The handlers to add to an HTTP listener; they use this gateway, which
  // must outlive the listener.
  http_listener::routes routes();
  // Ends every call in flight (a stream's HTTP answer ends); requests after
  // this get UNAVAILABLE. Call before the listener stops, which waits for
  // the requests in flight.
  void stop();

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace conclave::etcd
