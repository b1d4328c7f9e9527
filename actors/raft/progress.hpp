// What the leader knows about each follower's log (Raft figure 2,
// "volatile state on leaders"), plus flow control (etcd tracker/progress.go).
//
// Invariant: match < next. Modes:
//   probe      one AppendEntries at a time, to find where the logs agree
//   replicate  pipelined: next runs ahead of match, up to max_inflight messages
//   snapshot   sending a snapshot in chunks; nothing else until it is done
#pragma once

#include <cstdint>
#include <deque>

#include "schema/raft_types.hpp"

namespace conclave::raft {

struct progress {
  enum class mode { probe, replicate, snapshot };

  index_t match;             // highest index known replicated durably on the follower
  index_t next;              // next index to send
  mode state = mode::probe;
  bool probe_sent = false;   // probe: waiting for the reply (or the next heartbeat)
  std::deque<index_t> inflight;  // replicate: last index of each AppendEntries in flight
  int ticks_without_progress = 0;  // replicate: resend from match if acks stop coming

  bool recent_active = false;  // heard from it since the last check-quorum round
  bool connected = true;       // false after "connection lost", until it is heard from again
  std::uint64_t acked_sequence = 0;  // highest AppendEntries sequence it answered this term
  std::uint64_t reset_sequence = 0;  // rejections of messages sent before this are stale

  // snapshot mode
  index_t snapshot_index;            // last index of the snapshot being sent
  std::uint64_t snapshot_offset = 0; // next byte to send
  bool snapshot_chunk_sent = false;  // a chunk is in flight
};

}  // namespace conclave::raft
