#include "roles/metrics_endpoint.hpp"

#include <httplib.h>
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <limits>
#include <map>

#include "schema/client_protocol.hpp"
#include "schema/error.hpp"

namespace conclave {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The families of one exposition, in the order first named.
class exposition {
 public:
  MetricFamily& family(const std::string& name, const std::string& help, MetricType type) {
    auto full = "conclave_" + name;
    auto it = index_.find(full);
    if (it != index_.end()) return families_[it->second];
    index_[full] = families_.size();
    families_.push_back(MetricFamily{full, help, type, {}});
    return families_.back();
  }

  void gauge(const std::string& name, const std::string& help, double value, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = value;
    family(name, help, MetricType::Gauge).metric.push_back(std::move(m));
  }

  void counter(const std::string& name, const std::string& help, double value,
               std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    m.counter.value = value;
    family(name, help, MetricType::Counter).metric.push_back(std::move(m));
  }

  void histogram(const std::string& name, const std::string& help, const metrics::histogram& h,
                 std::vector<ClientMetric::Label> labels = {}) {
    auto r = h.read();
    ClientMetric m;
    m.label = std::move(labels);
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < r.counts.size(); ++i) {
      total += r.counts[i];
      double bound = i < r.bounds.size() ? r.bounds[i] : std::numeric_limits<double>::infinity();
      m.histogram.bucket.push_back(ClientMetric::Bucket{total, bound});
    }
    m.histogram.sample_count = total;
    m.histogram.sample_sum = r.sum;
    family(name, help, MetricType::Histogram).metric.push_back(std::move(m));
  }

  std::string text() const { return prometheus::TextSerializer().Serialize(families_); }

 private:
  std::vector<MetricFamily> families_;
  std::map<std::string, std::size_t> index_;
};

void raft_metrics(exposition& e, const metrics::sink& s) {
  e.gauge("raft_has_leader", "1 when this master knows a leader, 0 otherwise.", s.has_leader ? 1 : 0);
  e.gauge("raft_is_leader", "1 when this master is the leader, 0 otherwise.", s.is_leader ? 1 : 0);
  e.gauge("raft_term", "This master's current Raft term.", static_cast<double>(s.term.load()));
  e.gauge("raft_commit_index", "The highest log index this master knows committed.",
          static_cast<double>(s.commit_index.load()));
  e.gauge("raft_applied_index", "The highest log index this master applied to its registry.",
          static_cast<double>(s.applied_index.load()));
  e.gauge("raft_last_log_index", "The last index in this master's log.", static_cast<double>(s.last_index.load()));
  e.counter("raft_leader_changes_seen_total", "Leaders this master learned of (a new leader or a new term).",
            static_cast<double>(s.leader_changes_seen.load()));
  e.counter("raft_elections_started_total", "Elections this master started as a candidate.",
            static_cast<double>(s.elections_started.load()));
  e.counter("raft_proposals_committed_total", "Proposals to this master that committed and applied.",
            static_cast<double>(s.proposals_committed.load()));
  e.counter("raft_proposals_failed_total",
            "Proposals to this master that failed: refused (no leader known, a full disk) or lost to a change of leader; "
            "a follower passing a write to the leader it knows does not count it.",
            static_cast<double>(s.proposals_failed.load()));
  e.gauge("raft_proposals_pending", "Proposals this master accepted that have not committed yet.",
          static_cast<double>(s.proposals_pending.load()));
}

