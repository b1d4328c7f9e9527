#include "roles/health_endpoint.hpp"

#include <httplib.h>

#include <chrono>

namespace conclave {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

http_listener::routes health_routes(std::shared_ptr<metrics::sink> stats) {
  return [stats](httplib::Server& s) {
    s.Get("/livez", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
    s.Get("/readyz", [stats](const httplib::Request&, httplib::Response& res) {
      auto why = stats->not_ready(now_ms());
      res.status = why.empty() ? 200 : 503;
      res.set_content(why.empty() ? "ok\n" : "not ready: " + why + "\n", "text/plain");
    });
    s.Get("/health", [stats](const httplib::Request&, httplib::Response& res) {
      bool healthy = stats->not_ready(now_ms()).empty();
      res.status = healthy ? 200 : 503;
      res.set_content(healthy ? R"({"health":"true"})" : R"({"health":"false"})", "application/json");
    });
  };
}

}  // namespace conclave
