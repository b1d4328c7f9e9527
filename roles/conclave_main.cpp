// conclave: one member of a conclave cluster.
//
//   conclave [-r master|worker|master_and_worker] [--config FILE] [--KEY VALUE ...]
//
// Every setting is a KEY that can be given as a flag (--KEY VALUE) or in the
// config file (KEY = VALUE, # comments); flags win. README.md lists the keys,
// their defaults and the exit codes (0 stopped, 1 runtime failure, 2 bad
// configuration, 3 worker without a master, 4 master without quorum under
// on-quorum-loss = exit).
#include <cstdio>
#include <cstring>

#include "actors/log.hpp"
#include "actors/registry/registry_machine.hpp"
#include "actors/registry/registry_service.hpp"
#include "roles/config.hpp"
#include "roles/member_agent.hpp"
#include "roles/server.hpp"

using namespace conclave;

namespace {

[[noreturn]] void config_error(const error& e) {
  std::fprintf(stderr, "conclave: %s\n", e.detail.c_str());
  std::exit(exit_bad_config);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      std::printf("usage: conclave [-r master|worker|master_and_worker] [--config FILE] [--KEY VALUE ...]\nkeys:");
      for (const auto& [k, v] : default_settings()) std::printf(" %s%s", k.c_str(), v.empty() ? "" : ("=" + v).c_str());
      std::printf("\n");
      return 0;
    }
  }
  auto values = read_settings(argc, argv);
  if (!values) config_error(values.error());
  auto cfg = parse_settings(*values);
  if (!cfg) config_error(cfg.error());
  auto agent = cfg->agent;
  if (!cfg->is_master()) {
    log_line("member {}: worker of cluster '{}', {} master(s)", agent.me.id, agent.cluster_id, agent.masters.size());
    return run_agent_only([agent](caf::actor_system& sys, std::atomic<bool>& stop, std::atomic<int>& code) {
      run_member_agent(sys, agent, stop, code);
    });
  }
  if (auto ok = check_identity(cfg->raft.data_dir, cfg->raft.cluster_id, cfg->raft.raft.id.value); !ok) {
    config_error(ok.error());
  }
  server_setup setup;
  setup.options = cfg->raft;
  setup.listen = cfg->listen;
  setup.threads = cfg->threads;
  auto machine = std::make_shared<registry::registry_machine>();
  registry::liveness_config live;
  live.suspect_after_ms = 3 * static_cast<std::uint64_t>(agent.heartbeat_ms);
  setup.machine = machine;
  setup.service = std::make_shared<registry::registry_service>(machine, live);
  setup.agent = [agent](caf::actor_system& sys, std::atomic<bool>& stop, std::atomic<int>& code) {
    run_member_agent(sys, agent, stop, code);
  };
  return run_server(std::move(setup));
}
