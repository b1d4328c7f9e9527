// The registry's vocabulary: members and their resource usage, sessions,
// keys, locks, events, and the commands that change them. Plain C++: the
// registry is a pure, deterministic state machine applied from the Raft log
// (schema/registry_codec turns these into bytes and back).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace conclave::registry {

// A session is named by the log index of the command that opened it, which
// is unique and identical on every server.
using session_id = std::uint64_t;
// The revision counts key changes, as etcd's does: a command that creates,
// changes or deletes keys moves it by one (all its keys share it), and
// members, sessions, usage reports and events do not move it. Keys carry
// the revisions that created and last modified them. Each lock grant moves
// it by one as well: fencing tokens are revisions, so a later grant always
// carries a larger token.
using revision = std::uint64_t;

enum class member_role : std::uint8_t { master, worker, master_and_worker };
enum class member_status : std::uint8_t { alive, suspect, dead, left };

const char* to_string(member_role r);
const char* to_string(member_status s);

// Resource usage as the member reports it, averaged on the member over a
// window so short spikes do not mislead schedulers.
struct resources {
  double cpu_percent = 0;
  double load_average = 0;
  std::uint64_t memory_used_bytes = 0;
  std::uint64_t memory_available_bytes = 0;
  std::uint64_t disk_available_bytes = 0;
  friend bool operator==(const resources& a, const resources& b) {
    return a.cpu_percent == b.cpu_percent && a.load_average == b.load_average &&
           a.memory_used_bytes == b.memory_used_bytes && a.memory_available_bytes == b.memory_available_bytes &&
           a.disk_available_bytes == b.disk_available_bytes;
  }
};

struct member {
  std::string id;
  member_role role = member_role::worker;
  std::string host;
  std::uint16_t port = 0;
  std::uint64_t start_time_ms = 0;  // as the member reported it
  std::map<std::string, std::string> labels;
  resources usage;
  member_status status = member_status::alive;
  session_id session = 0;       // its registration session; expiry makes it dead
  std::uint64_t changed = 0;    // the log index of the last command that changed this member
  // Picked once per process by its member agent (0: none). Registering again
  // with the same incarnation while its session lives returns that session.
  std::uint64_t incarnation = 0;
};

struct session {
  session_id id = 0;
  std::string owner;            // a member id or a client name
  std::uint64_t ttl_ms = 0;
  std::uint64_t remaining_ms = 0;  // as of the last checkpoint by a leader
};

struct key_value {
  std::string value;
  revision created = 0;
  revision modified = 0;
  std::uint64_t version = 0;    // 1 on creation, +1 per change
  session_id session = 0;       // non-zero: ephemeral, deleted when the session ends
};

struct lock {
  session_id holder = 0;        // 0: free
  revision token = 0;           // fencing token of the current grant
  std::vector<session_id> waiters;  // first come, first served
};

struct event {
  std::uint64_t seq = 0;        // global publish order
  std::string from;
  std::string to;               // a member id, or empty for every member
  std::string payload;
  std::set<std::string> recipients;  // members alive when it was published
};

// One change to a key, kept for watches and for reads at a past revision:
// the key as the change left it and as it was before.
struct change {
  revision rev = 0;
  bool deleted = false;
  std::string key;
  std::string value;            // after a put; empty after a delete
  revision created = 0;         // after a put: the key's create revision, version and session
  std::uint64_t version = 0;
  session_id session = 0;
  std::optional<key_value> prev;  // the key before the change (none: it did not exist)
};

// A key range as etcd names one: [key, end), an empty end the key alone, an
// end "\0" every key from `key` on. Keys are bytes, ordered as unsigned bytes.
struct key_range {
  std::string key, end;
  bool contains(const std::string& k) const;
  bool single() const { return end.empty(); }
  // A prefix every key of the range has.
  std::string listing_prefix() const;
};

// --- commands ---------------------------------------------------------------

