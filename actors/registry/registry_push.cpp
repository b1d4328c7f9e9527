#include "actors/registry/registry_push.hpp"

#include "schema/push_codec.hpp"

namespace conclave::registry {

registry_push::registry_push(std::shared_ptr<registry_machine> machine, std::string cluster_id)
    : machine_(std::move(machine)), cluster_id_(std::move(cluster_id)), subs_(machine_->registry()) {
  machine_->on_applied = [this](const command& c, const outcome&, const std::vector<lock_grant>& grants) {
    subs_.on_command(c, grants);
  };
  machine_->on_restored = [this] { subs_.on_restore(); };
}

expected<std::vector<raft::push_service::out>> registry_push::subscribe(key k, const std::string& request) {
  auto sub = wire::decode_subscription(request, cluster_id_);
  if (!sub) return sub.error();
  std::vector<out> result;
  for (auto& p : subs_.add(k, std::move(*sub))) {
    result.push_back(out{k, static_cast<std::uint8_t>(p.kind), wire::encode_push_state(p)});
  }
  return result;
}

std::vector<raft::push_service::out> registry_push::collect() {
  std::vector<out> result;
  for (auto& [k, p] : subs_.collect()) {
    result.push_back(out{k, static_cast<std::uint8_t>(p.kind), wire::encode_push_state(p)});
  }
  return result;
}

std::pair<std::uint8_t, std::string> registry_push::progress() const {
  auto p = subs_.progress();
  return {static_cast<std::uint8_t>(p.kind), wire::encode_push_state(p)};
}

std::vector<metrics::gauge_sample> registry_push::gauges() const {
  return {{"watches", "Key watches this master serves (the native client's and the etcd API's).", "", "",
           static_cast<double>(subs_.watches())},
          {"lock_wait_subscriptions", "Lock waits this master pushes grants to.", "", "",
           static_cast<double>(subs_.lock_waits())}};
}

}  // namespace conclave::registry
