// conclave-bench: starts a local conclave cluster (masters and workers as
// processes on loopback), runs failover and coordination scenarios against
// it, and stops everything it started (by pid, also on Ctrl-C).
//
//   conclave-bench [--masters 3] [--workers 2] [--trials 10] [--scenarios LIST]
//                  [--seconds 3] [--json] [--svg FILE] [--binary PATH] [--compare etcd,zookeeper]
//
// Scenarios (default: all): leader-crash (kill -9), leader-freeze (SIGSTOP),
// leader-stop (SIGTERM, graceful), leader-cutoff (the transport fault hook),
// worker-crash (kill -9 of a worker until every master reports it dead),
// lock-cycle (uncontended acquire + release), lock-handoff (release to the
// next of four contenders), write (one durable write); then durable write
// throughput with 1, 8 and 64 closed-loop clients (--seconds each, 0: skip).
// Each trial's time is in milliseconds. --compare is not available yet:
// conclave-bench says so and runs conclave alone.
#include <fmt/core.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "bench/load.hpp"
#include "schema/registry_codec.hpp"
#include "test/process_cluster.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

volatile sig_atomic_t interrupted = 0;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

struct result {
  std::string scenario;
  std::vector<double> ms;
  int failed = 0;
  double pct(double p) const {
    if (ms.empty()) return 0;
    auto v = ms;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
  }
};

class harness {
 public:
  harness(int masters, int workers, std::string binary)
      : cluster_(masters, {"-r", "master", "--session-ttl-ms", "1000"}, binary), workers_(workers) {
    if (!cluster_.wait_for_leader(20s)) throw std::runtime_error("no leader");
    for (int w = 1; w <= workers; ++w) start_worker(w);
    wait_members(masters + workers);
  }

  process_cluster& cluster() { return cluster_; }

  void start_worker(int w) {
    auto name = "bench-worker-" + std::to_string(w);
    pids_[w] = cluster_.spawn({cluster_.binary(), "-r", "worker", "--name", name, "--peers", cluster_.peers(),
                               "--cluster-id", cluster_.cluster_id, "--session-ttl-ms", "1000"},
                              name + ".log");
  }

