// What the Raft shell applies committed commands to. Implementations are
// deterministic: the same commands in the same order give the same state on
// every server (the registry, or a test counter).
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "actors/gauge_sample.hpp"
#include "schema/raft_types.hpp"

namespace conclave::raft {

class state_machine {
 public:
  virtual ~state_machine() = default;

  // Applies a committed command; returns the result for the proposer.
  virtual std::string apply(const log_entry& entry) = 0;
  // Answers a query, in the machine's own encoding, against the applied
  // state (linearizable and stale reads). The bytes come from any client: a
  // query that does not decode gets an error answer, never a crash.
  virtual std::string query(std::string_view q) const = 0;
  // The applied state as bytes, and back. restore() replaces everything.
  virtual std::string snapshot() const = 0;
  virtual void restore(std::string_view bytes) = 0;
  // A short summary (for status and for comparing servers).
  virtual std::string digest() const = 0;
  // Numbers describing the applied state, for monitoring (none by default).
  virtual std::vector<metrics::gauge_sample> gauges() const { return {}; }
};

// A counter with a hash chain over every command applied: two servers that
// applied the same commands in the same order have the same digest. It also
// remembers where each distinct command was applied, so that a test can ask
// whether an acknowledged command survived ("index <command>" answers its
// index or "none"; any other query answers the digest). Used by the test
// process and the benchmarks.
class counter_state_machine final : public state_machine {
 public:
  std::string apply(const log_entry& entry) override;
  std::string query(std::string_view q) const override;
  std::string snapshot() const override;
  void restore(std::string_view bytes) override;
  std::string digest() const override;

  std::uint64_t count() const { return count_; }

 private:
  std::uint64_t count_ = 0;
  std::uint64_t last_index_ = 0;
  std::uint64_t hash_ = 0xcbf29ce484222325ull;
  std::unordered_map<std::uint64_t, std::uint64_t> index_of_;  // command hash -> index
};

}  // namespace conclave::raft
