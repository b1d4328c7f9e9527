// Pushes a state machine's owner serves on every master, from what this
// master has applied: the registry's watches, lock grants, events and member
// changes (actors/registry/registry_push.hpp). The peer actor calls it on
// its own thread (the one that applies), and sends what it returns.
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "actors/gauge_sample.hpp"
#include "schema/error.hpp"

namespace conclave::raft {

class push_service {
 public:
  virtual ~push_service() = default;
  using key = std::uint64_t;
  // One push: to subscription `key`, of `kind`, with its encoded state.
  struct out {
    key to;
    std::uint8_t kind;
    std::string bytes;
  };
  // Adds a subscription (its encoded request); returns what is due at once.
  // Errors: malformed, foreign_cluster, invalid_argument.
  virtual expected<std::vector<out>> subscribe(key k, const std::string& request) = 0;
  virtual void unsubscribe(key k) = 0;
  // After applying entries or restoring a snapshot: what is due.
  virtual std::vector<out> collect() = 0;
  // The periodic progress push (kind and bytes) for a connection.
  virtual std::pair<std::uint8_t, std::string> progress() const = 0;
  // Numbers describing the subscriptions, for monitoring (none by default).
  virtual std::vector<metrics::gauge_sample> gauges() const { return {}; }
};

}  // namespace conclave::raft
