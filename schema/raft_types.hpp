// The vocabulary of Raft: terms, indexes, node ids, log entries, hard state,
// configurations and snapshot metadata. Plain C++; no CAF, no Cap'n Proto, no
// I/O, so the pure core, storage and the codec can all share it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace conclave::raft {

// A uint64 with a tag, so that a term cannot be passed where an index is
// expected (Scylla raft/raft.hh). Arithmetic is explicit through `.value`.
template <class Tag>
struct tagged {
  std::uint64_t value = 0;

  constexpr tagged() = default;
  constexpr explicit tagged(std::uint64_t v) : value(v) {}

  friend constexpr bool operator==(tagged a, tagged b) { return a.value == b.value; }
  friend constexpr bool operator!=(tagged a, tagged b) { return a.value != b.value; }
  friend constexpr bool operator<(tagged a, tagged b) { return a.value < b.value; }
  friend constexpr bool operator<=(tagged a, tagged b) { return a.value <= b.value; }
  friend constexpr bool operator>(tagged a, tagged b) { return a.value > b.value; }
  friend constexpr bool operator>=(tagged a, tagged b) { return a.value >= b.value; }
  friend std::ostream& operator<<(std::ostream& os, tagged t) { return os << t.value; }
};

using term_t = tagged<struct term_tag>;    // 0 only before the first election
using index_t = tagged<struct index_tag>;  // log indexes start at 1; 0 means "none"
using node_id = tagged<struct node_id_tag>;  // 0 means "nobody"

inline constexpr node_id no_node{0};

enum class entry_kind : std::uint8_t {
  command,        // opaque state-machine command
  noop,           // appended by a new leader to commit earlier terms (thesis 6.4)
  configuration,  // a new cluster configuration (Raft thesis 4.1)
};


// What a server must remember across crashes (Raft figure 2, "persistent
// state"), plus the commit index so that a restart need not re-learn it.
// Invariant on disk: term never decreases; within a term, voted_for goes from
// nobody to one candidate and never changes again; commit_index never decreases.
struct hard_state {
  term_t term;
  node_id voted_for;
  index_t commit_index;

  friend bool operator==(const hard_state& a, const hard_state& b) {
    return a.term == b.term && a.voted_for == b.voted_for &&
           a.commit_index == b.commit_index;
  }
  friend bool operator!=(const hard_state& a, const hard_state& b) { return !(a == b); }
};

enum class suffrage : std::uint8_t { voter, learner };

struct server {
  node_id id;            // never 0
  std::string address;   // host:port of its peer endpoint
  suffrage role = suffrage::voter;

  friend bool operator==(const server& a, const server& b) {
    return a.id == b.id && a.address == b.address && a.role == b.role;
  }
};

struct configuration {
  std::vector<server> servers;  // ids unique

  friend bool operator==(const configuration& a, const configuration& b) {
    return a.servers == b.servers;
  }
};

struct log_entry {
  term_t term;
  index_t index;
  entry_kind kind = entry_kind::command;
  std::string payload;  // opaque bytes (command entries)
  std::optional<configuration> config = std::nullopt;  // set exactly for configuration entries

  friend bool operator==(const log_entry& a, const log_entry& b) {
    return a.term == b.term && a.index == b.index && a.kind == b.kind &&
           a.payload == b.payload && a.config == b.config;
  }
};

// Identifies the last entry a snapshot covers (Raft §7) and the configuration
// in force at that entry.
struct snapshot_meta {
  index_t last_index;
  term_t last_term;
  configuration config;

  friend bool operator==(const snapshot_meta& a, const snapshot_meta& b) {
    return a.last_index == b.last_index && a.last_term == b.last_term &&
           a.config == b.config;
  }
};

}  // namespace conclave::raft

template <class Tag>
struct std::hash<conclave::raft::tagged<Tag>> {
  std::size_t operator()(conclave::raft::tagged<Tag> t) const noexcept {
    return std::hash<std::uint64_t>{}(t.value);
  }
};