struct register_member {
  member m;                     // id, role, host, port, start time, labels, usage
  std::uint64_t ttl_ms = 0;     // of its registration session
};
struct report_usage {
  std::vector<std::pair<std::string, resources>> reports;
};
struct set_member_status {
  std::string id;
  member_status status;
};
struct open_session {
  std::string owner;
  std::uint64_t ttl_ms = 0;
  session_id id = 0;            // chosen by the client (an etcd lease ID); 0: the registry names it
};
struct close_session {
  session_id id = 0;
  bool expired = false;         // true: the leader expired it; false: its owner closed it
};
struct checkpoint_sessions {
  std::vector<std::pair<session_id, std::uint64_t>> remaining_ms;
};
struct put {
  std::string key;
  std::string value;
  session_id session = 0;                   // ephemeral if non-zero
  std::optional<std::uint64_t> if_version;  // compare-and-set: 0 means "must not exist"
};
struct remove_key {
  std::string key;
  std::optional<std::uint64_t> if_version;
};
// etcd's transaction: if every comparison holds, the `success` operations,
// else the `failure` ones, all at one revision (one more if any key changes).
enum class compare_target : std::uint8_t { value, version, created, modified, session };
enum class compare_op : std::uint8_t { equal, greater, less, not_equal };
struct compare {
  key_range range;              // every key of it must satisfy the comparison; a missing key counts as zeros
  compare_target target = compare_target::version;
  compare_op op = compare_op::equal;
  std::string value;            // target value
  std::uint64_t number = 0;     // the other targets
};
enum class op_kind : std::uint8_t { range, put, remove };
struct txn_op {
  op_kind kind = op_kind::range;
  key_range range;              // put: range.key alone
  std::string value;            // put
  session_id session = 0;       // put: ephemeral if non-zero
  bool ignore_value = false;    // put: keep the key's value (the key must exist)
  bool ignore_session = false;  // put: keep the key's session (the key must exist)
};
struct txn {
  std::vector<compare> compares;
  std::vector<txn_op> success, failure;
};
// etcd's compaction: drops the key history before `rev`; reads at a revision
// before it, and watches starting before it, are refused.
struct compact {
  revision rev = 0;
};
struct acquire_lock {
  std::string name;
  session_id session = 0;
  bool wait = true;             // false: fail at once if held
};
struct release_lock {
  std::string name;
  session_id session = 0;
};
struct cancel_lock_wait {
  std::string name;
  session_id session = 0;
};
struct publish_event {
  std::string from;
  std::string to;               // empty: every member
  std::string payload;
};
struct ack_events {
  std::string member;
  std::uint64_t upto = 0;
};

using command = std::variant<register_member, report_usage, set_member_status, open_session, close_session,
                             checkpoint_sessions, put, remove_key, acquire_lock, release_lock, cancel_lock_wait,
                             publish_event, ack_events, txn, compact>;

// --- results ----------------------------------------------------------------

enum class code : std::uint8_t {
  ok,
  queued,            // lock: waiting behind its holder; value: the revision as of which it waits
  not_found,         // no such key, member, lock or session
  version_mismatch,  // compare-and-set failed
  no_session,        // the session does not exist (expired or never opened)
  held,              // lock: held by another session and the caller would not wait
  not_holder,        // lock: released by a session that does not hold it
  invalid,           // a malformed command (empty key or id, zero TTL)
  full,              // events: undelivered events at their cap; members must acknowledge first
  exists,            // a session with the chosen id exists
  compacted,         // the revision asked for is no longer in the history
  future_revision,   // the revision asked for is not reached yet
};

const char* to_string(code c);

// What one operation of a transaction found: a range, the keys in it; a put,
// the key it replaced (if any); a remove, the keys it removed.
struct op_result {
  std::vector<std::pair<std::string, key_value>> keys;
};

struct outcome {
  registry::code code = code::ok;
  std::uint64_t value = 0;      // the session id, revision, fencing token or event seq it produced
  std::string detail;
  // A transaction: whether its comparisons held, and one result per
  // operation it ran.
  bool succeeded = false;
  std::vector<op_result> ops;
};

// --- queries ----------------------------------------------------------------
// Read-only questions to the registry, answered from a server's applied
// state. Each query names the result it gets (Q::result); a query that does
// not decode is answered with a query_error.

