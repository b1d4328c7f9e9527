#include "actors/registry/registry_service.hpp"

#include "schema/registry_codec.hpp"

namespace conclave::registry {

void registry_service::on_role(bool leading, std::uint64_t now_ms) {
  if (leading) {
    monitor_.become_leader(machine_->registry().state(), now_ms);
  } else {
    monitor_.step_down();
  }
}

void registry_service::on_applied(std::uint64_t now_ms) { monitor_.sync(machine_->registry().state(), now_ms); }

std::vector<std::string> registry_service::on_tick(std::uint64_t now_ms) {
  std::vector<std::string> out;
  for (const auto& c : monitor_.tick(now_ms)) out.push_back(wire::encode_command(c));
  return out;
}

bool registry_service::on_keepalive(std::uint64_t session, const std::string& payload, std::uint64_t now_ms) {
  if (!machine_->registry().find_session(session)) return false;
  std::optional<std::pair<std::string, resources>> usage;
  if (!payload.empty()) {
    // The payload is a report_usage command holding one report.
    auto cmd = wire::decode_command(payload);
    if (cmd) {
      if (auto* r = std::get_if<report_usage>(&*cmd); r && r->reports.size() == 1) usage = r->reports[0];
    }
  }
  monitor_.keepalive(session, now_ms, usage);
  return true;
}

void registry_service::on_connection_lost(std::uint64_t session, std::uint64_t now_ms) {
  monitor_.connection_lost(session, now_ms);
}

std::string registry_service::encode_usage(const std::string& member, const resources& usage) {
  return wire::encode_command(report_usage{{{member, usage}}});
}

}  // namespace conclave::registry
