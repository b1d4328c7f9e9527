// Where one write's time goes: timestamps at the stages of the write path,
// per log index, for the benchmarks (bench/README.md "Where a write's time
// goes"). Off unless the process starts with CONCLAVE_STAGE_TRACE naming a
// directory; then each process records into DIR/stages-PID.bin, mapped
// shared (so a kill -9 loses nothing): per mark the stage, the log indexes
// it covers and the time. t_ns is CLOCK_MONOTONIC, one clock for every
// process on the machine, so the marks of the leader, the followers and the
// client line up (bench/stage_breakdown.py reads them). A mark covers the log indexes
// [first, last]; first = 0 marks a cumulative stage (an ack or a commit
// reaching `last` covers everything before it). Off, a mark costs one test
// of a flag.
#pragma once

#include <cstdint>

namespace conclave::stage_trace {

enum class stage : std::uint8_t {
  client_sent,       // the client sent the request (known once answered)
  gateway_received,  // the master's gateway has the request's bytes
  proposed,          // the peer actor gave it to Raft (its index is known)
  entries_sent,      // an AppendEntries carrying it went to a link
  storage_queued,    // the peer actor handed its write to the storage actor
  storage_started,   // the storage actor began the write
  storage_done,      // LMDB committed (fsynced) it
  persisted,         // the peer actor learned that
  entries_received,  // a follower's peer actor has the AppendEntries
  ack_sent,          // a follower's reply acknowledging it (cumulative)
  ack_received,      // the leader's peer actor has that reply (cumulative)
  apply_started,     // the flush that applies it began
  applied,           // applied, its proposal answered in the peer actor
  gateway_replied,   // the gateway sent the answer to the client
  client_received,   // the client has the answer
  api_called,        // an etcd API handler asked the master's gateway (etcd_api.cpp)
  api_returned,      // ... and has its answer
  entries_arrived,   // a follower's gateway has the AppendEntries' bytes (before decoding)
  ack_arrived,       // the leader's gateway has the reply's bytes (cumulative)
  count
};

const char* name(stage s);

namespace detail {
extern bool on;  // set once, before main, from CONCLAVE_STAGE_TRACE
}
inline bool enabled() { return detail::on; }
std::int64_t now_ns();
// Which server marks: its node id (0, the default, for a client).
void set_node(std::uint64_t id);
void mark(stage s, std::uint64_t first, std::uint64_t last, std::int64_t t_ns);

inline void mark(stage s, std::uint64_t index) {
  if (enabled()) mark(s, index, index, now_ns());
}
inline void mark_range(stage s, std::uint64_t first, std::uint64_t last) {
  if (enabled() && last >= first) mark(s, first, last, now_ns());
}
inline void mark_upto(stage s, std::uint64_t last) {
  if (enabled()) mark(s, 0, last, now_ns());
}

}  // namespace conclave::stage_trace
