// What a master pushes to its subscribers as it applies the registry's
// commands: key changes to watches, grants to lock waiters, events to their
// member, the member list to its listeners. Any master serves them from what
// it has applied (as etcd serves watches from every member), so pushes from
// one master are in revision order with no gaps and no repeats; a client
// that moves to another master resumes from the last revision it was given.
//
// Pure and deterministic, no I/O: the gateway feeds it the registry after
// each batch of applied entries (collect) and sends what it returns.
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "actors/registry/registry.hpp"
#include "schema/push_types.hpp"

namespace conclave::registry {

class subscriptions {
 public:
  using key = std::uint64_t;  // the gateway's name for one subscription

  explicit subscriptions(const registry& reg) : reg_(&reg) {}

  // Adds a subscription; returns what is due at once (a watch from an old
  // revision catches up; a lock already held is granted; pending events; the
  // member list). A one-shot subscription (lock) that is done is not kept.
  std::vector<push> add(key k, subscription s);
  void remove(key k);
  std::size_t size() const { return watches_.size() + locks_.size() + events_.size() + members_.size(); }
  std::size_t watches() const { return watches_.size(); }
  std::size_t lock_waits() const { return locks_.size(); }

  // The registry applied `c` (registry_machine::on_applied): notes which
  // kinds of subscription may be due.
  void on_command(const command& c, const std::vector<lock_grant>& grants);
  // The registry was replaced (a snapshot from the leader): all may be due.
  void on_restore();

  // What each subscription is due since the last collect, in order.
  std::vector<std::pair<key, push>> collect();

  // A progress push for watches (the revision they are at) and nothing for
  // the others: sent periodically so that a client can tell a live master
  // from a silent one, and moves its resume point forward.
  push progress() const;

 private:
  struct watch_state {
    std::string prefix;
    revision at = 0;  // every change up to here was pushed (or listed)
  };
  struct events_state {
    std::string member;
    std::uint64_t after = 0;
  };
  struct members_state {
    std::map<std::string, std::pair<member_status, member_role>> last;  // what was pushed last
    bool pushed = false;
  };

  std::optional<push> due(watch_state& w) const;
  std::optional<push> due(key k, const lock_subscription& l) const;
  std::optional<push> due(events_state& e) const;
  std::optional<push> due(members_state& m) const;

  const registry* reg_;
  std::map<key, watch_state> watches_;
  std::map<key, lock_subscription> locks_;
  std::map<key, events_state> events_;
  std::map<key, members_state> members_;
  bool locks_dirty_ = false, events_dirty_ = false, members_dirty_ = false;
};

}  // namespace conclave::registry
