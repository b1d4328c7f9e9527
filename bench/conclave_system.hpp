// conclave as a system under test: a local cluster of `conclave -r master`
// processes and `-r worker` processes on loopback, driven through the client
// protocol (CAF middleman, Cap'n Proto requests) by long-lived clients.
#pragma once

#include <memory>
#include <string>

#include "bench/system.hpp"

namespace conclave::bench {

// A master restarted far behind (or with a long local log) catching up.
struct recovery_result {
  std::uint64_t entries = 0;        // log entries written while it was down
  double catch_up_ms = 0;           // restart until it applied the leader's commit index
  double catch_up_peak_rss_mib = 0;
  double restart_ms = 0;            // kill -9 and restart with all entries local, until caught up
  double restart_peak_rss_mib = 0;
  bool ok = false;
};

// The embedded scenario: closed-loop puts and gets of 100-byte values from
// `threads` threads of one process (each thread alternates: a put of its
// own key, then a linearizable get of it), measured three ways on one
// cluster whose leader is a host process embedding a node.
struct embedded_run {
  std::string how;  // one line
  double ops_per_s = 0;
  std::size_t errors = 0;  // failed calls, and gets that did not see the thread's put
  double p50_ms = 0, p99_ms = 0;
};
struct embedded_result {
  int threads = 0;
  double seconds = 0;
  // In-process through the facade; the same load from another process with
  // a raft_client per thread; in-process with one call at a time (as before
  // issue #13: one raft_client behind one mutex).
  std::vector<embedded_run> runs;
  std::vector<std::string> notes;  // e.g. the leader changed under the load (the figures then mix two leaders)
  std::string failure;             // why the run stopped early, if it did
};

class conclave_system : public system_under_test {
 public:
  conclave_system(int masters, int workers, std::string binary, std::string self_exe);
  ~conclave_system() override;

  std::string name() const override;
  std::string description() const override;
  bool supports(const std::string& scenario) const override;
  std::optional<double> trial(const std::string& scenario) override;
  std::optional<double> last_new_leader_ms() const override;
  throughput writes(int clients, double seconds) override;
  std::optional<scale_result> scale(int sessions, double seconds) override;
  std::optional<watch_result> watch(const watch_plan& plan) override;
  std::vector<pid_t> server_pids() const override;

  // Stops a follower, writes `entries` entries, restarts it and times its
  // catch-up; then kills it again and times its recovery from its own disk.
  recovery_result recovery(std::uint64_t entries);

  // Replaces master 1 by a host process embedding it (role
  // master_and_worker, the same id and data directory), makes it lead, and
  // runs the embedded scenario; then master 1 runs as before.
  embedded_result embedded(int threads, double seconds);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// conclave-bench --watch-node ID=HOST:PORT CLUSTER_ID NAME PREFIX AFTER COUNT WRITES OUT:
// a watcher process of the watch scenario (bench/watch.hpp): one embedded
// node (role worker, NAME) on that master, COUNT watches of PREFIX after
// revision AFTER through node::watch, until every watch delivered WRITES
// writes or the parent is gone.
int watch_node_main(int argc, char** argv);

// conclave-bench --embedded-host ID PEERS DATA_DIR CLUSTER_ID PARALLEL_CALLS THREADS SECONDS OUT:
// the host of the embedded scenario: embeds master ID (parallel-calls
// PARALLEL_CALLS), and once it leads, drives THREADS threads of puts and
// gets through its facade for SECONDS; writes "leading", then the load's
// result line (see embedded_clients_main) to OUT; then idles until SIGTERM
// or until the parent is gone.
int embedded_host_main(int argc, char** argv);

// conclave-bench --embedded-clients HOST:PORT,... CLUSTER_ID THREADS SECONDS OUT:
// the same load from THREADS threads, each with a raft_client of its own;
// writes "load OPS ERRORS SECONDS P50_MS P99_MS" to OUT.
int embedded_clients_main(int argc, char** argv);

}  // namespace conclave::bench
