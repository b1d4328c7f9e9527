#include "roles/scheduling.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

namespace conclave {

void configure_scheduling(caf::actor_system_config& cfg, int threads) {
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", threads);
  cfg.set("middleman.workers", 0);
}

}  // namespace conclave
