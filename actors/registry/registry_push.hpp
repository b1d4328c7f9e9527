// The registry's push service (actors/raft/push_service.hpp): subscriptions
// (subscriptions.hpp) over the registry this master applied, in their wire
// form (schema/push_codec.hpp).
#pragma once

#include <memory>

#include "actors/raft/push_service.hpp"
#include "actors/registry/registry_machine.hpp"
#include "actors/registry/subscriptions.hpp"

namespace conclave::registry {

class registry_push final : public raft::push_service {
 public:
  // Hooks into the machine's on_applied and on_restored.
  registry_push(std::shared_ptr<registry_machine> machine, std::string cluster_id);

  expected<std::vector<out>> subscribe(key k, const std::string& request) override;
  void unsubscribe(key k) override { subs_.remove(k); }
  std::vector<out> collect() override;
  std::pair<std::uint8_t, std::string> progress() const override;
  // Watches and lock waits this master serves.
  std::vector<metrics::gauge_sample> gauges() const override;

 private:
  std::shared_ptr<registry_machine> machine_;
  std::string cluster_id_;
  subscriptions subs_;
};

}  // namespace conclave::registry
