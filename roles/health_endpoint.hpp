// Health endpoints on a master's HTTP listener (setting `http-listen`), for
// load balancers and orchestrators:
//   GET /livez   200 "ok" while the process serves HTTP;
//   GET /readyz  200 "ok" when this master knows a leader, has applied up to
//                the commit index it last heard, its disk takes writes and
//                its Raft server runs (metrics::sink::not_ready); otherwise
//                503 with the reason as the body;
//   GET /health  etcd 3.4's answer on the same rule: 200 {"health":"true"},
//                or 503 {"health":"false"}.
#pragma once

#include <memory>

#include "actors/metrics.hpp"
#include "roles/http_listener.hpp"

namespace conclave {

http_listener::routes health_routes(std::shared_ptr<metrics::sink> stats);

}  // namespace conclave
