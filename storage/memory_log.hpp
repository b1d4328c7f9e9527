// An in-memory log_store with the same rules as lmdb_log, for unit tests and
// the deterministic simulation (which models durability itself).
#pragma once

#include <deque>

#include "storage/log_store.hpp"

namespace conclave::storage {

class memory_log final : public log_store {
 public:
  expected<void> write(const write_batch& batch) override;
  expected<void> compact(index_t index, term_t term) override;

  index_t first_index() const override { return index_t{start_index_.value + 1}; }
  index_t last_index() const override {
    return index_t{start_index_.value + entries_.size()};
  }
  index_t start_index() const override { return start_index_; }
  term_t start_term() const override { return start_term_; }
  hard_state state() const override { return state_; }

  expected<term_t> term(index_t index) const override;
  expected<log_entry> entry(index_t index) const override;
  expected<std::vector<log_entry>> entries(index_t from, std::size_t max_count,
                                           std::size_t max_bytes) const override;

 private:
  // Precondition: start_index_ < index <= last_index().
  const log_entry& at(index_t index) const { return entries_[index.value - start_index_.value - 1]; }
  expected<void> check_range(index_t index) const;

  index_t start_index_;
  term_t start_term_;
  std::deque<log_entry> entries_;  // entries_[i].index == start_index_ + 1 + i
  hard_state state_;
};

}  // namespace conclave::storage