  void wait_members(int alive) {
    auto until = clock_type::now() + 20s;
    while (clock_type::now() < until) {
      auto r = cluster_.client().read("members alive", 2s);
      if (r) {
        int n = 0;
        for (auto p = r->result.find("\"status\":\"alive\""); p != std::string::npos; p = r->result.find("\"status\":\"alive\"", p + 1)) ++n;
        if (n >= alive) return;
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  bool write(raft_client& c, const std::string& key, std::chrono::milliseconds deadline) {
    auto r = c.propose(wire::encode_command(registry::put{key, "v", 0, std::nullopt}), deadline);
    return r.has_value();
  }

  // From the fault until a master other than the old leader acknowledged a write.
  std::optional<double> leader_fault(const std::string& kind) {
    auto old = cluster_.wait_for_leader(10s);
    if (!old) return std::nullopt;
    for (int i = 0; i < 3; ++i) write(cluster_.client(), "/bench/warm", 5s);
    std::this_thread::sleep_for(300ms);
    auto start = clock_type::now();
    if (kind == "leader-crash") std::thread([this, old] { cluster_.signal(*old, SIGKILL); }).detach();
    if (kind == "leader-freeze") cluster_.signal(*old, SIGSTOP);
    if (kind == "leader-stop") std::thread([this, old] { cluster_.signal(*old, SIGTERM); }).detach();
    if (kind == "leader-cutoff") (void)cluster_.client().call(cluster_.at(*old).address, cluster_.isolate_request(*old));
    // Every master answers status itself (never passed on), so polling it
    // finds the new leader without waiting on a request lost with the old one.
    std::optional<double> t;
    while (!t && ms_since(start) < 15000) {
      for (const auto& m : cluster_.members()) {
        if (m.id == *old || m.pid <= 0) continue;
        auto s = cluster_.client().call(m.address, client::status_request{}, 100ms);
        if (!s || !std::holds_alternative<client::status>(*s) || std::get<client::status>(*s).role != "leader") continue;
        auto r = cluster_.client().call(
            m.address, client::propose{wire::encode_command(registry::put{"/bench/after", "v", 0, std::nullopt})}, 2000ms);
        if (r && std::holds_alternative<client::committed>(*r)) {
          t = ms_since(start);
          break;
        }
      }
    }
    // Put the cluster back together for the next trial.
    if (kind == "leader-freeze") cluster_.signal(*old, SIGCONT);
    if (kind == "leader-cutoff") (void)cluster_.client().call(cluster_.at(*old).address, client::set_faults{});
    if (kind == "leader-crash" || kind == "leader-stop") {
      while (cluster_.running(*old)) std::this_thread::sleep_for(5ms);
      cluster_.start(*old);
    }
    std::this_thread::sleep_for(700ms);
    return t;
  }

  // From kill -9 of a worker until every master's own registry says it is dead.
  std::optional<double> worker_crash() {
    int w = 1;
    auto name = "bench-worker-" + std::to_string(w);
    std::this_thread::sleep_for(300ms);  // a few heartbeats since it (re)started
    auto start = clock_type::now();
    ::kill(pids_[w], SIGKILL);
    std::optional<double> t;
    while (!t && ms_since(start) < 15000) {
      bool everywhere = true;
      for (const auto& m : cluster_.members()) {
        auto r = cluster_.client().call(m.address, client::stale_read{"members dead"}, 500ms);
        if (!r || !std::holds_alternative<client::read_result>(*r) ||
            std::get<client::read_result>(*r).result.find("\"" + name + "\"") == std::string::npos) {
          everywhere = false;
          break;
        }
      }
      if (everywhere) t = ms_since(start);
      else std::this_thread::sleep_for(2ms);
    }
    cluster_.wait_exit(pids_[w], 1s);
    start_worker(w);
    wait_members(static_cast<int>(cluster_.members().size()) + workers_);
    return t;
  }

  std::optional<double> lock_cycle() {
    auto& c = cluster_.client();
    if (!session_) {
      auto r = c.propose(wire::encode_command(registry::open_session{"bench", 60000}), 5s);
      if (!r) return std::nullopt;
      session_ = wire::decode_result(r->result)->outcome.value;
    }
    auto start = clock_type::now();
    auto a = c.propose(wire::encode_command(registry::acquire_lock{"bench-lock", session_, true}), 5s);
    auto b = c.propose(wire::encode_command(registry::release_lock{"bench-lock", session_}), 5s);
    if (!a || !b) return std::nullopt;
    return ms_since(start);
  }

  // One lock, four contenders: from the holder's release until the next
  // contender is seen holding it (first come, first served).
  std::optional<double> lock_handoff() {
    auto& c = cluster_.client();
    while (contenders_.size() < 4) {
      auto r = c.propose(wire::encode_command(registry::open_session{"contender", 60000}), 5s);
      if (!r) return std::nullopt;
      auto s = wire::decode_result(r->result)->outcome.value;
      if (!c.propose(wire::encode_command(registry::acquire_lock{"bench-handoff", s, true}), 5s)) return std::nullopt;
      contenders_.push_back(s);
    }
    auto holder = contenders_.front();
    auto next = contenders_[1];
    auto start = clock_type::now();
    if (!c.propose(wire::encode_command(registry::release_lock{"bench-handoff", holder}), 5s)) return std::nullopt;
    std::optional<double> t;
    while (!t && ms_since(start) < 5000) {
      auto r = c.read("lock bench-handoff", 2s);
      if (r && r->result.find("\"holder\":" + std::to_string(next) + ",") != std::string::npos) t = ms_since(start);
    }
    // The released contender queues again at the back.
    (void)c.propose(wire::encode_command(registry::acquire_lock{"bench-handoff", holder, true}), 5s);
    std::rotate(contenders_.begin(), contenders_.begin() + 1, contenders_.end());
    return t;
  }

  // Durable writes from `clients` closed-loop writers for `seconds`.
  bench::load_result writes(caf::actor_system& sys, int clients, double seconds) {
    auto leader = cluster_.wait_for_leader(10s);
    if (!leader) return {};
    auto handle = sys.middleman().remote_actor(cluster_.at(*leader).address.host, cluster_.at(*leader).address.port);
    if (!handle) return {};
    std::string value(100, 'v');
    return bench::run_load(sys, *handle, cluster_.cluster_id, clients, seconds, [value](int who, std::uint64_t n) {
      return wire::encode_command(registry::put{"/bench/load/" + std::to_string(who) + "/" + std::to_string(n % 64),
                                                value, 0, std::nullopt});
    });
  }

  // Resident memory of each running master, in MiB (from /proc).
  std::vector<double> master_rss_mib() {
    std::vector<double> out;
    for (const auto& m : cluster_.members()) {
      if (m.pid <= 0) continue;
      std::ifstream status("/proc/" + std::to_string(m.pid) + "/status");
      std::string line;
      while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) out.push_back(std::strtod(line.c_str() + 6, nullptr) / 1024.0);
      }
    }
    return out;
  }

  std::optional<double> one_write() {
    auto start = clock_type::now();
    if (!write(cluster_.client(), "/bench/write", 5s)) return std::nullopt;
    return ms_since(start);
  }

 private:
  process_cluster cluster_;
  int workers_;
  std::map<int, pid_t> pids_;
  registry::session_id session_ = 0;
  std::vector<registry::session_id> contenders_;
};

// Failover-time CDFs, one curve per scenario, readable without the table.
void write_svg(const std::string& path, const std::vector<result>& results) {
  const double w = 720, h = 420, left = 70, right = 200, top = 30, bottom = 50;
  double max_ms = 1;
  for (const auto& r : results) {
    for (auto v : r.ms) max_ms = std::max(max_ms, v);
  }
  auto x = [&](double ms) { return left + (w - left - right) * std::log10(1 + ms) / std::log10(1 + max_ms); };
  auto y = [&](double f) { return top + (h - top - bottom) * (1 - f); };
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"};
  std::ofstream out(path);
  out << fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif' font-size='12'>\n", w, h);
  out << fmt::format("<text x='{}' y='18' font-size='14'>conclave: time per trial (CDF), ms, log scale</text>\n", left);
  out << fmt::format("<line x1='{0}' y1='{1}' x2='{2}' y2='{1}' stroke='black'/><line x1='{0}' y1='{3}' x2='{0}' y2='{1}' stroke='black'/>\n",
                     left, h - bottom, w - right, top);
  for (double ms : {1.0, 10.0, 100.0, 1000.0, 10000.0}) {
    if (ms > max_ms * 1.5) break;
    out << fmt::format("<text x='{}' y='{}' text-anchor='middle'>{}</text>\n", x(ms), h - bottom + 18, ms);
  }
  for (double f : {0.0, 0.5, 0.9, 1.0}) out << fmt::format("<text x='{}' y='{}' text-anchor='end'>{}</text>\n", left - 6, y(f) + 4, f);
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto v = results[i].ms;
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    std::string points;
    for (std::size_t k = 0; k < v.size(); ++k) {
      points += fmt::format("{:.1f},{:.1f} {:.1f},{:.1f} ", x(v[k]), y(double(k) / v.size()), x(v[k]), y(double(k + 1) / v.size()));
    }
    auto color = colors[i % 7];
    out << fmt::format("<polyline fill='none' stroke='{}' stroke-width='2' points='{}'/>\n", color, points);
    out << fmt::format("<text x='{}' y='{}' fill='{}'>{} (median {:.1f})</text>\n", w - right + 10, top + 18 * (i + 1), color,
                       results[i].scenario, results[i].pct(0.5));
  }
  out << "</svg>\n";
}

}  // namespace

