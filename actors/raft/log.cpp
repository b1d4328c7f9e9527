#include "actors/raft/log.hpp"

#include <cassert>

namespace conclave::raft {

raft_log::raft_log(index_t start, term_t start_term, std::vector<log_entry> entries, index_t commit,
                   index_t applied)
    : start_(start), start_term_(start_term), entries_(entries.begin(), entries.end()) {
  for (std::size_t k = 0; k < entries_.size(); ++k) assert(entries_[k].index.value == start_.value + 1 + k);
  stable_ = handed_ = last_index();
  assert(start <= applied);
  assert(applied <= commit);
  assert(commit <= last_index());
  commit_ = commit;
  applied_ = applied;
  for (auto i = index_t{commit.value + 1}; i <= last_index(); i = index_t{i.value + 1}) {
    uncommitted_bytes_ += at(i).payload.size();
  }
}

std::optional<term_t> raft_log::term_at(index_t i) const {
  if (i == start_) return start_term_;
  if (i < start_ || i > last_index()) return std::nullopt;
  return at(i).term;
}

const log_entry& raft_log::at(index_t i) const {
  assert(i > start_);
  assert(i <= last_index());
  return entries_[i.value - start_.value - 1];
}

index_t raft_log::first_index_of_term_at(index_t i) const {
  auto term = term_at(i);
  assert(term);
  while (i > first_index() && at(index_t{i.value - 1}).term == *term) i = index_t{i.value - 1};
  return i;
}

index_t raft_log::last_index_with_term_at_most(term_t term, index_t from) const {
  auto i = std::min(from, last_index());
  while (i > start_ && at(i).term > term) i = index_t{i.value - 1};
  return i;
}

void raft_log::append(log_entry e) {
  assert(e.index.value == last_index().value + 1);
  assert(e.term >= last_term());
  uncommitted_bytes_ += e.payload.size();
  entries_.push_back(std::move(e));
}

void raft_log::truncate_from(index_t from) {
  // Committed entries are never overwritten (§5.4, Leader Completeness).
  assert(from > commit_);
  assert(from > start_);
  if (from > last_index()) return;
  for (auto i = from; i <= last_index(); i = index_t{i.value + 1}) uncommitted_bytes_ -= at(i).payload.size();
  entries_.resize(from.value - start_.value - 1);
  if (stable_ >= from) stable_ = index_t{from.value - 1};
  // Entries already handed to the shell at or past `from` are on their way to
  // disk (or there): the next write must drop them first.
  if (handed_ >= from) {
    handed_ = index_t{from.value - 1};
    if (!pending_truncate_ || from < *pending_truncate_) pending_truncate_ = from;
  }
}

std::vector<log_entry> raft_log::slice(index_t from, std::size_t max_count, std::size_t max_bytes) const {
  assert(from > start_);
  assert(from <= last_index());
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

void raft_log::commit_to(index_t i) {
  assert(i <= last_index());
  for (; commit_ < i; commit_ = index_t{commit_.value + 1}) {
    uncommitted_bytes_ -= at(index_t{commit_.value + 1}).payload.size();
  }
}

void raft_log::stable_to(index_t i, term_t t) {
  if (i > stable_ && i <= handed_ && matches(i, t)) stable_ = i;
}

std::vector<log_entry> raft_log::take_committed(std::size_t max_bytes) {
  std::vector<log_entry> out;
  if (applied_ >= commit_) return out;
  out = slice(index_t{applied_.value + 1}, commit_.value - applied_.value, max_bytes);
  applied_ = out.back().index;
  return out;
}

raft_log::unpersisted raft_log::take_unpersisted() {
  unpersisted out;
  out.truncate_from = pending_truncate_;
  pending_truncate_.reset();
  if (handed_ < last_index()) {
    out.entries.assign(entries_.begin() + (handed_.value - start_.value), entries_.end());
    handed_ = last_index();
  }
  return out;
}

void raft_log::compact_to(index_t i) {
  assert(i > start_);
  assert(i <= applied_);
  assert(i <= stable_);
  start_term_ = at(i).term;
  entries_.erase(entries_.begin(), entries_.begin() + (i.value - start_.value));
  start_ = i;
}

void raft_log::restore(index_t i, term_t t) {
  assert(i > commit_);
  if (matches(i, t)) {
    entries_.erase(entries_.begin(), entries_.begin() + (i.value - start_.value));
    if (stable_ < i) stable_ = i;
    if (handed_ < i) handed_ = i;
  } else {
    entries_.clear();
    stable_ = handed_ = i;
  }
  start_ = i;
  start_term_ = t;
  // A truncation still to be written that reaches into the snapshot becomes
  // one right after it: the snapshot replaces everything before.
  if (pending_truncate_ && *pending_truncate_ <= i) pending_truncate_ = index_t{i.value + 1};
  commit_ = applied_ = i;
  uncommitted_bytes_ = 0;
  for (const auto& e : entries_) uncommitted_bytes_ += e.payload.size();
}

}  // namespace conclave::raft
