// What the leader knows about each follower's log (Raft figure 2,
// "volatile state on leaders"), plus flow control (etcd tracker/progress.go).
//
// Invariant: match < next. Modes:
//   probe      one AppendEntries at a time, to find where the logs agree
//   replicate  pipelined: next runs ahead of match, up to max_inflight messages
//   snapshot   sending a snapshot in chunks; nothing else until it is done
// The mode and the flow-control fields change only through the methods below.
#pragma once

#include <cstddef>
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
  int ticks_without_progress = 0;  // heartbeats with something in flight and no answer

  // The highest commit index what we sent lets it reach: an AppendEntries
  // lets it commit up to min(leader_commit, its last entry) (§5.3). When
  // min(match, commit) passes this, it is told at once, not at the next
  // heartbeat.
  index_t sent_commit;

  bool recent_active = false;  // heard from it since the last check-quorum round
  bool connected = true;       // false after "connection lost", until it is heard from again
  std::uint64_t acked_sequence = 0;  // highest AppendEntries sequence it answered this term
  std::uint64_t reset_sequence = 0;  // rejections of messages sent before this are stale

  // snapshot mode
  index_t snapshot_index;            // last index of the snapshot being sent
  std::uint64_t snapshot_offset = 0; // next byte to send
  bool snapshot_chunk_sent = false;  // a chunk is in flight

  // A server new to the leader probes from `next` (§5.3: the leader's last
  // index + 1) and counts as active for one full check-quorum round.
  static progress starting_at(index_t next, std::uint64_t reset_sequence) {
    progress pr;
    pr.next = next;
    pr.recent_active = true;
    pr.reset_sequence = reset_sequence;
    return pr;
  }

  // Back to probing from `next`, forgetting what is in flight; rejections of
  // messages with a sequence below `reset_sequence` are stale from now on.
  void become_probe(index_t next_to_send, std::uint64_t reset_at) {
    state = mode::probe;
    next = next_to_send;
    inflight.clear();
    probe_sent = false;
    ticks_without_progress = 0;
    snapshot_chunk_sent = false;
    reset_sequence = reset_at;
    sent_commit = index_t{0};  // what was sent may not have been taken
  }

  // The logs agree up to match: pipeline from there.
  void become_replicate() {
    state = mode::replicate;
    next = index_t{match.value + 1};
    inflight.clear();
    probe_sent = false;
  }

  // The entries it needs are compacted: send snapshot `index` from byte 0.
  void become_snapshot(index_t index) {
    state = mode::snapshot;
    snapshot_index = index;
    snapshot_offset = 0;
    snapshot_chunk_sent = false;
    ticks_without_progress = 0;
  }

  // It holds everything up to `index` durably (a successful AppendEntries
  // reply). match never goes back; messages it covers leave the window.
  void acknowledged(index_t index) {
    if (index > match) {
      match = index;
      ticks_without_progress = 0;
    }
    if (next <= match) next = index_t{match.value + 1};
    while (!inflight.empty() && inflight.front() <= match) inflight.pop_front();
  }

  // Whether an AppendEntries may go now: one probe at a time, a full window
  // waits, and snapshot mode sends chunks instead.
  bool may_send_append(std::size_t max_inflight) const {
    switch (state) {
      case mode::probe: return !probe_sent;
      case mode::replicate: return inflight.size() < max_inflight;
      case mode::snapshot: return false;
    }
    return false;
  }

  // An AppendEntries went out; `last` is its last entry (0 when empty).
  // Replicate mode assumes it will succeed and moves on; a rejection resets.
  void append_sent(index_t last) {
    if (state == mode::probe) {
      probe_sent = true;
    } else if (last != index_t{0}) {
      next = index_t{last.value + 1};
      inflight.push_back(last);
    }
  }

  // An AppendEntries carrying `leader_commit` and ending at `last` went out.
  void commit_sent(index_t leader_commit, index_t last) {
    auto reach = leader_commit < last ? leader_commit : last;
    if (reach > sent_commit) sent_commit = reach;
  }
  // Whether it may commit more than it has been told: min(match, commit) is
  // known to be in its log.
  bool commit_behind(index_t commit) const { return (match < commit ? match : commit) > sent_commit; }

  // Probe mode: a probe is resent once per heartbeat, in case it was lost.
  void probe_again() { probe_sent = false; }

  // One heartbeat interval passed. True once what is in flight (entries in
  // replicate mode, a chunk in snapshot mode) has gone two intervals
  // unanswered: it is presumed lost.
  bool heartbeat_unanswered() {
    switch (state) {
      case mode::probe: return false;
      case mode::replicate: return !inflight.empty() && ++ticks_without_progress >= 2;
      case mode::snapshot: return snapshot_chunk_sent && ++ticks_without_progress >= 2;
    }
    return false;
  }

  // Snapshot mode: the next chunk may go, starting at byte `offset` (the
  // follower's answer, or the same offset again when a chunk was lost).
  void snapshot_resume_at(std::uint64_t offset) {
    snapshot_offset = offset;
    snapshot_chunk_sent = false;
    ticks_without_progress = 0;
  }
};

}  // namespace conclave::raft