struct key_result {
  std::optional<key_value> value;  // none: no such key
  revision rev = 0;                // the answering server's revision
};
struct keys_result {
  revision rev = 0;  // the answering server's revision
  std::vector<std::pair<std::string, key_value>> keys;  // in key order
};
struct members_result {
  std::vector<member> members;  // in id order
};
struct lock_result {
  std::optional<lock> value;  // none: no such lock
};
struct session_result {
  std::optional<session> value;  // none: no such session (expired, closed or never opened)
  std::vector<std::string> keys;  // its ephemeral keys, when asked for
};
struct sessions_result {
  std::vector<session> sessions;  // in id order
};
// The keys of a range at a revision (0: the current one).
struct range_result {
  revision rev = 0;        // the answering server's revision
  revision floor = 0;      // the oldest revision it can read
  code status = code::ok;  // compacted, future_revision: the asked revision cannot be read
  std::vector<std::pair<std::string, key_value>> keys;  // in key order
};
struct events_result {
  std::vector<event> events;  // in publish order
};
struct changes_result {
  revision rev = 0;        // the answering server's revision
  bool compacted = false;  // the history no longer reaches the asked revision: re-list
  std::vector<change> changes;  // in order (empty when compacted)
};
struct revision_result {
  revision rev = 0;
};
struct digest_result {
  revision rev = 0;
  std::uint64_t digest = 0;  // registry::digest() at rev
};
struct query_error {
  std::string message;
};
struct registry_state;
// The whole registry as of the answering server's revision (a backup).
struct state_result {
  std::shared_ptr<const registry_state> state;
};

struct get_key {
  using result = key_result;
  std::string key;
};
struct list_prefix {
  using result = keys_result;
  std::string prefix;
};
struct members_query {
  using result = members_result;
  std::optional<member_status> only;  // none: every member
};
struct lock_query {
  using result = lock_result;
  std::string name;
};
struct session_query {
  using result = session_result;
  session_id id = 0;
  bool with_keys = false;
};
struct sessions_query {
  using result = sessions_result;
};
struct state_query {
  using result = state_result;
  // Only the revision, members, sessions and locks (the status page): no
  // keys, events or history, which can be large.
  bool summary = false;
};
struct range_query {
  using result = range_result;
  key_range range;
  revision at = 0;  // 0: the current revision
};
// Events published for `member` that it has not acknowledged.
struct events_query {
  using result = events_result;
  std::string member;
};
// Key changes under `prefix` after revision `after`.
struct changes_query {
  using result = changes_result;
  revision after = 0;
  std::string prefix;
};
struct revision_query {
  using result = revision_result;
};
struct digest_query {
  using result = digest_result;
};

using query = std::variant<get_key, list_prefix, members_query, lock_query, session_query, events_query, changes_query,
                           revision_query, digest_query, sessions_query, range_query, state_query>;
using query_result = std::variant<key_result, keys_result, members_result, lock_result, session_result, events_result,
                                  changes_result, revision_result, digest_result, query_error, sessions_result,
                                  range_result, state_result>;

// --- state -----------------------------------------------------------------

// A lock granted as a side effect (to a waiter, when the holder released it
// or its session ended), so the shell can tell the waiting client.
struct lock_grant {
  std::string name;
  session_id session = 0;
  revision token = 0;
};

// Everything the registry holds; snapshots encode exactly this.
struct registry_state {
  revision rev = 0;
  std::uint64_t event_seq = 0;
  std::map<std::string, member> members;
  std::map<session_id, session> sessions;
  std::map<std::string, key_value> keys;
  std::map<std::string, lock> locks;
  std::deque<event> events;  // undelivered, in publish order
  std::map<std::string, std::uint64_t> events_acked;  // member -> highest seq it acknowledged
  std::deque<change> history;  // the latest key changes, oldest first
  revision history_floor = 0;  // changes after this revision are all in `history`
  std::uint64_t applied = 0;   // the log index of the last command applied
  session_id last_session = 0;  // the highest session id the registry picked (it never picks one twice)
  revision compacted = 0;      // the last compaction's revision: reads before it are refused, as etcd's
};

}  // namespace conclave::registry
