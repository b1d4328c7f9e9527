// conclave-bench's report: per-scenario tables with conclave's ratio to each
// other system, the targets of issue #6 checked against the run's figures,
// JSON, and an SVG plot of the failover-time CDFs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench/conclave_system.hpp"
#include "bench/system.hpp"

namespace conclave::bench {

struct run_report {
  std::string machine;                                  // CPU model and count
  std::string command;                                  // how the run was started
  std::vector<std::string> systems;                     // names, conclave first
  std::vector<std::string> clients;                     // per system: which client drove it (system_under_test::client)
  std::vector<std::string> descriptions;
  std::vector<std::string> scenarios;                   // in run order
  std::map<std::string, std::vector<trials>> times;     // scenario -> per system
  std::map<std::string, std::vector<trials>> new_leader;  // leader-* scenario -> per system
  std::vector<std::vector<throughput>> writes;          // per client count -> per system
  std::vector<double> rss_idle_mib, rss_load_mib;       // per system: largest server
  // Per system: terms started during its write loads (none: not measured), over load_seconds_total.
  std::vector<std::optional<std::uint64_t>> load_elections;
  double load_seconds_total = 0;
  std::vector<std::optional<scale_result>> scale;       // per system
  std::optional<recovery_result> recovery;              // conclave's
  std::vector<std::optional<watch_result>> watch;       // per system, when the watch scenario ran
  std::optional<embedded_result> embedded;              // conclave's, when the embedded scenario ran
};

// What a scenario measures, one line.
std::string describe_scenario(const std::string& scenario);

void print_table(const run_report& r);
void print_json(const run_report& r);
void write_svg(const std::string& path, const run_report& r);         // failover CDFs
void write_writes_svg(const std::string& path, const run_report& r);  // write latency CDFs of the loads
void write_locks_svg(const std::string& path, const run_report& r);   // lock-cycle, lock-handoff, write CDFs

}  // namespace conclave::bench
