// conclave-bench: starts a local conclave cluster (masters and workers as
// processes on loopback) and, with --compare, an etcd cluster and a
// ZooKeeper ensemble beside it; runs failover and coordination scenarios
// against all of them, interleaved trial by trial, and stops everything it
// started (by pid, also on Ctrl-C). `conclave-bench --help` lists options.
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "bench/conclave_system.hpp"
#include "bench/etcd_api_client.hpp"
#include "bench/report.hpp"
#include "bench/swarm.hpp"
#include "test/processes.hpp"
#ifdef CONCLAVE_BENCH_ETCD
#include "bench/etcd_system.hpp"
#endif
#ifdef CONCLAVE_BENCH_ZOOKEEPER
#include "bench/zookeeper_system.hpp"
#endif

using namespace conclave::bench;

namespace {

const char* usage_text = R"(usage: conclave-bench [options]
  --masters N            conclave masters (3; 3 or 5)
  --workers N            conclave worker processes (2)
  --trials N             trials per scenario and system (10); repeat as
                         --trials SCENARIO=N for one scenario
  --scenarios LIST       comma-separated (default: all but watch):
                         leader-crash, leader-freeze, leader-stop, leader-cutoff,
                         worker-crash, failover-workers, failover-lock,
                         lock-cycle, lock-handoff, write, watch, embedded
  --watchers N           watch: watchers on one prefix (1000)
  --watch-writes N       watch: single writes timed to every watcher (20)
  --watch-idle-seconds S watch: the leader's CPU window, every watch idle (10)
  --embedded-threads N   embedded: host threads, and external clients (8)
  --embedded-seconds S   embedded: each load's duration (3)
  --embedded-rounds N    embedded: interleaved rounds of the three loads (3)
  --seconds S            durable-write throughput for S seconds at 1, 8 and 64
                         clients (3; 0 skips it)
  --clients LIST         the write loads' client counts (1,8,64)
  --scale N              heartbeat scale with N simulated workers (10000; 0 skips)
  --scale-seconds S      measuring window of the scale run (5)
  --recovery-entries N   entries written while a master is down (1000000; 0 skips)
  --compare LIST         also etcd and/or zookeeper (needs ./setup.sh compare)
  --timing WHICH         for compared systems: matched, defaults or both (both)
  --etcd-api             also drive conclave (masters with client-listen) and
                         each compared etcd through the same etcd v3 gRPC
                         client (bench/etcd_api_client.cpp): rows "... etcd
                         API" for worker-crash (a lease owner), lock-cycle,
                         lock-handoff, write, watch and the write loads
  --json                 print the report as JSON
  --svg FILE             write the failover-time CDF plot
  --writes-svg FILE      write the write-latency CDF plot of the loads
  --locks-svg FILE       write the lock-cycle, lock-handoff and write CDF plot
  --binary PATH          the conclave binary (build/roles/conclave)
)";

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string s;
  while (std::getline(in, s, ',')) {
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

std::string self_exe() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::string machine() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model;
  int cpus = 0;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      ++cpus;
      model = line.substr(line.find(':') + 2);
    }
  }
  return fmt::format("{} x {}", cpus, model);
}

std::unique_ptr<system_under_test> make_compared(const std::string& name, const std::string& timing) {
  if (name == "etcd") {
#ifdef CONCLAVE_BENCH_ETCD
    return make_etcd(timing, self_exe());
#else
    throw std::runtime_error("this conclave-bench was built without etcd support: run ./setup.sh compare");
#endif
  }
  if (name == "zookeeper") {
#ifdef CONCLAVE_BENCH_ZOOKEEPER
    return make_zookeeper(timing, self_exe());
#else
    throw std::runtime_error("this conclave-bench was built without ZooKeeper support: run ./setup.sh compare");
#endif
  }
  (void)timing;
  throw std::runtime_error("--compare: unknown system '" + name + "' (etcd, zookeeper)");
}

// The systems to compare with, as `--compare` and `--timing` ask.
std::vector<std::unique_ptr<system_under_test>> compared(const std::vector<std::string>& names, const std::string& timing) {
  std::vector<std::unique_ptr<system_under_test>> out;
  std::vector<std::string> timings;
  if (timing == "matched" || timing == "both") timings.push_back("matched");
  if (timing == "defaults" || timing == "both") timings.push_back("defaults");
  for (const auto& n : names) {
    for (const auto& t : timings) out.push_back(make_compared(n, t));
  }
  return out;
}

