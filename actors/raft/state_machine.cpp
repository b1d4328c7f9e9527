#include "actors/raft/state_machine.hpp"

#include <cstdio>
#include <sstream>

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

std::string counter_state_machine::snapshot() const {
  std::string out = std::to_string(count_) + " " + std::to_string(last_index_) + " " + std::to_string(hash_) + " " +
                    std::to_string(index_of_.size());
  for (const auto& [h, i] : index_of_) out += " " + std::to_string(h) + " " + std::to_string(i);
  return out;
}

void counter_state_machine::restore(std::string_view bytes) {
  std::istringstream in{std::string(bytes)};
  std::size_t n = 0;
  in >> count_ >> last_index_ >> hash_ >> n;
  index_of_.clear();
  for (std::size_t k = 0; k < n; ++k) {
    std::uint64_t h = 0, i = 0;
    in >> h >> i;
    index_of_.emplace(h, i);
  }
}

std::string counter_state_machine::digest() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "count=%llu hash=%016llx", static_cast<unsigned long long>(count_),
                static_cast<unsigned long long>(hash_));
  return buf;
}

}  // namespace conclave::raft
