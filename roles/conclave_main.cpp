// conclave: one member of a conclave cluster.
//
//   conclave [-r master|worker|master_and_worker] [--config FILE] [--KEY VALUE ...]
//   conclave restore --from FILE --data-dir D --id N --peers ... [--cluster-id X]   (roles/restore.hpp)
//
// Every setting is a KEY that can be given as a flag (--KEY VALUE), as an
// environment variable (CONCLAVE_KEY, upper case, '-' as '_') or in the config
// file (KEY = VALUE, # comments); flags win over the environment, which wins
// over the file (--config FILE, or CONCLAVE_CONFIG). README.md lists the keys,
// their defaults and the exit codes (0 stopped, 1 runtime failure, 2 bad
// configuration, 3 worker without a master, 4 master without quorum under
// on-quorum-loss = exit).
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/log.hpp"
#include "roles/config.hpp"
#include "roles/member_agent.hpp"
#include "roles/node.hpp"
#include "roles/restore.hpp"
#include "roles/server.hpp"

using namespace conclave;

namespace {

[[noreturn]] void config_error(const error& e) {
  log_error("conclave: {}", e.detail);
  std::exit(exit_bad_config);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && !std::strcmp(argv[1], "restore")) return restore_main(argc - 1, argv + 1);
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "-h") || !std::strcmp(argv[i], "--help")) {
      std::printf("usage: conclave [-r master|worker|master_and_worker] [--config FILE] [--KEY VALUE ...]\n"
                  "       conclave restore --from FILE --data-dir D --id N --peers ID=HOST:PORT,... [--cluster-id X]\n"
                  "keys:");
      for (const auto& [k, v] : default_settings()) std::printf(" %s%s", k.c_str(), v.empty() ? "" : ("=" + v).c_str());
      std::printf("\nenvironment: CONCLAVE_KEY (e.g. %s), CONCLAVE_CONFIG; flags win over it, it over the file\n",
                  env_name("client-listen").c_str());
      return 0;
    }
  }
  auto env = read_env(environ);
  auto values = read_settings(argc, argv, env);
  if (!values) config_error(values.error());
  // JSON from the first line on, when asked for (parse_settings checks the value).
  if (auto it = values->find("log-format"); it != values->end() && it->second == "json") set_log_format(log_format::json);
  for (const auto& name : env.unrecognized) log_warning("conclave: ignoring {}: not a setting (conclave -h lists them)", name);
  // Validate everything before starting anything.
  auto cfg = parse_settings(*values);
  if (!cfg) config_error(cfg.error());

  auto signals = block_stop_signals();
  caf::actor_system sys{server_system_config(cfg->threads, cfg->peer_tls)};
  auto n = node::start(sys, *values);
  if (!n) {
    // Returned, not std::exit(): the actor system's threads are running, and
    // exit() would destroy statics under them (a crash instead of code 2).
    if (n.error().code == errc::invalid_argument) {
      log_error("conclave: {}", n.error().detail);
      return exit_bad_config;
    }
    log_error("conclave: {}", n.error().message());
    return exit_failure;
  }
  int exit_code = wait_for_stop(signals, [&] { return (*n)->failed() ? exit_failure : (*n)->exit_code(); });
  n->reset();  // a leader hands over; the member leaves
  return exit_code;
}