int main(int argc, char** argv) {
  int masters = 3, workers = 2, trials = 10;
  bool json = false;
  std::string svg, binary = "build/roles/conclave", compare;
  std::vector<std::string> scenarios = {"leader-crash", "leader-freeze", "leader-stop", "leader-cutoff",
                                        "worker-crash", "lock-cycle",   "lock-handoff", "write"};
  double load_seconds = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--masters") masters = std::atoi(next().c_str());
    else if (a == "--workers") workers = std::atoi(next().c_str());
    else if (a == "--trials") trials = std::atoi(next().c_str());
    else if (a == "--json") json = true;
    else if (a == "--svg") svg = next();
    else if (a == "--binary") binary = next();
    else if (a == "--compare") compare = next();
    else if (a == "--seconds") load_seconds = std::atof(next().c_str());
    else if (a == "--scenarios") {
      scenarios.clear();
      std::stringstream list(next());
      std::string s;
      while (std::getline(list, s, ',')) scenarios.push_back(s);
    } else {
      fmt::print(stderr, "usage: conclave-bench [--masters N] [--workers N] [--trials N] [--scenarios LIST] [--json] "
                         "[--svg FILE] [--binary PATH]\n");
      return 2;
    }
  }
  if (!compare.empty()) {
    fmt::print(stderr, "conclave-bench: --compare {} is not available yet; running conclave alone\n", compare);
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) { interrupted = 1; };
  sigaction(SIGINT, &sa, nullptr);

  std::vector<result> results;
  std::vector<double> rss_idle, rss_after;
  std::vector<bench::load_result> loads;
  {
    harness b(masters, workers, binary);
    std::this_thread::sleep_for(1s);
    rss_idle = b.master_rss_mib();
    for (const auto& s : scenarios) {
      result r{s, {}, 0};
      for (int t = 0; t < trials && !interrupted; ++t) {
        fmt::print(stderr, "\r{:<14} [{:<20}] {}/{}", s, std::string(static_cast<std::size_t>(20 * t / std::max(trials, 1)), '#'), t, trials);
        std::optional<double> v;
        if (s.rfind("leader-", 0) == 0) v = b.leader_fault(s);
        else if (s == "worker-crash") v = b.worker_crash();
        else if (s == "lock-cycle") v = b.lock_cycle();
        else if (s == "lock-handoff") v = b.lock_handoff();
        else if (s == "write") v = b.one_write();
        else {
          fmt::print(stderr, "\nconclave-bench: unknown scenario '{}'\n", s);
          return 2;
        }
        if (v) r.ms.push_back(*v);
        else ++r.failed;
      }
      fmt::print(stderr, "\r{:<14} [{}] {}/{}\n", s, std::string(20, '#'), trials, trials);
      results.push_back(r);
      if (interrupted) break;
    }
    if (load_seconds > 0 && !interrupted) {
      caf::actor_system sys{client_config()};
      for (int clients : {1, 8, 64}) {
        fmt::print(stderr, "\rwrites with {} clients...", clients);
        loads.push_back(b.writes(sys, clients, load_seconds));
      }
      fmt::print(stderr, "\n");
    }
    rss_after = b.master_rss_mib();
  }  // every process stops here
  auto rss = [](const std::vector<double>& v) { return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()); };
  (void)rss;
  if (!svg.empty()) write_svg(svg, results);
  if (json) {
    fmt::print("{{\"benchmark\":\"conclave\",\"masters\":{},\"workers\":{},\"results\":[", masters, workers);
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      fmt::print("{}{{\"scenario\":\"{}\",\"ms_p50\":{:.2f},\"ms_p99\":{:.2f},\"ms_max\":{:.2f},\"trials\":{},\"failed\":{}}}",
                 i ? "," : "", r.scenario, r.pct(0.5), r.pct(0.99), r.pct(1.0), r.ms.size(), r.failed);
    }
    fmt::print("],\"writes\":[");
    for (std::size_t i = 0; i < loads.size(); ++i) {
      fmt::print("{}{{\"clients\":{},\"writes_per_s\":{:.0f},\"latency_ms_p50\":{:.3f},\"latency_ms_p99\":{:.3f},\"errors\":{}}}",
                 i ? "," : "", loads[i].proposers, loads[i].commits_per_s, loads[i].pct(0.5), loads[i].pct(0.99), loads[i].errors);
    }
    fmt::print("],\"master_rss_mib_idle_max\":{:.1f},\"master_rss_mib_after_max\":{:.1f}}}\n", rss(rss_idle),
               rss(rss_after));
  } else {
    fmt::print("conclave, {} masters and {} workers on loopback (ms)\n", masters, workers);
    fmt::print("{:<16} {:>9} {:>9} {:>9} {:>7}\n", "scenario", "median", "p99", "max", "trials");
    for (const auto& r : results) {
      fmt::print("{:<16} {:>9.1f} {:>9.1f} {:>9.1f} {:>7}{}\n", r.scenario, r.pct(0.5), r.pct(0.99), r.pct(1.0), r.ms.size(),
                 r.failed ? fmt::format(" ({} failed)", r.failed) : "");
    }
    if (!loads.empty()) {
      fmt::print("durable writes (100-byte values)\n{:>8} {:>10} {:>9} {:>9} {:>7}\n", "clients", "writes/s", "p50 ms", "p99 ms", "errors");
      for (const auto& l : loads) {
        fmt::print("{:>8} {:>10.0f} {:>9.3f} {:>9.3f} {:>7}\n", l.proposers, l.commits_per_s, l.pct(0.5), l.pct(0.99), l.errors);
      }
    }
    fmt::print("master RSS: {:.1f} MiB idle, {:.1f} MiB after the scenarios (largest master)\n", rss(rss_idle),
               rss(rss_after));
  }
  return interrupted ? 130 : 0;
}
