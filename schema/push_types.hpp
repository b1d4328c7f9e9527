// Subscriptions and pushes: the vocabulary of the server's push (see
// actors/registry/subscriptions.hpp). A subscription is served by any master
// from what it has applied; a push carries the registry state it concerns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "schema/registry_types.hpp"

namespace conclave::registry {

struct watch_subscription {
  std::string prefix;
  std::optional<revision> after;  // none: from the master's current revision
};
struct lock_subscription {
  std::string name;
  session_id session = 0;
  std::uint64_t after = 0;  // judged only by a master that applied this log index (the queued acquire's)
};
struct events_subscription {
  std::string member;
  std::uint64_t after = 0;  // events with a higher seq
};
struct members_subscription {};
using subscription = std::variant<watch_subscription, lock_subscription, events_subscription, members_subscription>;

enum class push_kind : std::uint8_t {
  changes,    // state.history: key changes in order; state.rev: the revision they bring the watch to
  compacted,  // state.keys: the keys under the prefix at state.rev (the history no longer reached back;
              // state.history_floor and state.compacted: where it starts now)
  granted,    // state.locks[name]: held by the session, with its token
  gone,       // the session no longer waits for the lock (ended, cancelled)
  events,     // state.events: undelivered events for the member, in order
  members,    // state.members: every member
  progress,   // state.rev: nothing more up to this revision (sent while the master knows a leader)
};

constexpr const char* to_string(push_kind k) {
  switch (k) {
    case push_kind::changes: return "changes";
    case push_kind::compacted: return "compacted";
    case push_kind::granted: return "granted";
    case push_kind::gone: return "gone";
    case push_kind::events: return "events";
    case push_kind::members: return "members";
    case push_kind::progress: return "progress";
  }
  return "?";
}

struct push {
  push_kind kind = push_kind::progress;
  registry_state state;
};

}  // namespace conclave::registry
