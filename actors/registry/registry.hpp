// The registry: conclave's replicated state machine. Members and their
// resource usage, sessions, keys (optionally ephemeral), locks with fencing
// tokens, and cluster events, changed only by commands applied from the Raft
// log in order. Pure and deterministic: no clock (time-based decisions, such
// as expiring a session, are made by the leader and arrive as commands), no
// I/O, no randomness, so every server holds the same state after the same
// commands and a seeded simulation can test it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "schema/registry_types.hpp"

namespace conclave::registry {

struct limits {
  // Key changes kept for watches to resume from (setting `watch-history`);
  // part of the replicated state, so the same on every server.
  std::size_t history = 10000;
  std::size_t events = 100000;  // undelivered events kept; a publish past this is refused (code::full)
};

class registry {
 public:
  explicit registry(limits l = {}) : limits_(l) {}
  registry(registry_state s, limits l = {}) : limits_(l), s_(std::move(s)) {}

  // Applies a committed command found at log `index`. Locks granted as a
  // side effect are appended to `grants` when given.
  outcome apply(const command& c, std::uint64_t index, std::vector<lock_grant>* grants = nullptr);

  // --- queries (any server, on its applied state) ---------------------------
  const key_value* get(const std::string& key) const;
  std::vector<std::pair<std::string, key_value>> list(const std::string& prefix) const;
  // The keys of `r` as they were at revision `at` (0: now), rebuilt from the
  // change history; refused (status compacted / future_revision) when the
  // history does not reach back to `at` or `at` is not reached yet.
  range_result range(const key_range& r, revision at = 0) const;
  const member* find_member(const std::string& id) const;
  std::vector<member> members(std::optional<member_status> only = std::nullopt) const;
  const session* find_session(session_id id) const;
  const lock* find_lock(const std::string& name) const;
  // Key changes after revision `after` under `prefix`, in order; nothing if
  // the history no longer reaches back that far (the watcher must re-list).
  std::optional<std::vector<change>> changes_since(revision after, const std::string& prefix) const;
  // Events for `member` it has not acknowledged, in publish order.
  std::vector<event> pending_events(const std::string& member) const;

  revision current_revision() const { return s_.rev; }
  // The log index of the last command applied (a position every master
  // reaches in the same order, whether or not the command changed keys).
  std::uint64_t applied_index() const { return s_.applied; }
  const registry_state& state() const { return s_; }
  // A hash of the whole state but the change history (whose window each
  // master sets itself): equal on servers that applied the same commands.
  std::uint64_t digest() const;

  // Asserts every invariant (holders and waiters have sessions, ephemeral
  // keys have sessions, revisions only grow, ...).
  void check_invariants() const;

 private:
  outcome on(const register_member& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const report_usage& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const set_member_status& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const open_session& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const close_session& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const checkpoint_sessions& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const put& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const remove_key& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const acquire_lock& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const release_lock& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const cancel_lock_wait& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const publish_event& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const ack_events& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const txn& c, std::uint64_t index, std::vector<lock_grant>& grants);
  outcome on(const compact& c, std::uint64_t index, std::vector<lock_grant>& grants);

  // A new session's id: the log index that opens it, or the next number
  // above it a client has not chosen already.
  session_id fresh_session_id(std::uint64_t index);
  bool holds(const compare& c) const;
  std::vector<std::pair<std::string, key_value>> keys_in(const key_range& r) const;
  // Key changes at revision `rev`, each recorded in the history with the key
  // as it was before.
  void set_key(const std::string& key, std::string value, session_id session, revision rev);
  void delete_key(const std::string& key, revision rev);
  // Ends a session: its ephemeral keys go, its locks pass to their next
  // waiters, its waits are dropped, its member (if any) becomes dead or left.
  void end_session(session_id id, bool expired, std::vector<lock_grant>& grants);
  void grant_next(const std::string& name, lock& l, std::vector<lock_grant>& grants);
  void record(change c);
  void drop_recipient(const std::string& member);

  limits limits_;
  registry_state s_;
};

}  // namespace conclave::registry
