@0xfe8f911b7fedfeb1;
# The Raft peer protocol between masters. Every message travels inside an
# Envelope that names the cluster, the protocol version and the sender; a
# receiver drops anything from another cluster or of a version it does not
# speak before looking at the body.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("conclave::schema");

using Log = import "log.capnp";

struct Envelope {
  clusterId @0 :Text;
  protocolVersion @1 :UInt16;
  senderId @2 :UInt64;
  recipientId @3 :UInt64;  # lets a peer detect a message meant for a previous occupant of its address

  body :union {
    requestVote @4 :RequestVote;
    requestVoteReply @5 :RequestVoteReply;
    appendEntries @6 :AppendEntries;
    appendEntriesReply @7 :AppendEntriesReply;
    installSnapshot @8 :InstallSnapshot;
    installSnapshotReply @9 :InstallSnapshotReply;
    timeoutNow @10 :TimeoutNow;
  }
}

# RequestVote (Raft §5.2) and PreVote (thesis §9.6) share one shape; a pre-vote
# asks "would you vote for me at `term`?" without anybody changing term.
struct RequestVote {
  term @0 :UInt64;           # the candidate's term (for a pre-vote: the term it would campaign in)
  lastLogIndex @1 :UInt64;
  lastLogTerm @2 :UInt64;
  preVote @3 :Bool;
  leadershipTransfer @4 :Bool;  # sent after TimeoutNow: voters may not refuse for having a live leader
}

struct RequestVoteReply {
  term @0 :UInt64;
  granted @1 :Bool;
  preVote @2 :Bool;
}

struct AppendEntries {
  term @0 :UInt64;
  prevLogIndex @1 :UInt64;
  prevLogTerm @2 :UInt64;
  entries @3 :List(Log.LogEntry);
  leaderCommit @4 :UInt64;
  sequence @5 :UInt64;  # echoed in the reply; lets the leader match replies to rounds (ReadIndex, pipelining)
}

struct AppendEntriesReply {
  term @0 :UInt64;
  success @1 :Bool;
  matchIndex @2 :UInt64;     # on success: the last index known to match the leader's log
  # On failure, hints for fast backtracking (thesis §5.3): the term of the
  # conflicting entry and the first index this follower holds for that term,
  # or conflictTerm = 0 and conflictIndex = its last index + 1 when its log is short.
  conflictIndex @3 :UInt64;
  conflictTerm @4 :UInt64;
  sequence @5 :UInt64;
}

# A snapshot travels in chunks (Raft §7): offset and data of this chunk, `done`
# on the last one. The metadata comes with every chunk so a receiver can
# restart cleanly when a chunk arrives for a snapshot it has not seen.
struct InstallSnapshot {
  term @0 :UInt64;
  lastIncludedIndex @1 :UInt64;
  lastIncludedTerm @2 :UInt64;
  configuration @3 :Log.Configuration;
  offset @4 :UInt64;
  data @5 :Data;
  done @6 :Bool;
  totalSize @7 :UInt64;
}

struct InstallSnapshotReply {
  term @0 :UInt64;
  nextOffset @1 :UInt64;   # bytes received so far; the leader resumes from here
  done @2 :Bool;           # the whole snapshot is installed and durable
  lastIncludedIndex @3 :UInt64;
}

# Leadership transfer (thesis §3.10): the leader tells a caught-up follower
# to start an election at once.
struct TimeoutNow {
  term @0 :UInt64;
}
