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
// leader, a host process embedding it through libconclave, in `rounds`
// interleaved rounds.
struct embedded_run {
  std::string how;  // one line
  double ops_per_s = 0;    // over every round
  std::size_t errors = 0;  // failed calls, and gets that did not see the thread's put
  double p50_ms = 0;       // the median of the rounds' p50s
  double p99_ms = 0;       // the largest of the rounds' p99s
};
struct embedded_result {
  int threads = 0;
  double seconds = 0;  // per load and round
  int rounds = 0;
  // The host's threads through the facade; the same load from another
  // process with a raft_client per thread; the host's threads one call at a
  // time (as before issue #13: one raft_client behind one mutex).
  std::vector<embedded_run> runs;
  std::vector<std::string> notes;  // e.g. the leader changed under the load
  std::string failure;             // why the run stopped early, if it did
};

class conclave_system : public system_under_test {
 public:
  // etcd_api: the masters also serve etcd's v3 gRPC API (client-listen on
  // any free port of 127.0.0.1), for the etcd-API row.
  conclave_system(int masters, int workers, std::string binary, std::string self_exe, bool etcd_api = false);
  ~conclave_system() override;

  std::string name() const override;
  std::string description() const override;
  bool supports(const std::string& scenario) const override;
  std::optional<double> trial(const std::string& scenario) override;
  std::optional<double> last_new_leader_ms() const override;
  std::optional<std::uint64_t> raft_term() override;
  throughput writes(int clients, double seconds) override;
  std::optional<scale_result> scale(int sessions, double seconds) override;
  std::optional<watch_result> watch(const watch_plan& plan) override;
  std::vector<pid_t> server_pids() const override;
  std::vector<etcd_api_server> etcd_api_servers() override;

  // Stops a follower, writes `entries` entries, restarts it and times its
  // catch-up; then kills it again and times its recovery from its own disk.
  recovery_result recovery(std::uint64_t entries);

  // Replaces master 1 by a host process embedding it (role
  // master_and_worker, the same id and data directory), makes it lead, and
  // runs the embedded scenario; then master 1 runs as before.
  embedded_result embedded(int threads, double seconds, int rounds);

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

// conclave-bench --embedded-host ID PEERS DATA_DIR CLUSTER_ID THREADS SECONDS ROUNDS OUT:
// the host of the embedded scenario: embeds master ID, and once it leads
// (it writes "leading" to OUT), runs ROUNDS rounds of THREADS threads of
// puts and gets through its facade, SECONDS each: in parallel ("parallel
// load ..." to OUT), a pause for the external clients ("pause R" to OUT,
// until OUT.resume says "resume R"), then one call at a time ("serial load
// ..."); then "done", and idles until SIGTERM or until its parent is gone.
int embedded_host_main(int argc, char** argv);

// conclave-bench --embedded-clients HOST:PORT,... CLUSTER_ID THREADS SECONDS OUT:
// the same load from THREADS threads, each with a raft_client of its own;
// appends "external load OPS ERRORS SECONDS P50_MS P99_MS" to OUT.
int embedded_clients_main(int argc, char** argv);

}  // namespace conclave::bench
