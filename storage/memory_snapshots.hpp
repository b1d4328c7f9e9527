// Snapshots kept in memory, with snapshot_store's rules (the newest `keep`
// are kept), for the deterministic simulation, which models durability
// itself: what this holds survives a simulated crash.
#pragma once

#include <deque>
#include <optional>

#include "storage/snapshot_store.hpp"

namespace conclave::storage {

class memory_snapshots final : public snapshot_keeper {
 public:
  explicit memory_snapshots(std::size_t keep = 2) : keep_(keep) {}

  expected<void> save(const raft::snapshot_meta& meta, std::string_view data) override {
    kept_.push_front(snapshot{meta, std::string(data)});
    while (kept_.size() > keep_) kept_.pop_back();
    return {};
  }

  expected<std::vector<raft::index_t>> indexes() const override {
    std::vector<raft::index_t> out;
    for (const auto& s : kept_) out.push_back(s.meta.last_index);
    return out;
  }

  // The newest snapshot, if any.
  const snapshot* latest() const { return kept_.empty() ? nullptr : &kept_.front(); }

 private:
  std::size_t keep_;
  std::deque<snapshot> kept_;  // newest first
};

}  // namespace conclave::storage
