@0xc0cb91c5d11efb64;
# The registry's commands (the payload of command entries in the Raft log),
# their outcomes, and the registry snapshot. See schema/registry_types.hpp for
# what each field means.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("conclave::schema");

enum MemberRole { master @0; worker @1; masterAndWorker @2; }
enum MemberStatus { alive @0; suspect @1; dead @2; left @3; }

struct Resources {
  cpuPercent @0 :Float64;
  loadAverage @1 :Float64;
  memoryUsedBytes @2 :UInt64;
  memoryAvailableBytes @3 :UInt64;
  diskAvailableBytes @4 :UInt64;
}

struct Label { key @0 :Text; value @1 :Text; }

struct Member {
  id @0 :Text;
  role @1 :MemberRole;
  host @2 :Text;
  port @3 :UInt16;
  startTimeMs @4 :UInt64;
  labels @5 :List(Label);
  usage @6 :Resources;
  status @7 :MemberStatus;
  session @8 :UInt64;
  changed @9 :UInt64;
  incarnation @10 :UInt64;
}

struct Session { id @0 :UInt64; owner @1 :Text; ttlMs @2 :UInt64; remainingMs @3 :UInt64; }

struct KeyValue {
  key @0 :Text;
  value @1 :Data;
  created @2 :UInt64;
  modified @3 :UInt64;
  version @4 :UInt64;
  session @5 :UInt64;
}

struct Lock { name @0 :Text; holder @1 :UInt64; token @2 :UInt64; waiters @3 :List(UInt64); }

struct Event {
  seq @0 :UInt64;
  from @1 :Text;
  to @2 :Text;
  payload @3 :Data;
  recipients @4 :List(Text);
}

struct Change {
  rev @0 :UInt64;
  deleted @1 :Bool;
  key @2 :Text;
  value @3 :Data;
  created @4 :UInt64;
  version @5 :UInt64;
  session @6 :UInt64;
  hasPrev @7 :Bool;       # the key existed before the change, as `prev` (its key field empty)
  prev @8 :KeyValue;
}

struct KeyRange { key @0 :Text; end @1 :Text; }

enum CompareTarget { value @0; version @1; created @2; modified @3; session @4; }
enum CompareOp { equal @0; greater @1; less @2; notEqual @3; }
struct Compare {
  range @0 :KeyRange;
  target @1 :CompareTarget;
  op @2 :CompareOp;
  value @3 :Data;
  number @4 :UInt64;
}

enum OpKind { range @0; put @1; remove @2; }
struct TxnOp {
  kind @0 :OpKind;
  range @1 :KeyRange;
  value @2 :Data;
  session @3 :UInt64;
  ignoreValue @4 :Bool;
  ignoreSession @5 :Bool;
}

struct Txn { compares @0 :List(Compare); success @1 :List(TxnOp); failure @2 :List(TxnOp); }

struct UsageReport { id @0 :Text; usage @1 :Resources; }
struct Remaining { session @0 :UInt64; remainingMs @1 :UInt64; }

struct Command {
  union {
    registerMember :group { member @0 :Member; ttlMs @1 :UInt64; }
    reportUsage @2 :List(UsageReport);
    setMemberStatus :group { id @3 :Text; status @4 :MemberStatus; }
    openSession :group { owner @5 :Text; ttlMs @6 :UInt64; id @30 :UInt64; }
    closeSession :group { id @7 :UInt64; expired @8 :Bool; }
    checkpointSessions @9 :List(Remaining);
    put :group {
      key @10 :Text;
      value @11 :Data;
      session @12 :UInt64;
      hasIfVersion @13 :Bool;
      ifVersion @14 :UInt64;
    }
    removeKey :group { key @15 :Text; hasIfVersion @16 :Bool; ifVersion @17 :UInt64; }
    acquireLock :group { name @18 :Text; session @19 :UInt64; wait @20 :Bool; }
    releaseLock :group { name @21 :Text; session @22 :UInt64; }
    cancelLockWait :group { name @23 :Text; session @24 :UInt64; }
    publishEvent :group { from @25 :Text; to @26 :Text; payload @27 :Data; }
    ackEvents :group { member @28 :Text; upto @29 :UInt64; }
    txn @31 :Txn;
    compact @32 :UInt64;
  }
}

enum Code { ok @0; queued @1; notFound @2; versionMismatch @3; noSession @4; held @5; notHolder @6; invalid @7; full @8; exists @9; compacted @10; futureRevision @11; }

struct Grant { name @0 :Text; session @1 :UInt64; token @2 :UInt64; }

struct Outcome {
  code @0 :Code;
  value @1 :UInt64;
  detail @2 :Text;
  grants @3 :List(Grant);  # locks this command granted to waiters
  succeeded @4 :Bool;      # a transaction: its comparisons held
  ops @5 :List(OpResult);  # a transaction: one per operation it ran
}

struct OpResult { keys @0 :List(KeyValue); }

struct Acked { member @0 :Text; seq @1 :UInt64; }

struct Snapshot {
  rev @0 :UInt64;
  eventSeq @1 :UInt64;
  members @2 :List(Member);
  sessions @3 :List(Session);
  keys @4 :List(KeyValue);
  locks @5 :List(Lock);
  events @6 :List(Event);
  acked @7 :List(Acked);
  history @8 :List(Change);
  historyFloor @9 :UInt64;
  applied @10 :UInt64;      # the log index of the last command applied
  lastSession @11 :UInt64;  # the highest session id the registry picked
  compacted @12 :UInt64;    # the last compaction's revision
}

# --- queries ---------------------------------------------------------------
# Read-only questions to the registry (the payload of client read and
# staleRead requests), answered from a server's applied state by a
# QueryResult of the matching kind, or an error for a query that does not
# decode.

struct Query {
  union {
    getKey @0 :Text;
    listPrefix @1 :Text;
    members :group { filtered @2 :Bool; status @3 :MemberStatus; }  # filtered: only members with this status
    lock @4 :Text;                                                   # its name
    session @5 :UInt64;
    events @6 :Text;                                                 # a member id: its unacknowledged events
    changes :group { after @7 :UInt64; prefix @8 :Text; }            # key changes after a revision
    revision @9 :Void;
    digest @10 :Void;
    sessionWithKeys @11 :UInt64;                                     # a session and its keys
    sessions @12 :Void;
    range :group { range @13 :KeyRange; at @14 :UInt64; }           # keys of a range at a revision (0: now)
    state @15 :Void;                                                 # the whole registry (a backup)
    stateSummary @16 :Void;                                          # ... without keys, events or history
  }
}

struct QueryResult {
  union {
    # For key and lock, the KeyValue's key and the Lock's name are left
    # empty: the query named them.
    key :group { found @0 :Bool; value @1 :KeyValue; rev @17 :UInt64; }
    keys :group { rev @2 :UInt64; keys @3 :List(KeyValue); }
    members @4 :List(Member);
    lock :group { found @5 :Bool; value @6 :Lock; }
    session :group { found @7 :Bool; value @8 :Session; keys @18 :List(Text); }
    events @9 :List(Event);
    changes :group { rev @10 :UInt64; compacted @11 :Bool; changes @12 :List(Change); }
    revision @13 :UInt64;
    digest :group { rev @14 :UInt64; digest @15 :UInt64; }
    error @16 :Text;     # the query did not decode
    sessions @19 :List(Session);
    range :group { rev @20 :UInt64; floor @21 :UInt64; status @22 :Code; keys @23 :List(KeyValue); }
    state @24 :Snapshot;
  }
}
