// The client protocol as plain structs (schema/client.capnp is the wire
// form; schema/client_codec turns one into the other).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "schema/error.hpp"

namespace conclave::client {

struct propose {
  std::string command;
};
// A linearizable read (ReadIndex). `query` is in the state machine's own
// encoding: for the registry, an encoded registry::query.
struct read {
  std::string query;
};
struct status_request {};
struct transfer_leadership {
  std::uint64_t target = 0;  // 0: the most caught-up voter
};
struct keepalive {
  std::uint64_t session = 0;
  std::string payload;
  // Not tied to the connection it arrives on (its break does not expire the
  // session early): only the TTL decides, as for etcd's leases, whose
  // heartbeats reach the leader through whichever master the client uses.
  bool detached = false;
};

// A read from whatever this server has applied (possibly behind the leader).
struct stale_read {
  std::string query;
};

// A membership change (Raft thesis 4.1), answered once committed. The leader
// holds a change it cannot make yet (a learner not caught up, an earlier change
// not committed) for up to membership_wait_ms, so a client waits longer.
struct change_membership {
  std::uint8_t kind = 0;  // 0 add as learner, 1 promote to voter, 2 remove
  std::uint64_t id = 0;
  std::string address;
};
inline constexpr int membership_wait_ms = 30000;

using request = std::variant<propose, read, status_request, transfer_leadership, keepalive, stale_read, change_membership>;

// What servers and clients need to know about a kind of request. The one
// table is traits_of below; classify requests with it, not by their type.
struct request_traits {
  // May change the replicated state or who leads: when its answer is lost,
  // whether it took effect is unknown.
  bool changes_state;
  // Adds entries to the Raft log, so a master that cannot write to its disk
  // refuses it.
  bool appends_entries;
  // A follower passes it on to the leader it knows, so a client may send it
  // to any master. (A keepalive is not passed on: the leader ties a session
  // to the connection its heartbeats arrive on.)
  bool passed_to_leader;
  // Sending it again after its answer was lost is harmless, so a client may
  // resend it on its own.
  bool idempotent;
  // Takes the cluster secret (auth level master); every other request takes
  // at least a member key.
  bool needs_secret;
};

template <class>
inline constexpr bool no_traits_for = false;

template <class T>
constexpr request_traits traits_of() {
  //                                                               changes  appends  passed   idem-    needs
  //                                                               state    entries  to lead. potent   secret
  if constexpr (std::is_same_v<T, propose>)                  return {true,    true,    true,    false,   false};
  else if constexpr (std::is_same_v<T, read>)                return {false,   false,   true,    true,    false};
  else if constexpr (std::is_same_v<T, status_request>)      return {false,   false,   false,   true,    false};
  else if constexpr (std::is_same_v<T, transfer_leadership>) return {true,    false,   false,   false,   true};
  else if constexpr (std::is_same_v<T, keepalive>)           return {false,   false,   false,   true,    false};
  else if constexpr (std::is_same_v<T, stale_read>)          return {false,   false,   false,   true,    false};
  else if constexpr (std::is_same_v<T, change_membership>)   return {true,    true,    true,    false,   true};
  else static_assert(no_traits_for<T>, "every kind of request needs a row in this table");
}

constexpr request_traits traits_of(const request& r) {
  return std::visit([](const auto& x) { return traits_of<std::decay_t<decltype(x)>>(); }, r);
}

struct committed {
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  std::string result;
};
struct read_result {
  std::uint64_t index = 0;
  std::string result;
};
// A server of the Raft configuration, as status lists it.
struct config_member {
  std::uint64_t id = 0;
  std::string address;   // host:port of its peer endpoint
  bool learner = false;  // a learner replicates but does not vote
};
struct status {
  std::uint64_t id = 0;
  std::string role;
  std::uint64_t term = 0;
  std::uint64_t leader_id = 0;
  std::string leader_address;
  std::uint64_t commit_index = 0;
  std::uint64_t applied_index = 0;
  std::uint64_t last_index = 0;
  std::string digest;
  std::string storage_error;  // set while this server cannot write to its disk
  std::vector<config_member> members;  // the configuration this server knows, in id order
};
struct ok {};
struct failure {
  std::string code;  // errc name, e.g. "not_leader"
  std::string message;
  std::uint64_t leader_id = 0;
  std::string leader_address;
};

using response = std::variant<committed, read_result, status, ok, failure>;

// The stable name of an error code, as carried in failure::code.
std::string code_name(errc code);
// The code a name stands for (errc::unavailable for a name this build does not know).
errc code_from_name(const std::string& name);

}  // namespace conclave::client
