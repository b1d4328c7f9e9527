// One coordination system under test in conclave-bench: conclave itself, or
// etcd or ZooKeeper for comparison. conclave-bench creates every system of a
// run first, then runs each scenario's trials interleaved (trial 1 of every
// system, trial 2 of every system, ...), so all figures of one run share one
// machine and one moment.
//
// This header is free of CAF so that the comparison drivers stay light.
#pragma once

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace conclave::bench {

// Set by conclave-bench on SIGINT or SIGTERM: long waits give up early so
// that every process it started is stopped promptly.
inline std::atomic<bool> stop_requested{false};

// The p-quantile of `v` (0 when empty).
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// Times of one scenario's trials on one system, in milliseconds.
struct trials {
  std::vector<double> ms;
  int failed = 0;
  double pct(double p) const { return percentile(ms, p); }
};

// Closed-loop durable writes: `clients` writers, each sending its next write
// when the previous one was acknowledged.
struct throughput {
  int clients = 0;
  double writes_per_s = 0;
  std::vector<double> latency_ms;
  std::size_t errors = 0;
  double pct(double p) const { return percentile(latency_ms, p); }
};

// Heartbeat scale: `sessions` clients keeping a session alive at the
// system's interval, measured over a window.
struct scale_result {
  int sessions = 0;
  double interval_ms = 0;          // each session's heartbeat interval
  double leader_cpu_pct = 0;       // of one core, over the window
  double heartbeat_ms_p50 = 0;     // request to answer
  double heartbeat_ms_p99 = 0;
  double detect_ms = 0;            // a killed session owner seen gone (0: not measured)
  std::size_t heartbeats = 0;      // answered
  std::size_t errors = 0;          // refused or unanswered (a leader change under load refuses a window of them)
};

// The last line a heartbeat-scale child process writes (each system's
// simulated workers, leases or sessions), and the parent's reading of it.
inline std::string heartbeat_report(const std::vector<double>& latency_ms, std::size_t errors) {
  char line[160];
  std::snprintf(line, sizeof line, "heartbeats %zu errors %zu p50_ms %.3f p99_ms %.3f\n", latency_ms.size(), errors,
                percentile(latency_ms, 0.5), percentile(latency_ms, 0.99));
  return line;
}

// Folds the children's reports (their output files' text) into `r`: errors
// summed, a missing report counted as one; p50 the median of the children's,
// p99 the largest (each child served an even share of the sessions).
inline void add_heartbeat_reports(const std::vector<std::string>& texts, scale_result& r) {
  std::vector<double> p50s, p99s;
  for (const auto& text : texts) {
    auto p = text.rfind("heartbeats ");
    std::size_t beats = 0, errors = 0;
    double p50 = 0, p99 = 0;
    if (p == std::string::npos ||
        std::sscanf(text.c_str() + p, "heartbeats %zu errors %zu p50_ms %lf p99_ms %lf", &beats, &errors, &p50, &p99) != 4) {
      ++r.errors;
      continue;
    }
    r.heartbeats += beats;
    r.errors += errors;
    p50s.push_back(p50);
    p99s.push_back(p99);
  }
  if (p50s.empty()) return;
  r.heartbeat_ms_p50 = percentile(p50s, 0.5);
  r.heartbeat_ms_p99 = *std::max_element(p99s.begin(), p99s.end());
}

// The watch scenario: `watchers` watches on one prefix, spread round-robin
// over the servers, then `writes` single writes under it, one at a time.
struct watch_plan {
  int watchers = 1000;
  int writes = 20;
  double idle_seconds = 10;  // the CPU window with every watch idle
};

struct watch_result {
  int watchers = 0;
  int processes = 0;                      // watcher processes they ran in
  std::string hosting;                    // how the watchers were hosted, one line
  std::vector<double> delivery_ms;        // per (write, watcher): from the write's send until delivered
  std::vector<double> all_delivered_ms;   // per write: until its last watcher delivered it
  std::vector<double> ack_ms;             // per write: until the write was acknowledged
  int incomplete = 0;                     // writes some watcher had not delivered after 10 s
  double idle_seconds = 0;
  double leader_cpu_base_pct = 0;         // of one core, before any watcher existed
  double leader_cpu_pct = 0;              // of one core, every watch idle
  double servers_cpu_pct = 0;             // all servers together, likewise
  double watchers_cpu_pct = 0;            // all watcher processes together, likewise
  std::string failure;                    // why the run stopped early, if it did
};

// A server's etcd v3 gRPC endpoint (HOST:PORT) and its pid.
struct etcd_api_server {
  std::string endpoint;
  pid_t pid = -1;
};

class system_under_test {
 public:
  virtual ~system_under_test() = default;

  // "conclave", "etcd (matched timing)", ...
  virtual std::string name() const = 0;
  // How it is configured and driven, for the report (one line).
  virtual std::string description() const = 0;

  // Which client drives this row: "native" (the system's own way) or
  // "etcd API" (bench/etcd_api_client.cpp, the same code for every system).
  // The report's ratios compare rows driven by the same client.
  virtual std::string client() const { return "native"; }

  // The servers' etcd v3 gRPC endpoints now, when the system serves etcd's
  // API (conclave-bench --etcd-api adds a row driven through it).
  virtual std::vector<etcd_api_server> etcd_api_servers() { return {}; }

  // Whether `scenario` applies (e.g. leader-cutoff is conclave's fault hook).
  virtual bool supports(const std::string& scenario) const = 0;

  // One trial: milliseconds, or nothing when the trial failed. Scenarios:
  //   leader-crash   kill -9 of the leader until a write is acknowledged
  //   leader-freeze  SIGSTOP of the leader until a write is acknowledged
  //   leader-stop    SIGTERM of the leader until a write is acknowledged
  //   worker-crash   kill -9 of a session owner until it is seen gone
  //                  (by every master where the system offers that)
  //   lock-cycle     uncontended acquire + release
  //   lock-handoff   release until the next of four contenders holds it
  //   write          one durable write
  // The system is whole again when trial() returns.
  virtual std::optional<double> trial(const std::string& scenario) = 0;

  // For the last leader-* trial: milliseconds from the fault until a new
  // leader was known (before its first acknowledged write), if measured.
  virtual std::optional<double> last_new_leader_ms() const { return std::nullopt; }

  // Durable writes of 100-byte values from `clients` closed-loop clients.
  virtual throughput writes(int clients, double seconds) = 0;

  // The highest Raft term its servers report (the write loads count the
  // elections they saw with it), if it has one.
  virtual std::optional<std::uint64_t> raft_term() { return std::nullopt; }

  // `sessions` simulated clients (many per process) keeping a session or
  // lease alive at the system's interval for `seconds`: the leader's CPU,
  // heartbeat latency, and the time until a killed owner is seen gone under
  // that load. Nothing when the system cannot be driven at that scale here.
  virtual std::optional<scale_result> scale(int sessions, double seconds) {
    (void)sessions;
    (void)seconds;
    return std::nullopt;
  }

  // The watch scenario (bench/watch.hpp). Nothing when the system does not offer it.
  virtual std::optional<watch_result> watch(const watch_plan& plan) {
    (void)plan;
    return std::nullopt;
  }

  // Pids of the servers (masters, members), for memory and CPU figures.
  virtual std::vector<pid_t> server_pids() const = 0;
};

// A system compared with conclave: the scenarios etcd and ZooKeeper both
// offer, each a method of its driver.
class compared_system : public system_under_test {
 public:
  bool supports(const std::string& scenario) const override {
    for (const char* s : {"leader-crash", "leader-freeze", "leader-stop", "worker-crash", "lock-cycle", "lock-handoff",
                          "write"}) {
      if (scenario == s) return true;
    }
    return false;
  }

  std::optional<double> trial(const std::string& scenario) override {
    if (scenario == "leader-crash") return leader_fault(SIGKILL);
    if (scenario == "leader-freeze") return leader_fault(SIGSTOP);
    if (scenario == "leader-stop") return leader_fault(SIGTERM);
    if (scenario == "worker-crash") return worker_crash();
    if (scenario == "lock-cycle") return lock_cycle();
    if (scenario == "lock-handoff") return lock_handoff();
    if (scenario == "write") return one_write();
    return std::nullopt;
  }

 protected:
  virtual std::optional<double> leader_fault(int sig) = 0;
  virtual std::optional<double> worker_crash() = 0;
  virtual std::optional<double> lock_cycle() = 0;
  virtual std::optional<double> lock_handoff() = 0;
  virtual std::optional<double> one_write() = 0;
};

}  // namespace conclave::bench
