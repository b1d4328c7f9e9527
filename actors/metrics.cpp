#include "actors/metrics.hpp"

#include <algorithm>

#include "schema/error.hpp"

namespace conclave::metrics {

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void histogram::observe(double value) {
  // The first bucket whose upper bound holds the value (bounds are inclusive).
  auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double sum = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(sum, sum + value, std::memory_order_relaxed)) {
  }
}

histogram::reading histogram::read() const {
  reading r;
  r.bounds = bounds_;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) r.counts.push_back(counts_[i].load(std::memory_order_relaxed));
  r.sum = sum_.load(std::memory_order_relaxed);
  return r;
}

std::vector<double> histogram::seconds() {
  std::vector<double> b;
  for (double x = 0.0001; x < 15; x *= 2) b.push_back(x);
  return b;
}

std::vector<double> histogram::sizes() {
  std::vector<double> b;
  for (double x = 1; x <= 4096; x *= 2) b.push_back(x);
  return b;
}

request_stats::request_stats(std::string a, std::string m, std::vector<std::string> o)
    : api(std::move(a)), method(std::move(m)), outcomes(std::move(o)), counts(new std::atomic<std::uint64_t>[outcomes.size()]) {
  for (std::size_t i = 0; i < outcomes.size(); ++i) counts[i] = 0;
}

std::size_t request_stats::index_of(std::string_view outcome) const {
  auto it = std::find(outcomes.begin(), outcomes.end(), outcome);
  return it == outcomes.end() ? outcomes.size() - 1 : static_cast<std::size_t>(it - outcomes.begin());
}

void request_stats::done(std::size_t outcome, double seconds) {
  count(outcome);
  latency.observe(seconds);
}

void request_stats::count(std::size_t outcome) {
  counts[std::min(outcome, outcomes.size() - 1)].fetch_add(1, std::memory_order_relaxed);
}

peer_stats& sink::peer(std::uint64_t id) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto& p = peers_[id];
  if (!p) p = std::make_unique<peer_stats>();
  return *p;
}

peer_stats* sink::find_peer(std::uint64_t id) {
  std::lock_guard<std::mutex> guard(mutex_);
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second.get();
}

request_stats& sink::requests(const std::string& api, const std::string& method,
                              const std::vector<std::string>& outcomes) {
  std::lock_guard<std::mutex> guard(mutex_);
  for (const auto& r : requests_) {
    if (r->api == api && r->method == method) return *r;
  }
  auto names = outcomes;
  if (names.empty() || names.back() != "other") names.push_back("other");
  requests_.push_back(std::make_unique<request_stats>(api, method, std::move(names)));
  return *requests_.back();
}

void sink::set_state_gauges(std::vector<gauge_sample> gauges) {
  std::lock_guard<std::mutex> guard(mutex_);
  state_gauges_ = std::move(gauges);
}

std::map<std::uint64_t, peer_stats*> sink::peers() const {
  std::lock_guard<std::mutex> guard(mutex_);
  std::map<std::uint64_t, peer_stats*> out;
  for (const auto& [id, p] : peers_) out[id] = p.get();
  return out;
}

std::vector<request_stats*> sink::request_methods() const {
  std::lock_guard<std::mutex> guard(mutex_);
  std::vector<request_stats*> out;
  for (const auto& r : requests_) out.push_back(r.get());
  return out;
}

std::vector<gauge_sample> sink::state_gauges() const {
  std::lock_guard<std::mutex> guard(mutex_);
  return state_gauges_;
}

std::string sink::not_ready(std::int64_t now_ms, std::int64_t stale_ms) const {
  if (server_stopped) return "the Raft server stopped after a storage failure";
  if (auto code = storage_failing.load()) {
    return "cannot write to its disk: " + std::string(to_string(static_cast<errc>(code - 1)));
  }
  auto updated = updated_ms.load();
  if (updated == 0) return "the Raft server has not started yet";
  if (now_ms - updated > stale_ms) {
    return "the Raft server has not run for " + std::to_string(now_ms - updated) + " ms";
  }
  if (!has_leader) return "no leader known (term " + std::to_string(term.load()) + ")";
  auto applied = applied_index.load(), commit = commit_index.load();
  if (applied < commit) {
    return "applied index " + std::to_string(applied) + " is behind the commit index " + std::to_string(commit);
  }
  return {};
}

}  // namespace conclave::metrics
