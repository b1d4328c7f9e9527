#include "storage/memory_log.hpp"

#include <string>

namespace conclave::storage {

expected<void> memory_log::write(const write_batch& batch) {
  if (auto ok = validate(batch, *this); !ok) return ok;
  if (batch.truncate_from && *batch.truncate_from <= last_index()) {
    entries_.resize(batch.truncate_from->value - start_index_.value - 1);
  }
  entries_.insert(entries_.end(), batch.entries.begin(), batch.entries.end());
  if (batch.state) state_ = *batch.state;
  return {};
}

expected<void> memory_log::compact(index_t index, term_t term) {
  if (index <= start_index_) return {};
  auto local = this->term(index);
  if (local && *local == term) {
    entries_.erase(entries_.begin(), entries_.begin() + (index.value - start_index_.value));
  } else {
    entries_.clear();  // Raft §7: the snapshot supersedes a log that does not contain it
  }
  start_index_ = index;
  start_term_ = term;
  if (state_.commit_index < index) state_.commit_index = index;
  return {};
}

expected<void> memory_log::check_range(index_t index) const {
  if (index <= start_index_) {
    return make_error(errc::compacted, "index " + std::to_string(index.value) + " <= start " +
                                           std::to_string(start_index_.value));
  }
  if (index > last_index()) {
    return make_error(errc::unavailable, "index " + std::to_string(index.value) + " > last " +
                                             std::to_string(last_index().value));
  }
  return {};
}

expected<term_t> memory_log::term(index_t index) const {
  if (index == start_index_) return start_term_;
  if (auto ok = check_range(index); !ok) return ok.error();
  return at(index).term;
}

expected<log_entry> memory_log::entry(index_t index) const {
  if (auto ok = check_range(index); !ok) return ok.error();
  return at(index);
}

expected<std::vector<log_entry>> memory_log::entries(index_t from, std::size_t max_count,
                                                     std::size_t max_bytes) const {
  if (auto ok = check_range(from); !ok) return ok.error();
  std::vector<log_entry> out;
  std::size_t bytes = 0;
  for (auto i = from; i <= last_index() && out.size() < max_count; i = index_t{i.value + 1}) {
    const auto& e = at(i);
    if (!out.empty() && bytes + e.payload.size() > max_bytes) break;
    bytes += e.payload.size();
    out.push_back(e);
  }
  return out;
}

}  // namespace conclave::storage
