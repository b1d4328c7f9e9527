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

}  // namespace conclave::bench
