// conclave-raft-node: one Raft server with a counter state machine, for
// tests and benchmarks of the replication runtime.
//
//   conclave-raft-node --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//                      --data-dir /var/lib/conclave/1 --cluster-id test [--KEY VALUE ...]
//
// It takes conclave's keys (roles/config.hpp, README.md) that concern a Raft
// server: listen, tick-ms, heartbeat-ticks, election-ticks, snapshot-every,
// snapshot-trailing, log-max-mib, preferred-leader, threads, peer-cert-file, peer-key-file,
// peer-trusted-ca-file, fault-injection (tests only).
//
// Logs leader changes with timestamps on stderr. SIGTERM or SIGINT: a leader
// hands leadership over first, then the process exits 0. Exit 1: a runtime
// failure (storage); exit 2: bad flags.
#include <cstdio>

#include "actors/raft/state_machine.hpp"
#include "roles/config.hpp"
#include "roles/server.hpp"

using namespace conclave;

int main(int argc, char** argv) {
  auto values = read_settings(argc, argv);
  if (values) values->emplace("role", "master");
  auto cfg = values ? parse_settings(*values) : expected<node_config>(values.error());
  if (!cfg) {
    std::fprintf(stderr, "conclave-raft-node: %s\n", cfg.error().detail.c_str());
    return 2;
  }
  set_log_format(cfg->log);
  server_setup setup;
  setup.options = cfg->raft;
  setup.listen = cfg->listen;
  setup.threads = cfg->threads;
  setup.peer_tls = cfg->peer_tls;
  setup.machine = std::make_shared<raft::counter_state_machine>();
  return run_server(std::move(setup));
}