void storage_metrics(exposition& e, const metrics::sink& s) {
  e.histogram("disk_write_duration_seconds",
              "Time to write to the log: one LMDB transaction with its fsync (after compaction, if any).",
              s.disk_write_seconds);
  e.histogram("disk_write_batch_entries", "Log entries per write (group commit).", s.disk_write_entries);
  e.counter("snapshots_taken_total", "Snapshots of the registry this master took and saved.",
            static_cast<double>(s.snapshots_taken.load()));
  e.histogram("snapshot_save_duration_seconds", "Time to save a snapshot this master took to its disk.",
              s.snapshot_save_seconds);
  e.gauge("snapshot_size_bytes", "Size of the last snapshot this master took.",
          static_cast<double>(s.last_snapshot_bytes.load()));
  auto failing = s.storage_failing.load();
  bool full = failing == static_cast<int>(errc::disk_full) + 1 || failing == static_cast<int>(errc::map_full) + 1;
  e.gauge("storage_full",
          "1 while writes fail for want of space (disk full, or the LMDB map at log-max-mib) and are retried.",
          full ? 1 : 0);
  e.gauge("server_stopped", "1 once the Raft server stopped after a storage failure (the process exits).",
          s.server_stopped ? 1 : 0);
  const char* help = "Log writes that failed, by error code (a write waiting for space fails once per retry).";
  e.family("storage_errors_total", help, MetricType::Counter);
  for (std::size_t c = 0; c < metrics::sink::error_codes; ++c) {
    if (auto n = s.storage_errors[c].load()) {
      e.counter("storage_errors_total", help, static_cast<double>(n),
                {{"code", client::code_name(static_cast<errc>(c))}});
    }
  }
}

void peer_metrics(exposition& e, const metrics::sink& s) {
  e.family("peer_sent_bytes_total", "Bytes of Raft messages sent to each other master.", MetricType::Counter);
  for (const auto& [id, p] : s.peers()) {
    std::vector<ClientMetric::Label> peer{{"peer", std::to_string(id)}};
    e.counter("peer_sent_bytes_total", "Bytes of Raft messages sent to each other master.",
              static_cast<double>(p->sent_bytes.load()), peer);
    e.counter("peer_received_bytes_total", "Bytes of Raft messages received from each other master.",
              static_cast<double>(p->received_bytes.load()), peer);
    e.histogram("peer_round_trip_time_seconds",
                "Time from a heartbeat this master sent as leader to the other master's answer.", p->round_trip, peer);
  }
}

void client_metrics(exposition& e, const metrics::sink& s) {
  const char* count_help =
      "Client requests this master answered, by API (native: conclave's protocol; etcd: the gRPC API and its JSON "
      "gateway), method and outcome.";
  const char* time_help = "Time to answer a client request (streams: not timed).";
  e.family("client_requests_total", count_help, MetricType::Counter);
  for (const auto* r : s.request_methods()) {
    for (std::size_t i = 0; i < r->outcomes.size(); ++i) {
      if (auto n = r->counts[i].load()) {
        e.counter("client_requests_total", count_help, static_cast<double>(n),
                  {{"api", r->api}, {"method", r->method}, {"outcome", r->outcomes[i]}});
      }
    }
    auto timed = r->latency.read();
    std::uint64_t observed = 0;
    for (auto c : timed.counts) observed += c;
    if (observed) {
      e.histogram("client_request_duration_seconds", time_help, r->latency, {{"api", r->api}, {"method", r->method}});
    }
  }
}

}  // namespace

std::string render_metrics(const metrics::sink& stats) {
  exposition e;
  raft_metrics(e, stats);
  storage_metrics(e, stats);
  peer_metrics(e, stats);
  client_metrics(e, stats);
  for (const auto& g : stats.state_gauges()) {
    std::vector<ClientMetric::Label> labels;
    if (!g.label.empty()) labels.push_back({g.label, g.label_value});
    e.gauge(g.name, g.help, g.value, std::move(labels));
  }
  return e.text();
}

http_listener::routes metrics_routes(std::shared_ptr<metrics::sink> stats) {
  return [stats](httplib::Server& s) {
    s.Get("/metrics", [stats](const httplib::Request&, httplib::Response& res) {
      res.set_content(render_metrics(*stats), "text/plain; version=0.0.4; charset=utf-8");
    });
  };
}

}  // namespace conclave
