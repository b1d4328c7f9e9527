// `GET /metrics` on a master's HTTP listener (setting `http-listen`): the
// numbers of actors/metrics.hpp in Prometheus' text format (version 0.0.4),
// named conclave_*; README.md (Metrics) lists them. This file's .cpp is the
// only code that sees prometheus-cpp.
#pragma once

#include <memory>
#include <string>

#include "actors/metrics.hpp"
#include "roles/http_listener.hpp"

namespace conclave {

// The exposition of `stats` as of now.
std::string render_metrics(const metrics::sink& stats);

// The /metrics route; `stats` outlives the listener.
http_listener::routes metrics_routes(std::shared_ptr<metrics::sink> stats);

}  // namespace conclave