// The largest resident memory among `pids`, sampled while `work` runs.
template <class F>
double peak_rss_during(const std::vector<pid_t>& pids, F&& work) {
  std::atomic<bool> done{false};
  double peak = 0;
  std::thread sampler([&] {
    while (!done) {
      for (auto p : pids) peak = std::max(peak, conclave::test::rss_mib(p));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  work();
  done = true;
  sampler.join();
  return peak;
}

double largest_rss(const std::vector<pid_t>& pids) {
  double m = 0;
  for (auto p : pids) m = std::max(m, conclave::test::rss_mib(p));
  return m;
}

void progress(const std::string& what, int done, int total) {
  auto width = 24;
  auto filled = total > 0 ? width * done / total : width;
  fmt::print(stderr, "\r{:<18} [{:<24}] {}/{}  ", what, std::string(static_cast<std::size_t>(filled), '#'), done, total);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--swarm") return swarm_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "--lock-holder") return lock_holder_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "--watch-node") return watch_node_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "--embedded-host") return embedded_host_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "--embedded-clients") return embedded_clients_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "--etcd-api-holder") return etcd_api_holder_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "--etcd-api-watchers") return etcd_api_watchers_main(argc - 1, argv + 1);
#ifdef CONCLAVE_BENCH_ETCD
  if (argc > 1 && std::string(argv[1]) == "--etcd-holder") return etcd_holder_main(argc - 1, argv + 1);
  if (argc > 1 && std::string(argv[1]) == "--etcd-watchers") return etcd_watchers_main(argc - 1, argv + 1);
#endif
#ifdef CONCLAVE_BENCH_ZOOKEEPER
  if (argc > 1 && std::string(argv[1]) == "--zk-holder") return zookeeper_holder_main(argc - 1, argv + 1);
#endif
  int masters = 3, workers = 2, trial_count = 10, scale_sessions = 10000;
  double load_seconds = 3, scale_seconds = 5, embedded_seconds = 3;
  int embedded_threads = 8, embedded_rounds = 3;
  std::vector<int> load_clients = {1, 8, 64};
  std::uint64_t recovery_entries = 1000000;
  watch_plan watch;
  bool json = false, etcd_api = false;
  std::string svg, writes_svg, locks_svg, binary = "build/roles/conclave", compare, timing = "both";
  std::vector<std::string> scenarios = {"leader-crash",     "leader-freeze", "leader-stop", "leader-cutoff",
                                        "worker-crash",     "failover-workers", "failover-lock", "lock-cycle",
                                        "lock-handoff",     "write"};
  std::string command = "conclave-bench";
  std::map<std::string, int> trials_for;  // per-scenario trial counts
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    command += " " + a;
    auto next = [&] {
      if (i + 1 >= argc) {
        fmt::print(stderr, "conclave-bench: {} needs a value\n{}", a, usage_text);
        std::exit(2);
      }
      command += std::string(" ") + argv[i + 1];
      return std::string(argv[++i]);
    };
    if (a == "--masters") masters = std::atoi(next().c_str());
    else if (a == "--workers") workers = std::atoi(next().c_str());
    else if (a == "--trials") {
      auto v = next();
      auto eq = v.find('=');
      if (eq == std::string::npos) trial_count = std::atoi(v.c_str());
      else trials_for[v.substr(0, eq)] = std::atoi(v.c_str() + eq + 1);
    }
    else if (a == "--json") json = true;
    else if (a == "--etcd-api") etcd_api = true;
    else if (a == "--svg") svg = next();
    else if (a == "--writes-svg") writes_svg = next();
    else if (a == "--locks-svg") locks_svg = next();
    else if (a == "--binary") binary = next();
    else if (a == "--compare") compare = next();
    else if (a == "--timing") timing = next();
    else if (a == "--seconds") load_seconds = std::atof(next().c_str());
    else if (a == "--scale") scale_sessions = std::atoi(next().c_str());
    else if (a == "--scale-seconds") scale_seconds = std::atof(next().c_str());
    else if (a == "--recovery-entries") recovery_entries = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--scenarios") scenarios = split(next());
    else if (a == "--clients") {
      load_clients.clear();
      for (const auto& c : split(next())) load_clients.push_back(std::atoi(c.c_str()));
    }
    else if (a == "--watchers") watch.watchers = std::atoi(next().c_str());
    else if (a == "--watch-writes") watch.writes = std::atoi(next().c_str());
    else if (a == "--watch-idle-seconds") watch.idle_seconds = std::atof(next().c_str());
    else if (a == "--embedded-threads") embedded_threads = std::atoi(next().c_str());
    else if (a == "--embedded-seconds") embedded_seconds = std::atof(next().c_str());
    else if (a == "--embedded-rounds") embedded_rounds = std::atoi(next().c_str());
    else if (a == "--help" || a == "-h") {
      fmt::print("{}", usage_text);
      return 0;
    } else {
      fmt::print(stderr, "conclave-bench: unknown option {}\n{}", a, usage_text);
      return 2;
    }
  }
  if (timing != "matched" && timing != "defaults" && timing != "both") {
    fmt::print(stderr, "conclave-bench: --timing must be matched, defaults or both\n");
    return 2;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { stop_requested = true; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  run_report report;
  report.machine = machine();
  report.command = command;
  report.scenarios = scenarios;
  try {
    std::vector<std::unique_ptr<system_under_test>> systems;
    fmt::print(stderr, "starting conclave ({} masters, {} workers)...\n", masters, workers);
    auto own = std::make_unique<conclave_system>(masters, workers, binary, self_exe(), etcd_api);
    auto* conclave = own.get();
    systems.push_back(std::move(own));
    if (!compare.empty()) {
      fmt::print(stderr, "starting {} ({} timing)...\n", compare, timing);
      for (auto& s : compared(split(compare), timing)) systems.push_back(std::move(s));
    }
    // The etcd-API rows come after every native row, conclave's first: the
    // report compares each row with the first row of its client.
    if (etcd_api) {
      std::vector<std::unique_ptr<system_under_test>> rows;
      for (const auto& s : systems) {
        if (s->etcd_api_servers().empty()) continue;
        fmt::print(stderr, "connecting the etcd-API client to {}...\n", s->name());
        auto* native = s.get();
        rows.push_back(make_etcd_api({etcd_api_name(native->name()),
                                      fmt::format("the servers of the \"{}\" row", native->name()),
                                      [native] { return native->etcd_api_servers(); }, self_exe()}));
      }
      for (auto& r : rows) systems.push_back(std::move(r));
    }
    for (const auto& s : systems) {
      report.systems.push_back(s->name());
      report.clients.push_back(s->client());
      report.descriptions.push_back(s->description());
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    for (const auto& s : systems) report.rss_idle_mib.push_back(largest_rss(s->server_pids()));

    // Trials interleaved: trial t of every system before trial t + 1.
    for (const auto& scenario : scenarios) {
      // One run per system, not trials.
      if (scenario == "watch") {
        for (const auto& s : systems) {
          if (stop_requested) break;
          fmt::print(stderr, "watch: {} with {} watchers...\n", s->name(), watch.watchers);
          report.watch.push_back(s->watch(watch));
        }
        continue;
      }
      // conclave only, one run.
      if (scenario == "embedded") {
        fmt::print(stderr, "embedded: {} threads, {} rounds of {} s per load...\n", embedded_threads, embedded_rounds,
                   embedded_seconds);
        report.embedded = conclave->embedded(embedded_threads, embedded_seconds, embedded_rounds);
        continue;
      }
      auto& per = report.times[scenario];
      per.assign(systems.size(), trials{});
      bool leader_scenario = scenario.rfind("leader-", 0) == 0;
      if (leader_scenario) report.new_leader[scenario].assign(systems.size(), trials{});
      int count = trials_for.count(scenario) ? trials_for[scenario] : trial_count;
      for (int t = 0; t < count && !stop_requested; ++t) {
        progress(scenario, t, count);
        for (std::size_t i = 0; i < systems.size() && !stop_requested; ++i) {
          if (!systems[i]->supports(scenario)) continue;
          auto v = systems[i]->trial(scenario);
          if (v) per[i].ms.push_back(*v);
          else ++per[i].failed;
          if (leader_scenario) {
            if (auto nl = systems[i]->last_new_leader_ms()) report.new_leader[scenario][i].ms.push_back(*nl);
          }
        }
      }
      progress(scenario, count, count);
      fmt::print(stderr, "\n");
      if (stop_requested) break;
    }
    if (load_seconds > 0 && !stop_requested) {
      report.rss_load_mib.assign(systems.size(), 0);
      report.load_elections.assign(systems.size(), std::uint64_t{0});
      for (int clients : load_clients) {
        std::vector<throughput> per;
        for (std::size_t i = 0; i < systems.size() && !stop_requested; ++i) {
          progress("writes x" + std::to_string(clients), static_cast<int>(i), static_cast<int>(systems.size()));
          auto term_before = systems[i]->raft_term();
          auto peak = peak_rss_during(systems[i]->server_pids(), [&] { per.push_back(systems[i]->writes(clients, load_seconds)); });
          report.rss_load_mib[i] = std::max(report.rss_load_mib[i], peak);
          // Elections with no fault: the terms the load saw start.
          auto term_after = systems[i]->raft_term();
          auto& elections = report.load_elections[i];
          if (term_before && term_after && elections) *elections += *term_after - *term_before;
          else elections.reset();
        }
        report.writes.push_back(per);
        report.load_seconds_total += load_seconds;
      }
      fmt::print(stderr, "\n");
    }
    if (recovery_entries > 0 && !stop_requested) {
      fmt::print(stderr, "recovery: writing {} entries while a master is down...\n", recovery_entries);
      report.recovery = conclave->recovery(recovery_entries);
    }
    if (scale_sessions > 0 && !stop_requested) {
      for (const auto& s : systems) {
        fmt::print(stderr, "heartbeat scale: {} with {} sessions...\n", s->name(), scale_sessions);
        report.scale.push_back(s->scale(scale_sessions, scale_seconds));
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "\nconclave-bench: {}\n", e.what());
    return 1;
  }  // every process stops here, by pid
  if (!svg.empty()) write_svg(svg, report);
  if (!writes_svg.empty()) write_writes_svg(writes_svg, report);
  if (!locks_svg.empty()) write_locks_svg(locks_svg, report);
  if (json) print_json(report);
  else print_table(report);
  return stop_requested ? 130 : 0;
}
