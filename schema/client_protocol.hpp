// The client protocol as plain structs (schema/client.capnp is the wire
// form; schema/client_codec turns one into the other).
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "schema/error.hpp"

namespace conclave::client {

struct propose {
  std::string command;
};
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
};

// A read from whatever this server has applied (possibly behind the leader).
struct stale_read {
  std::string query;
};

// A membership change (Raft thesis 4.1), answered once committed.
struct change_membership {
  std::uint8_t kind = 0;  // 0 add as learner, 1 promote to voter, 2 remove
  std::uint64_t id = 0;
  std::string address;
};

using request = std::variant<propose, read, status_request, transfer_leadership, keepalive, stale_read, change_membership>;

struct committed {
  std::uint64_t index = 0;
  std::uint64_t term = 0;
  std::string result;
};
struct read_result {
  std::uint64_t index = 0;
  std::string result;
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
