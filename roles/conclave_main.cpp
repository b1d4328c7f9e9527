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
#include <signal.h>

#include "actors/log.hpp"
#include "roles/config.hpp"
#include "roles/member_agent.hpp"
#include "roles/node.hpp"

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

  // SIGTERM and SIGINT are taken by sigtimedwait; block them before any
  // thread starts so no CAF thread receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  caf::actor_system_config sys_cfg;
  sys_cfg.load<caf::io::middleman>();
  sys_cfg.set("logger.verbosity", caf::atom("quiet"));
  // One Raft peer is one actor: a single worker thread on a shared queue
  // measured fastest on small machines (bench/README.md).
  sys_cfg.set("scheduler.policy", caf::atom("sharing"));
  sys_cfg.set("scheduler.max-threads", cfg->threads);
  caf::actor_system sys{sys_cfg};
  auto n = node::start(sys, *values);
  if (!n) {
    if (n.error().code == errc::invalid_argument) config_error(n.error());
    log_line("conclave: {}", n.error().message());
    return exit_failure;
  }
  int exit_code = exit_ok;
  for (;;) {
    timespec wait{0, 50 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      log_line("member {}: {} received", (*n)->member_id(), sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if ((exit_code = (*n)->exit_code()) != 0) break;
    if ((*n)->failed()) {
      exit_code = exit_failure;
      break;
    }
  }
  n->reset();  // a leader hands over; the member leaves
  return exit_code;
}
