#include "actors/raft/state_machine.hpp"

#include <cstdio>
#include <cstring>
#include <vector>

namespace conclave::raft {

namespace {

std::uint64_t fnv(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace

std::string counter_state_machine::apply(const log_entry& entry) {
  // FNV-1a over (index, term, payload), chained.
  auto mix = [&](const void* data, std::size_t size) {
    auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) hash_ = (hash_ ^ p[i]) * 0x100000001b3ull;
  };
  mix(&entry.index.value, sizeof entry.index.value);
  mix(&entry.term.value, sizeof entry.term.value);
  mix(entry.payload.data(), entry.payload.size());
  ++count_;
  last_index_ = entry.index.value;
  index_of_.emplace(fnv(entry.payload), entry.index.value);
  return std::to_string(count_);
}

std::string counter_state_machine::query(std::string_view q) const {
  constexpr std::string_view prefix = "index ";
  if (q.substr(0, prefix.size()) == prefix) {
    auto it = index_of_.find(fnv(q.substr(prefix.size())));
    return it == index_of_.end() ? "none" : std::to_string(it->second);
  }
  return digest();
}

// Snapshot layout: count, last index, hash, then (command hash, index)
// pairs, all as raw little-endian uint64s (this machine's byte order).
std::string counter_state_machine::snapshot() const {
  std::string out((3 + 2 * index_of_.size()) * sizeof(std::uint64_t), '\0');
  auto* p = reinterpret_cast<std::uint64_t*>(out.data());
  *p++ = count_;
  *p++ = last_index_;
  *p++ = hash_;
  for (const auto& [h, i] : index_of_) {
    *p++ = h;
    *p++ = i;
  }
  return out;
}

void counter_state_machine::restore(std::string_view bytes) {
  auto words = bytes.size() / sizeof(std::uint64_t);
  std::vector<std::uint64_t> v(words);
  std::memcpy(v.data(), bytes.data(), words * sizeof(std::uint64_t));
  count_ = words > 0 ? v[0] : 0;
  last_index_ = words > 1 ? v[1] : 0;
  hash_ = words > 2 ? v[2] : 0xcbf29ce484222325ull;
  index_of_.clear();
  for (std::size_t k = 3; k + 1 < words; k += 2) index_of_.emplace(v[k], v[k + 1]);
}

std::string counter_state_machine::digest() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "count=%llu hash=%016llx", static_cast<unsigned long long>(count_),
                static_cast<unsigned long long>(hash_));
  return buf;
}

}  // namespace conclave::raft
