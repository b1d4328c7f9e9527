// A master's metrics as plain numbers: the Raft shell, storage, links,
// gateway and etcd API update them (an atomic store or increment, a
// histogram observation), and roles/metrics_endpoint.cpp, the only code that
// sees prometheus-cpp, exports them on `GET /metrics`. No clock and no
// Prometheus header here, so any actor may hold a `sink`; the pure cores
// (actors/raft/core.*, the registry) never do.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "actors/gauge_sample.hpp"

namespace conclave::metrics {

// A histogram with fixed upper bounds: observe() is a bucket search and two
// atomic updates.
class histogram {
 public:
  explicit histogram(std::vector<double> bounds);
  void observe(double value);

  struct reading {
    std::vector<double> bounds;
    std::vector<std::uint64_t> counts;  // per bucket, not cumulative; one more than bounds (+Inf)
    double sum = 0;
  };
  reading read() const;

  // Bounds for seconds from 0.1 ms to ~13 s, and for sizes 1 .. 4096.
  static std::vector<double> seconds();
  static std::vector<double> sizes();

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Traffic to and from one other master.
struct peer_stats {
  std::atomic<std::uint64_t> sent_bytes{0}, received_bytes{0};
  histogram round_trip{histogram::seconds()};  // a heartbeat to its answer
};

// Requests of one method of a client API: how many ended with each outcome
// (`outcomes` names them; index 0 is success) and how long they took.
struct request_stats {
  request_stats(std::string api, std::string method, std::vector<std::string> outcomes);
  const std::string api, method;
  const std::vector<std::string> outcomes;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts;  // by outcome index
  histogram latency{histogram::seconds()};
  // An outcome's index (the last one, "other", for a name not listed).
  std::size_t index_of(std::string_view outcome) const;
  void done(std::size_t outcome, double seconds);
  void count(std::size_t outcome);  // a stream: counted, not timed
};

struct sink {
  // Raft, as of the shell's last round (each tick, each flush).
  std::atomic<bool> is_leader{false}, has_leader{false};
  std::atomic<std::uint64_t> term{0}, commit_index{0}, applied_index{0}, last_index{0};
  std::atomic<std::int64_t> updated_ms{0};  // steady clock at that round
  std::atomic<std::uint64_t> leader_changes_seen{0}, elections_started{0};
  std::atomic<std::uint64_t> proposals_committed{0}, proposals_failed{0};
  std::atomic<std::int64_t> proposals_pending{0};

  // Storage: each log write (one LMDB transaction, one fsync) and its entries.
  histogram disk_write_seconds{histogram::seconds()};
  histogram disk_write_entries{histogram::sizes()};
  std::atomic<std::uint64_t> snapshots_taken{0}, last_snapshot_bytes{0};
  histogram snapshot_save_seconds{histogram::seconds()};
  // Writes that failed, by errc value; and the code (errc + 1) of the
  // failure the storage retries now, 0 while writes succeed.
  static constexpr std::size_t error_codes = 32;
  std::atomic<std::uint64_t> storage_errors[error_codes] = {};
  std::atomic<int> storage_failing{0};
  // The Raft server stopped (a storage failure): nothing above moves any more.
  std::atomic<bool> server_stopped{false};

  // Found or made (under a lock): callers keep the reference.
  peer_stats& peer(std::uint64_t id);
  peer_stats* find_peer(std::uint64_t id);  // null if not made yet
  request_stats& requests(const std::string& api, const std::string& method, const std::vector<std::string>& outcomes);

  void set_state_gauges(std::vector<gauge_sample> gauges);

  // For the exporter: copies under the lock (the objects stay in place).
  std::map<std::uint64_t, peer_stats*> peers() const;
  std::vector<request_stats*> request_methods() const;
  std::vector<gauge_sample> state_gauges() const;

  // Why this master should not take traffic now, or "" when it should: it
  // knows a leader, has applied everything it knows committed, its disk
  // takes writes, and its Raft server ran in the last `stale_ms`.
  std::string not_ready(std::int64_t now_ms, std::int64_t stale_ms = 3000) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::unique_ptr<peer_stats>> peers_;
  std::vector<std::unique_ptr<request_stats>> requests_;
  std::vector<gauge_sample> state_gauges_;
};

}  // namespace conclave::metrics
