// The registry's leader-side work: failure detection (liveness_monitor) fed
// by heartbeats, its transitions proposed as registry commands.
#pragma once

#include <memory>

#include "actors/raft/leader_service.hpp"
#include "actors/registry/liveness.hpp"
#include "actors/registry/registry_machine.hpp"

namespace conclave::registry {

class registry_service final : public raft::leader_service {
 public:
  registry_service(std::shared_ptr<registry_machine> machine, liveness_config cfg = {})
      : machine_(std::move(machine)), monitor_(cfg) {}

  void on_role(bool leading, std::uint64_t now_ms) override;
  void on_applied(std::uint64_t now_ms) override;
  std::vector<std::string> on_tick(std::uint64_t now_ms) override;
  bool on_keepalive(std::uint64_t session, const std::string& payload, std::uint64_t now_ms) override;
  void on_connection_lost(std::uint64_t session, std::uint64_t now_ms) override;
  bool has_session(std::uint64_t session) const override { return machine_->registry().find_session(session) != nullptr; }

  // The heartbeat payload: a member's id and its resource usage.
  static std::string encode_usage(const std::string& member, const resources& usage);

 private:
  std::shared_ptr<registry_machine> machine_;
  liveness_monitor monitor_;
};

}  // namespace conclave::registry
