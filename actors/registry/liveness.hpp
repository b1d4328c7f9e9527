// Failure detection on the leader (pure: time is an argument, in ms).
//
// Heartbeats are not log entries: the leader keeps each session's deadline
// in memory and proposes only transitions: a member turns suspect (late),
// alive again (back), a session expires (dead), periodic checkpoints of the
// remaining TTLs, and resource usage at most every usage_interval_ms.
//
// Proposals are level-triggered: every tick compares what the registry should
// hold with what it holds (as of the last sync) and proposes the difference.
// A proposal is repeated, if the registry still lacks it, retry_interval_ms
// later (it may have been refused, e.g. during a leadership transfer or when
// too much is uncommitted, or lost); nothing is given up until leadership is.
//
// Bounds, with T the session TTL (each refused proposal adds up to
// retry_interval_ms):
//  - a live session is never expired by a leader change: a new leader gives
//    each session max(checkpointed remaining TTL, failover_grace_ms), and
//    clients find the new leader within the grace;
//  - a session whose owner died at t is expired by t + T + (time since the
//    last checkpoint, at most checkpoint_interval_ms) + the failover time, or
//    at the new leader's start + failover_grace_ms, whichever is later;
//    without a leader change, by t + T (or, when its connection broke, by
//    the break + crash_grace_ms);
//  - a member's status follows its heartbeats under every leader: a new
//    leader starts from the registry's status (a suspect member stays suspect
//    until it is heard from);
//  - an overloaded leader (a tick later than max_loop_lag_ms) expires
//    nothing that round and pushes every deadline and last heartbeat back
//    by the lag (no member turns suspect for it), since heartbeats may be
//    waiting unread in its mailbox.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "actors/registry/registry.hpp"

namespace conclave::registry {

struct liveness_config {
  std::uint64_t suspect_after_ms = 300;       // no heartbeat for this long: suspect
  std::uint64_t crash_grace_ms = 100;         // after a broken connection: expire unless it is back
  std::uint64_t checkpoint_interval_ms = 1000;
  std::uint64_t usage_interval_ms = 1000;     // replicated resource usage is at most this stale
  std::uint64_t failover_grace_ms = 1000;     // a new leader's minimum for every session
  std::uint64_t max_loop_lag_ms = 200;        // a tick this late means the leader is overloaded
  std::uint64_t retry_interval_ms = 500;      // a proposal the registry still lacks is made again
};

class liveness_monitor {
 public:
  explicit liveness_monitor(liveness_config c = {}) : cfg_(c) {}

  // This server became leader: track every session of the registry from now.
  void become_leader(const registry_state& st, std::uint64_t now_ms);
  void step_down();
  bool leading() const { return leading_; }

  // After commands were applied: start tracking new sessions (full TTL from
  // now), forget ended ones, and take note of what the registry now holds.
  void sync(const registry_state& st, std::uint64_t now_ms);

  // A heartbeat for `session`, optionally with the member's resource usage.
  void keepalive(session_id session, std::uint64_t now_ms,
                 const std::optional<std::pair<std::string, resources>>& usage = std::nullopt);
  // The connection of the session's owner broke (its process likely died).
  void connection_lost(session_id session, std::uint64_t now_ms);

  // The commands to propose now (possibly none).
  std::vector<command> tick(std::uint64_t now_ms);

  // When the session will expire if nothing more is heard (for tests and status).
  std::optional<std::uint64_t> deadline(session_id session) const;

 private:
  enum class transition : std::uint8_t { none, suspect, alive, expire };
  struct tracked {
    std::uint64_t ttl_ms = 0;
    std::uint64_t deadline_ms = 0;
    std::uint64_t last_seen_ms = 0;
    std::string member;        // non-empty for a member's registration session
    member_status status = member_status::alive;  // the member's, as the registry holds it
    bool heard = false;        // a heartbeat arrived under this leader
    bool expiring = false;     // past its deadline: it goes, whatever is heard later
    transition proposed = transition::none;  // the last transition proposed ...
    std::uint64_t proposed_ms = 0;           // ... and when
  };

  // What the registry lacks for this session now.
  transition wanted(const tracked& t, std::uint64_t now_ms) const;
  void checkpoint(std::uint64_t now_ms, std::vector<command>& out);

  liveness_config cfg_;
  bool leading_ = false;
  std::map<session_id, tracked> sessions_;
  // Each member's latest usage report, until the registry holds it.
  std::map<std::string, resources> usage_;
  std::uint64_t last_tick_ms_ = 0;
  std::uint64_t last_checkpoint_ms_ = 0;  // when the checkpoint the registry holds was taken
  std::optional<checkpoint_sessions> checkpoint_proposed_;  // not yet seen in the registry
  std::uint64_t checkpoint_proposed_ms_ = 0;
  std::uint64_t last_usage_ms_ = 0;       // the last usage proposal
};

}  // namespace conclave::registry
