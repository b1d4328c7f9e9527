#include "bench/report.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>

namespace conclave::bench {

namespace {

// The index of the first system whose name starts with `prefix`.
std::optional<std::size_t> system_index(const run_report& r, const std::string& prefix) {
  for (std::size_t i = 0; i < r.systems.size(); ++i) {
    if (r.systems[i].rfind(prefix, 0) == 0) return i;
  }
  return std::nullopt;
}

// The row system `i`'s ratios compare with: the first driven by the same
// client (conclave's row of that client, as conclave-bench orders them).
std::size_t base_of(const run_report& r, std::size_t i) {
  for (std::size_t j = 0; j < i && i < r.clients.size(); ++j)
    if (r.clients[j] == r.clients[i]) return j;
  return r.clients.empty() ? 0 : i;
}

bool native(const run_report& r, std::size_t i) { return i >= r.clients.size() || r.clients[i] == "native"; }

const trials* find_trials(const run_report& r, const std::string& scenario, std::size_t system) {
  auto it = r.times.find(scenario);
  if (it == r.times.end() || system >= it->second.size() || it->second[system].ms.empty()) return nullptr;
  return &it->second[system];
}

std::optional<double> median(const run_report& r, const std::string& scenario, const std::string& system) {
  auto i = system_index(r, system);
  const trials* t = i ? find_trials(r, scenario, *i) : nullptr;
  if (!t) return std::nullopt;
  return t->pct(0.5);
}

std::optional<double> p99(const run_report& r, const std::string& scenario) {
  const trials* t = find_trials(r, scenario, 0);
  if (!t) return std::nullopt;
  return t->pct(0.99);
}

std::optional<double> min_of(std::optional<double> a, std::optional<double> b) {
  if (a && b) return std::min(*a, *b);
  return a ? a : b;
}

std::optional<double> writes_at(const run_report& r, const std::string& system, int clients) {
  auto i = system_index(r, system);
  if (!i) return std::nullopt;
  for (const auto& per_system : r.writes) {
    if (*i < per_system.size() && per_system[*i].clients == clients && per_system[*i].writes_per_s > 0) {
      return per_system[*i].writes_per_s;
    }
  }
  return std::nullopt;
}

std::optional<double> writes_at_64(const run_report& r, const std::string& system) { return writes_at(r, system, 64); }

struct target {
  std::string text;
  std::string measured;   // empty: not measured in this run
  bool met = false;
};

std::string fmt_ms(double v) { return v < 10 ? fmt::format("{:.2f} ms", v) : fmt::format("{:.0f} ms", v); }

// Issue #6's targets, checked against this run's figures.
std::vector<target> targets(const run_report& r) {
  std::vector<target> out;
  auto add = [&](std::string text, std::optional<double> value, std::optional<double> bound, bool below,
                 const std::function<std::string(double, double)>& show) {
    target t{std::move(text), "", false};
    if (value && bound) {
      t.met = below ? *value <= *bound : *value >= *bound;
      t.measured = show(*value, *bound);
    }
    out.push_back(t);
  };
  auto vs_limit = [](double v, double b) { return fmt::format("{} (limit {})", fmt_ms(v), fmt_ms(b)); };
  auto ratio = [](double v, double b) { return fmt::format("{:.3f}x (limit {:.3f}x)", v, b); };
  auto etcd_m = "etcd (matched";
  auto zk_m = "zookeeper (matched";
  add("crash failover p99 under 50 ms", p99(r, "leader-crash"), 50.0, true, vs_limit);
  {
    auto c = median(r, "leader-crash", "conclave"), e = median(r, "leader-crash", etcd_m);
    add("crash failover at most 1/10 of etcd's at matched timing (medians)",
        c && e ? std::optional<double>(*c / *e) : std::nullopt, 0.1, true, ratio);
  }
  add("graceful handoff p50 under 5 ms", median(r, "leader-stop", "conclave"), 5.0, true, vs_limit);
  add("frozen-leader failover no slower than etcd at matched timing (medians)", median(r, "leader-freeze", "conclave"),
      median(r, "leader-freeze", etcd_m), true, vs_limit);
  add("worker crash seen dead by all masters p99 under 1 s", p99(r, "worker-crash"), 1000.0, true, vs_limit);
  add("worker crash median at most half the faster of etcd and ZooKeeper at their smallest TTL",
      median(r, "worker-crash", "conclave"),
      [&]() -> std::optional<double> {
        auto f = min_of(median(r, "worker-crash", etcd_m), median(r, "worker-crash", zk_m));
        return f ? std::optional<double>(*f / 2) : std::nullopt;
      }(),
      true, vs_limit);
  {
    // The better of etcd's configurations is the bar.
    auto c = writes_at_64(r, "conclave");
    auto a = writes_at_64(r, etcd_m), b = writes_at_64(r, "etcd (defaults");
    auto e_best = a && b ? std::optional<double>(std::max(*a, *b)) : a ? a : b;
    add("durable writes at 64 clients at least 5x etcd's", c && e_best ? std::optional<double>(*c / *e_best) : std::nullopt,
        5.0, false, [](double v, double b) { return fmt::format("{:.1f}x (needs {:.0f}x)", v, b); });
  }
  {
    auto faster = min_of(median(r, "lock-cycle", etcd_m), median(r, "lock-cycle", zk_m));
    add("uncontended lock cycle at most 1/3 of the faster of etcd's and ZooKeeper's", median(r, "lock-cycle", "conclave"),
        faster ? std::optional<double>(*faster / 3) : std::nullopt, true, vs_limit);
  }
  {
    std::optional<double> cpu;
    if (!r.scale.empty() && r.scale[0] && r.scale[0]->sessions >= 10000) cpu = r.scale[0]->leader_cpu_pct;
    add("10,000 workers on one leader with its CPU under 50% of one core", cpu, 50.0, true,
        [](double v, double b) { return fmt::format("{:.0f}% (limit {:.0f}%)", v, b); });
  }
  {
    auto e = system_index(r, "etcd");
    std::optional<double> c, half;
    if (!r.rss_idle_mib.empty()) c = r.rss_idle_mib[0];
    if (e && *e < r.rss_idle_mib.size()) half = r.rss_idle_mib[*e] / 2;
    add("master RSS idle under half of an etcd member's", c, half, true,
        [](double v, double b) { return fmt::format("{:.1f} MiB (limit {:.1f} MiB)", v, b); });
  }
  // Issue #13: push.
  {
    std::optional<std::size_t> c, e;
    for (std::size_t i = 0; i < r.watch.size() && i < r.systems.size(); ++i) {
      if (!r.watch[i] || r.watch[i]->delivery_ms.empty()) continue;
      if (r.systems[i] == "conclave") c = i;
      if (r.systems[i].rfind(etcd_m, 0) == 0 && native(r, i)) e = i;
    }
    auto p99_of = [&](std::optional<std::size_t> i) -> std::optional<double> {
      if (!i) return std::nullopt;
      return percentile(r.watch[*i]->delivery_ms, 0.99);
    };
    add("watch: p99 delivery to every watcher under 20 ms", p99_of(c), 20.0, true, vs_limit);
    add("watch: p99 delivery no more than etcd's in the same run", p99_of(c), p99_of(e), true, vs_limit);
    std::optional<double> idle;
    if (c) idle = r.watch[*c]->leader_cpu_pct - r.watch[*c]->leader_cpu_base_pct;
    add("watch: idle watchers cost the leader under 2% of a core", idle, 2.0, true,
        [](double v, double b) { return fmt::format("{:.1f}% (limit {:.1f}%)", v, b); });
  }
  // Issue #16: faster than etcd (matched timing) on every figure, in the same run.
  {
    auto over = [&](std::optional<double> c, std::optional<double> e) {
      return c && e && *e > 0 ? std::optional<double>(*c / *e) : std::nullopt;
    };
    auto at_most = [](double v, double b) { return fmt::format("{:.2f}x etcd's (limit {:.2f}x)", v, b); };
    auto at_least = [](double v, double b) { return fmt::format("{:.2f}x etcd's (needs {:.2f}x)", v, b); };
    // conclave's median over etcd's, or its writes/s over etcd's.
    auto times = [&](const char* scenario) { return over(median(r, scenario, "conclave"), median(r, scenario, etcd_m)); };
    auto rate = [&](int clients) { return over(writes_at(r, "conclave", clients), writes_at(r, etcd_m, clients)); };
    add("#16 one durable write at most 0.7x etcd's (medians)", times("write"), 0.7, true, at_most);
    add("#16 writes/s at 1 client at least 1.4x etcd's", rate(1), 1.4, false, at_least);
    add("#16 lock acquire + release at most 0.5x etcd's (medians)", times("lock-cycle"), 0.5, true, at_most);
    add("#16 lock hand-off at most etcd's (medians)", times("lock-handoff"), 1.0, true, at_most);
    add("#16 writes/s at 64 clients at least 5x etcd's", rate(64), 5.0, false, at_least);
    add("#16 frozen-leader failover at most etcd's (medians)", times("leader-freeze"), 1.0, true, at_most);
    std::optional<double> c, e;
    for (std::size_t i = 0; i < r.load_elections.size() && i < r.systems.size(); ++i) {
      if (!r.load_elections[i]) continue;
      if (!c && r.systems[i] == "conclave") c = static_cast<double>(*r.load_elections[i]);
      if (!e && r.systems[i].rfind(etcd_m, 0) == 0) e = static_cast<double>(*r.load_elections[i]);
    }
    add("#16 no more elections than etcd under the write loads, no fault", c, e, true,
        [](double v, double b) { return fmt::format("{:.0f} terms (etcd {:.0f})", v, b); });
  }
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::string describe_scenario(const std::string& s) {
  if (s == "leader-crash") return "kill -9 of the leader until a write is acknowledged";
  if (s == "leader-freeze") return "SIGSTOP of the leader until a write is acknowledged";
  if (s == "leader-stop") return "SIGTERM of the leader (graceful) until a write is acknowledged";
  if (s == "leader-cutoff") return "leader cut off by the transport fault hook until a write is acknowledged";
  if (s == "worker-crash") return "kill -9 of a session owner until every master reports it gone";
  if (s == "failover-workers") return "kill -9 of the leader until every worker's heartbeat is answered by the new one";
  if (s == "failover-lock") return "kill -9 of the leader and its engine until a queued contender holds their lock";
  if (s == "lock-cycle") return "uncontended lock acquire + release";
  if (s == "lock-handoff") return "release until the next of four contenders holds the lock";
  if (s == "write") return "one durable write";
  if (s == "watch") return "watchers on one prefix: from a write's send until every watcher delivered it";
  if (s == "embedded") return "puts and gets from the threads of a host embedding the leader, against external clients";
  return s;
}

void print_table(const run_report& r) {
  fmt::print("machine: {}\ncommand: {}\n", r.machine, r.command);
  bool mixed = false;
  for (std::size_t i = 0; i < r.systems.size(); ++i) {
    fmt::print("  {} [client: {}]: {}\n", r.systems[i], i < r.clients.size() ? r.clients[i] : "native",
               r.descriptions[i]);
    mixed = mixed || !native(r, i);
  }
  if (mixed) {
    fmt::print("  conclave/this: conclave's figure over the row's, both driven by the same client (native rows: the "
               "\"conclave\" row; etcd API rows: \"conclave (etcd API)\")\n");
  }
  for (const auto& s : r.scenarios) {
    auto it = r.times.find(s);
    if (it == r.times.end()) continue;
    fmt::print("\n{}: {} (ms)\n", s, describe_scenario(s));
    fmt::print("  {:<32} {:>9} {:>9} {:>9} {:>7} {:>13}\n", "system", "median", "p99", "max", "trials", "conclave/this");
    const auto& per = it->second;
    for (std::size_t i = 0; i < per.size() && i < r.systems.size(); ++i) {
      if (per[i].ms.empty() && per[i].failed == 0) continue;  // not supported by this system
      double base = per[base_of(r, i)].pct(0.5);
      auto ratio = per[i].ms.empty() || per[i].pct(0.5) <= 0 ? std::string("-")
                                                              : fmt::format("{:.3f}", base / per[i].pct(0.5));
      fmt::print("  {:<32} {:>9.1f} {:>9.1f} {:>9.1f} {:>7} {:>13}{}\n", r.systems[i], per[i].pct(0.5), per[i].pct(0.99),
                 per[i].pct(1.0), per[i].ms.size(), ratio,
                 per[i].failed ? fmt::format("  ({} failed)", per[i].failed) : "");
    }
    if (auto nl = r.new_leader.find(s); nl != r.new_leader.end()) {
      fmt::print("  new leader known after (median ms):");
      for (std::size_t i = 0; i < nl->second.size() && i < r.systems.size(); ++i) {
        if (!nl->second[i].ms.empty()) fmt::print(" {} {:.1f};", r.systems[i], nl->second[i].pct(0.5));
      }
      fmt::print("\n");
    }
  }
  if (!r.writes.empty()) {
    fmt::print("\ndurable writes, 100-byte values, closed loop\n");
    fmt::print("  {:<32} {:>8} {:>10} {:>9} {:>9} {:>7} {:>13}\n", "system", "clients", "writes/s", "p50 ms", "p99 ms",
               "errors", "conclave/this");
    for (const auto& per : r.writes) {
      for (std::size_t i = 0; i < per.size() && i < r.systems.size(); ++i) {
        auto ratio = per[i].writes_per_s > 0
                         ? fmt::format("{:.2f}", per[base_of(r, i)].writes_per_s / per[i].writes_per_s)
                         : "-";
        fmt::print("  {:<32} {:>8} {:>10.0f} {:>9.3f} {:>9.3f} {:>7} {:>13}\n", r.systems[i], per[i].clients,
                   per[i].writes_per_s, per[i].pct(0.5), per[i].pct(0.99), per[i].errors, ratio);
      }
    }
  }
  bool any_elections = std::any_of(r.load_elections.begin(), r.load_elections.end(), [](const auto& e) { return e.has_value(); });
  if (any_elections && r.load_seconds_total > 0) {
    fmt::print("\nelections with no fault: Raft terms started during the write loads ({:.0f} s per system)\n",
               r.load_seconds_total);
    fmt::print("  {:<32} {:>9} {:>12}\n", "system", "terms", "per minute");
    for (std::size_t i = 0; i < r.load_elections.size() && i < r.systems.size(); ++i) {
      if (!r.load_elections[i]) continue;
      fmt::print("  {:<32} {:>9} {:>12.2f}\n", r.systems[i], *r.load_elections[i],
                 60.0 * static_cast<double>(*r.load_elections[i]) / r.load_seconds_total);
    }
  }
  fmt::print("\nmemory (largest server, MiB)\n  {:<32} {:>9} {:>12}\n", "system", "idle", "under load");
  for (std::size_t i = 0; i < r.systems.size() && i < r.rss_idle_mib.size(); ++i) {
    fmt::print("  {:<32} {:>9.1f} {:>12.1f}\n", r.systems[i], r.rss_idle_mib[i],
               i < r.rss_load_mib.size() ? r.rss_load_mib[i] : 0.0);
  }
  bool any_scale = std::any_of(r.scale.begin(), r.scale.end(), [](const auto& s) { return s.has_value(); });
  if (any_scale) {
    fmt::print("\nheartbeat scale\n  {:<32} {:>9} {:>9} {:>11} {:>9} {:>9} {:>11} {:>7}\n", "system", "sessions",
               "every ms", "leader CPU%", "hb p50", "hb p99", "detect ms", "errors");
    for (std::size_t i = 0; i < r.scale.size() && i < r.systems.size(); ++i) {
      if (!r.scale[i]) continue;
      const auto& s = *r.scale[i];
      fmt::print("  {:<32} {:>9} {:>9.0f} {:>11.1f} {:>9.2f} {:>9.2f} {:>11.1f} {:>7}\n", r.systems[i], s.sessions,
                 s.interval_ms, s.leader_cpu_pct, s.heartbeat_ms_p50, s.heartbeat_ms_p99, s.detect_ms, s.errors);
    }
  }
  if (r.recovery) {
    const auto& v = *r.recovery;
    fmt::print("\nrecovery (conclave): {} entries written while a master was down{}\n", v.entries, v.ok ? "" : " (FAILED)");
    fmt::print("  restart far behind until caught up: {:.0f} ms, peak RSS {:.1f} MiB\n", v.catch_up_ms,
               v.catch_up_peak_rss_mib);
    fmt::print("  kill -9 and restart with every entry local: {:.0f} ms, peak RSS {:.1f} MiB\n", v.restart_ms,
               v.restart_peak_rss_mib);
  }
  bool any_watch = std::any_of(r.watch.begin(), r.watch.end(), [](const auto& w) { return w.has_value(); });
  if (any_watch) {
    fmt::print("\nwatch: {} (ms)\n", describe_scenario("watch"));
    fmt::print("  {:<32} {:>8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13} {:>12} {:>13}\n", "system", "watchers",
               "writes", "each p50", "each p99", "all p50", "all max", "write p50", "leader CPU%", "servers CPU%",
               "watchers CPU%");
    for (std::size_t i = 0; i < r.watch.size() && i < r.systems.size(); ++i) {
      if (!r.watch[i]) continue;
      const auto& w = *r.watch[i];
      fmt::print("  {:<32} {:>8} {:>6} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.2f} {:>13} {:>12.1f} {:>13.1f}{}{}\n",
                 r.systems[i],
                 w.watchers, w.all_delivered_ms.size(), percentile(w.delivery_ms, 0.5), percentile(w.delivery_ms, 0.99),
                 percentile(w.all_delivered_ms, 0.5), percentile(w.all_delivered_ms, 1.0), percentile(w.ack_ms, 0.5),
                 fmt::format("{:.1f} ({:.1f})", w.leader_cpu_pct, w.leader_cpu_base_pct), w.servers_cpu_pct,
                 w.watchers_cpu_pct, w.incomplete ? fmt::format("  ({} writes not delivered to every watcher within 10 s)", w.incomplete) : "",
                 w.failure.empty() ? "" : "  FAILED: " + w.failure);
    }
    fmt::print("  each: per (write, watcher); all: per write, until its last watcher had it; CPU% of one core over {:.0f} s "
               "with every watch idle (in brackets: the leader before any watcher existed)\n",
               r.watch.front() ? r.watch.front()->idle_seconds : 0.0);
    for (std::size_t i = 0; i < r.watch.size() && i < r.systems.size(); ++i) {
      if (r.watch[i]) fmt::print("  {}: {}\n", r.systems[i], r.watch[i]->hosting);
    }
  }
  if (r.embedded) {
    const auto& e = *r.embedded;
    fmt::print("\nembedded: {} ({} threads, {} rounds of {:.1f} s per load)\n", describe_scenario("embedded"), e.threads,
               e.rounds, e.seconds);
    fmt::print("  {:<76} {:>9} {:>8} {:>8} {:>7} {:>10}\n", "how", "ops/s", "p50 ms", "p99 ms", "errors", "first/this");
    for (const auto& run : e.runs) {
      fmt::print("  {:<76} {:>9.0f} {:>8.3f} {:>8.3f} {:>7} {:>10}\n", run.how, run.ops_per_s, run.p50_ms, run.p99_ms,
                 run.errors, run.ops_per_s > 0 ? fmt::format("{:.2f}", e.runs.front().ops_per_s / run.ops_per_s) : "-");
    }
    for (const auto& n : e.notes) fmt::print("  note: {}\n", n);
    if (!e.failure.empty()) fmt::print("  FAILED: {}\n", e.failure);
  }
  fmt::print("\ntargets (issues #6, #13 and #16)\n");
  for (const auto& t : targets(r)) {
    fmt::print("  [{}] {}{}\n", t.measured.empty() ? "not measured" : t.met ? "met" : "MISSED", t.text,
               t.measured.empty() ? "" : ": " + t.measured);
  }
}

void print_json(const run_report& r) {
  fmt::print("{{\"benchmark\":\"conclave-bench\",\"machine\":\"{}\",\"command\":\"{}\",\"systems\":[", json_escape(r.machine),
             json_escape(r.command));
  for (std::size_t i = 0; i < r.systems.size(); ++i) {
    fmt::print("{}{{\"name\":\"{}\",\"client\":\"{}\",\"description\":\"{}\"}}", i ? "," : "",
               json_escape(r.systems[i]), json_escape(i < r.clients.size() ? r.clients[i] : "native"),
               json_escape(r.descriptions[i]));
  }
  fmt::print("],\"results\":[");
  bool first = true;
  for (const auto& s : r.scenarios) {
    auto it = r.times.find(s);
    if (it == r.times.end()) continue;
    for (std::size_t i = 0; i < it->second.size(); ++i) {
      const auto& t = it->second[i];
      if (t.ms.empty() && t.failed == 0) continue;
      fmt::print("{}{{\"scenario\":\"{}\",\"system\":\"{}\",\"ms_p50\":{:.2f},\"ms_p99\":{:.2f},\"ms_max\":{:.2f},"
                 "\"trials\":{},\"failed\":{}",
                 first ? "" : ",", s, json_escape(r.systems[i]), t.pct(0.5), t.pct(0.99), t.pct(1.0), t.ms.size(), t.failed);
      if (auto nl = r.new_leader.find(s); nl != r.new_leader.end() && i < nl->second.size() && !nl->second[i].ms.empty()) {
        fmt::print(",\"new_leader_ms_p50\":{:.2f}", nl->second[i].pct(0.5));
      }
      fmt::print("}}");
      first = false;
    }
  }
  fmt::print("],\"writes\":[");
  first = true;
  for (const auto& per : r.writes) {
    for (std::size_t i = 0; i < per.size(); ++i) {
      fmt::print("{}{{\"system\":\"{}\",\"clients\":{},\"writes_per_s\":{:.0f},\"latency_ms_p50\":{:.3f},"
                 "\"latency_ms_p99\":{:.3f},\"errors\":{}}}",
                 first ? "" : ",", json_escape(r.systems[i]), per[i].clients, per[i].writes_per_s, per[i].pct(0.5),
                 per[i].pct(0.99), per[i].errors);
      first = false;
    }
  }
  fmt::print("],\"load_elections\":[");
  first = true;
  for (std::size_t i = 0; i < r.load_elections.size() && i < r.systems.size(); ++i) {
    if (!r.load_elections[i]) continue;
    fmt::print("{}{{\"system\":\"{}\",\"terms\":{},\"seconds\":{:.1f}}}", first ? "" : ",",
               json_escape(r.systems[i]), *r.load_elections[i], r.load_seconds_total);
    first = false;
  }
  fmt::print("],\"memory\":[");
  for (std::size_t i = 0; i < r.rss_idle_mib.size(); ++i) {
    fmt::print("{}{{\"system\":\"{}\",\"rss_mib_idle\":{:.1f},\"rss_mib_load\":{:.1f}}}", i ? "," : "",
               json_escape(r.systems[i]), r.rss_idle_mib[i], i < r.rss_load_mib.size() ? r.rss_load_mib[i] : 0.0);
  }
  fmt::print("],\"scale\":[");
  first = true;
  for (std::size_t i = 0; i < r.scale.size(); ++i) {
    if (!r.scale[i]) continue;
    const auto& s = *r.scale[i];
    fmt::print("{}{{\"system\":\"{}\",\"sessions\":{},\"interval_ms\":{:.0f},\"leader_cpu_pct\":{:.1f},"
               "\"heartbeat_ms_p50\":{:.3f},\"heartbeat_ms_p99\":{:.3f},\"detect_ms\":{:.1f},\"heartbeats\":{},"
               "\"errors\":{}}}",
               first ? "" : ",", json_escape(r.systems[i]), s.sessions, s.interval_ms, s.leader_cpu_pct,
               s.heartbeat_ms_p50, s.heartbeat_ms_p99, s.detect_ms, s.heartbeats, s.errors);
    first = false;
  }
  fmt::print("],\"watch\":[");
  first = true;
  for (std::size_t i = 0; i < r.watch.size() && i < r.systems.size(); ++i) {
    if (!r.watch[i]) continue;
    const auto& w = *r.watch[i];
    fmt::print("{}{{\"system\":\"{}\",\"watchers\":{},\"processes\":{},\"writes\":{},\"incomplete\":{},"
               "\"delivery_ms_p50\":{:.3f},\"delivery_ms_p99\":{:.3f},\"all_delivered_ms_p50\":{:.3f},"
               "\"all_delivered_ms_max\":{:.3f},\"write_ack_ms_p50\":{:.3f},\"idle_seconds\":{:.1f},"
               "\"leader_cpu_base_pct\":{:.1f},\"leader_cpu_pct\":{:.1f},\"servers_cpu_pct\":{:.1f},\"watchers_cpu_pct\":{:.1f},\"failure\":\"{}\",\"hosting\":\"{}\"}}",
               first ? "" : ",", json_escape(r.systems[i]), w.watchers, w.processes, w.all_delivered_ms.size(),
               w.incomplete, percentile(w.delivery_ms, 0.5), percentile(w.delivery_ms, 0.99),
               percentile(w.all_delivered_ms, 0.5), percentile(w.all_delivered_ms, 1.0), percentile(w.ack_ms, 0.5),
               w.idle_seconds, w.leader_cpu_base_pct, w.leader_cpu_pct, w.servers_cpu_pct, w.watchers_cpu_pct, json_escape(w.failure), json_escape(w.hosting));
    first = false;
  }
  fmt::print("]");
  if (r.embedded) {
    const auto& e = *r.embedded;
    std::string notes;
    for (const auto& n : e.notes) notes += (notes.empty() ? "\"" : ",\"") + json_escape(n) + "\"";
    fmt::print(",\"embedded\":{{\"threads\":{},\"seconds\":{:.1f},\"rounds\":{},\"failure\":\"{}\",\"notes\":[{}],"
               "\"runs\":[",
               e.threads, e.seconds, e.rounds, json_escape(e.failure), notes);
    for (std::size_t i = 0; i < e.runs.size(); ++i) {
      const auto& run = e.runs[i];
      fmt::print("{}{{\"how\":\"{}\",\"ops_per_s\":{:.0f},\"latency_ms_p50\":{:.3f},\"latency_ms_p99\":{:.3f},"
                 "\"errors\":{}}}",
                 i ? "," : "", json_escape(run.how), run.ops_per_s, run.p50_ms, run.p99_ms, run.errors);
    }
    fmt::print("]}}");
  }
  if (r.recovery) {
    const auto& v = *r.recovery;
    fmt::print(",\"recovery\":{{\"entries\":{},\"catch_up_ms\":{:.0f},\"catch_up_peak_rss_mib\":{:.1f},"
               "\"restart_ms\":{:.0f},\"restart_peak_rss_mib\":{:.1f},\"ok\":{}}}",
               v.entries, v.catch_up_ms, v.catch_up_peak_rss_mib, v.restart_ms, v.restart_peak_rss_mib, v.ok);
  }
  fmt::print(",\"targets\":[");
  auto ts = targets(r);
  for (std::size_t i = 0; i < ts.size(); ++i) {
    fmt::print("{}{{\"target\":\"{}\",\"measured\":\"{}\",\"met\":{}}}", i ? "," : "", json_escape(ts[i].text),
               json_escape(ts[i].measured), ts[i].measured.empty() ? "null" : ts[i].met ? "true" : "false");
  }
  fmt::print("]}}\n");
}

// Failover-time CDFs: one curve per system and scenario (leader-* and
// worker-crash), colour by scenario, dash pattern by system.
namespace {

struct cdf_curve {
  std::string label;
  std::vector<double> ms;
  int color = 0, dash = 0;
};

// One plot of CDFs, milliseconds on a log scale.
void write_cdf_svg(const std::string& path, const std::string& title, const std::string& x_label,
                   const std::vector<cdf_curve>& curves) {
  const double w = 960, left = 70, right = 430, top = 40, bottom = 50;
  const double h = std::max(480.0, top + 16.0 * static_cast<double>(curves.size()) + 30);
  double max_ms = 1, min_ms = 1e9;
  for (const auto& c : curves) {
    for (auto v : c.ms) {
      max_ms = std::max(max_ms, v);
      min_ms = std::min(min_ms, v);
    }
  }
  // From the decade below the fastest value: write latencies start under 1 ms.
  double lo = std::pow(10.0, std::floor(std::log10(std::max(min_ms, 0.01))));
  lo = std::min(lo, 1.0);
  auto x = [&](double ms) {
    return left + (w - left - right) * std::log10(std::max(ms, lo) / lo) / std::log10(max_ms / lo);
  };
  auto y = [&](double f) { return top + (h - top - bottom) * (1 - f); };
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"};
  const char* dashes[] = {"", "8,4", "2,3", "12,3,2,3", "4,4"};
  std::ofstream out(path);
  out << fmt::format("<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif' font-size='12'>\n", w, h);
  out << "<rect width='100%' height='100%' fill='white'/>\n";
  out << fmt::format("<text x='{}' y='20' font-size='14'>{}</text>\n", left, title);
  out << fmt::format("<line x1='{0}' y1='{1}' x2='{2}' y2='{1}' stroke='black'/><line x1='{0}' y1='{3}' x2='{0}' y2='{1}' stroke='black'/>\n",
                     left, h - bottom, w - right, top);
  for (double ms = lo; ms <= max_ms * 1.5; ms *= 10) {
    out << fmt::format("<line x1='{0}' y1='{1}' x2='{0}' y2='{2}' stroke='#ddd'/><text x='{0}' y='{3}' text-anchor='middle'>{4}</text>\n",
                       x(ms), top, h - bottom, h - bottom + 18, ms);
  }
  out << fmt::format("<text x='{}' y='{}' text-anchor='middle'>{}</text>\n", (left + w - right) / 2, h - 12, x_label);
  for (double f : {0.0, 0.5, 0.9, 1.0}) out << fmt::format("<text x='{}' y='{}' text-anchor='end'>{}</text>\n", left - 6, y(f) + 4, f);
  int line = 0;
  for (const auto& c : curves) {
    auto v = c.ms;
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    // At most ~300 steps: a write load has tens of thousands of samples.
    std::size_t stride = std::max<std::size_t>(1, v.size() / 300);
    std::string points;
    for (std::size_t k = 0; k < v.size(); k += stride) {
      auto next = std::min(v.size(), k + stride);
      points += fmt::format("{:.1f},{:.1f} {:.1f},{:.1f} ", x(v[k]), y(double(k) / v.size()), x(v[k]),
                            y(double(next) / v.size()));
    }
    auto color = colors[c.color % 7];
    auto dash = dashes[c.dash % 5];
    out << fmt::format("<polyline fill='none' stroke='{}' stroke-width='2' stroke-dasharray='{}' points='{}'/>\n", color,
                       dash, points);
    ++line;
    out << fmt::format("<line x1='{0}' y1='{1}' x2='{2}' y2='{1}' stroke='{3}' stroke-width='2' stroke-dasharray='{4}'/>",
                       w - right + 10, top + 16 * line - 4, w - right + 40, color, dash);
    out << fmt::format("<text x='{}' y='{}'>{}: median {:.2f}</text>\n", w - right + 46, top + 16 * line, c.label,
                       percentile(v, 0.5));
  }
  out << "</svg>\n";
}

}  // namespace

void write_svg(const std::string& path, const run_report& r) {
  std::vector<cdf_curve> curves;
  int si = 0;
  for (const auto& s : r.scenarios) {
    if (s.rfind("leader-", 0) != 0 && s != "worker-crash" && s.rfind("failover-", 0) != 0) continue;
    const auto& per = r.times.at(s);
    for (std::size_t sys = 0; sys < per.size() && sys < r.systems.size(); ++sys) {
      curves.push_back({r.systems[sys] + " " + s, per[sys].ms, si, static_cast<int>(sys)});
    }
    ++si;
  }
  write_cdf_svg(path, "Failover times (CDF of trials), ms on a log scale; " + r.machine, "time from the fault (ms)",
                curves);
}

void write_writes_svg(const std::string& path, const run_report& r) {
  std::vector<cdf_curve> curves;
  for (std::size_t ci = 0; ci < r.writes.size(); ++ci) {
    const auto& per = r.writes[ci];
    for (std::size_t sys = 0; sys < per.size() && sys < r.systems.size(); ++sys) {
      curves.push_back({r.systems[sys] + ", " + std::to_string(per[sys].clients) + " clients", per[sys].latency_ms,
                        static_cast<int>(sys), static_cast<int>(ci)});
    }
  }
  write_cdf_svg(path, "Durable write latency under closed-loop load (CDF), ms on a log scale; " + r.machine,
                "from a write's send until acknowledged (ms)", curves);
}

void write_locks_svg(const std::string& path, const run_report& r) {
  std::vector<cdf_curve> curves;
  int si = 0;
  for (const char* s : {"lock-cycle", "lock-handoff", "write"}) {
    auto it = r.times.find(s);
    if (it == r.times.end()) continue;
    for (std::size_t sys = 0; sys < it->second.size() && sys < r.systems.size(); ++sys) {
      curves.push_back({r.systems[sys] + " " + s, it->second[sys].ms, static_cast<int>(sys), si});
    }
    ++si;
  }
  write_cdf_svg(path, "Lock cycle, lock hand-off and one write (CDF of trials), ms on a log scale; " + r.machine,
                "ms", curves);
}

}  // namespace conclave::bench
