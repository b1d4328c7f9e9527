// The registry as a Raft state machine: command entries carry Cap'n Proto
// registry commands; each is applied in log order and answers the encoded
// outcome; reads carry encoded queries; snapshots are the encoded registry
// state.
#pragma once

#include <functional>

#include "actors/raft/state_machine.hpp"
#include "actors/registry/registry.hpp"

namespace conclave::registry {

using registry_t = registry;

class registry_machine final : public raft::state_machine {
 public:
  explicit registry_machine(limits l = {}) : reg_(l), limits_(l) {}

  // A command that does not decode is answered `invalid` on every server
  // alike (the same bytes fail the same way), so replicas never diverge.
  std::string apply(const raft::log_entry& entry) override;
  // Answers an encoded registry::query with an encoded registry::query_result
  // (schema/registry_codec.hpp); bytes that do not decode get a query_error.
  std::string query(std::string_view bytes) const override;
  std::string snapshot() const override;
  void restore(std::string_view bytes) override;
  std::string digest() const override;
  // Members by status, sessions, keys, locks held and their waiters, undelivered events.
  std::vector<metrics::gauge_sample> gauges() const override;

  const registry_t& registry() const { return reg_; }
  // Called after each command with its outcome and the locks it granted.
  std::function<void(const command&, const outcome&, const std::vector<lock_grant>&)> on_applied;
  // Called after restore() replaced the registry.
  std::function<void()> on_restored;

 private:
  registry_t reg_;
  limits limits_;
};

}  // namespace conclave::registry
