#include "storage/log_store.hpp"

#include <string>

namespace conclave::storage {

expected<void> log_store::append(std::vector<log_entry> entries) {
  write_batch batch;
  batch.entries = std::move(entries);
  return write(batch);
}

expected<void> log_store::truncate_suffix(index_t from) {
  write_batch batch;
  batch.truncate_from = from;
  return write(batch);
}

expected<void> log_store::save_state(const hard_state& state) {
  write_batch batch;
  batch.state = state;
  return write(batch);
}

expected<void> validate(const write_batch& batch, const log_store& log) {
  auto last = log.last_index();
  if (batch.truncate_from) {
    auto from = *batch.truncate_from;
    // Committed entries are never overwritten (Raft §5.4, Log Matching);
    // a leader asking for it is a bug, so refuse rather than lose data.
    if (from <= log.state().commit_index) {
      return make_error(errc::invalid_argument,
                        "truncate from " + std::to_string(from.value) + " would drop committed entries (commit index " +
                            std::to_string(log.state().commit_index.value) + ")");
    }
    if (from <= log.start_index()) {
      return make_error(errc::invalid_argument, "truncate from " + std::to_string(from.value) +
                                                    " would drop compacted entries");
    }
    if (from <= last) last = index_t{from.value - 1};
  }
  auto expect = index_t{last.value + 1};
  for (const auto& e : batch.entries) {
    if (e.index != expect) {
      return make_error(errc::out_of_order, "entry " + std::to_string(e.index.value) + " where " +
                                                std::to_string(expect.value) + " was expected");
    }
    if (e.term == term_t{0}) return make_error(errc::invalid_argument, "entry with term 0");
    expect = index_t{expect.value + 1};
  }
  if (batch.state) {
    const auto& old = log.state();
    const auto& now = *batch.state;
    if (now.term < old.term) {
      return make_error(errc::hard_state_regression, "term " + std::to_string(now.term.value) +
                                                         " after " + std::to_string(old.term.value));
    }
    // One vote per term (Raft §5.2): once cast it cannot change.
    if (now.term == old.term && old.voted_for != raft::no_node && now.voted_for != old.voted_for) {
      return make_error(errc::hard_state_regression,
                        "vote for " + std::to_string(now.voted_for.value) + " in term " +
                            std::to_string(now.term.value) + " after voting for " +
                            std::to_string(old.voted_for.value));
    }
    if (now.commit_index < old.commit_index) {
      return make_error(errc::hard_state_regression,
                        "commit index " + std::to_string(now.commit_index.value) + " after " +
                            std::to_string(old.commit_index.value));
    }
  }
  return {};
}

}  // namespace conclave::storage
