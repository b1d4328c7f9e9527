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

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/log.hpp"
#include "roles/config.hpp"
#include "roles/member_agent.hpp"
#include "roles/node.hpp"
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
      std::fprintf(stderr, "conclave: %s\n", n.error().detail.c_str());
      return exit_bad_config;
    }
    log_line("conclave: {}", n.error().message());
    return exit_failure;
  }
  int exit_code = wait_for_stop(signals, [&] { return (*n)->failed() ? exit_failure : (*n)->exit_code(); });
  n->reset();  // a leader hands over; the member leaves
  return exit_code;
}
