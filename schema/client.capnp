@0xc515b016e90236f5;
# The client protocol: what a client (conclavectl, a test, the embedding
# host) asks of a master, and the answers. Like the peer protocol, every
# request names the cluster and the protocol version; a master refuses a
# request for another cluster.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("conclave::schema");

struct ClientRequest {
  clusterId @0 :Text;
  protocolVersion @1 :UInt16;

  body :union {
    propose @2 :Data;               # a state-machine command; answered once committed and applied
    read @3 :Data;                  # a state-machine query (the registry's: a registry.capnp Query); answered linearizably (ReadIndex)
    status @4 :Void;                # who leads, how far the log is
    transferLeadership @5 :UInt64;  # to this server (0: the most caught-up voter)
    retired6 @6 :Void;              # was setFaults: fault injection is a test-only channel (gateway.hpp)
    retired7 @7 :Void;              # was stallStorage; a master refuses both as malformed
    keepalive @8 :Keepalive;        # a session's heartbeat, to the leader
    staleRead @9 :Data;             # a query answered from this server's applied state, at once
    changeMembership @10 :MembershipChange;  # add a learner, promote it, or remove a server
  }
}

struct Keepalive {
  session @0 :UInt64;
  payload @1 :Data;   # for the registry: the member's resource usage
  detached @2 :Bool;  # not tied to this connection: only the TTL expires the session (etcd's leases)
}

struct ClientResponse {
  body :union {
    committed @0 :Committed;
    readResult @1 :ReadResult;
    status @2 :Status;
    ok @3 :Void;
    error @4 :Error;
  }
}

struct Committed {
  index @0 :UInt64;
  term @1 :UInt64;
  result @2 :Data;   # what the state machine returned
}

struct ReadResult {
  index @0 :UInt64;  # the read reflects at least this applied index
  result @1 :Data;
}

struct Status {
  id @0 :UInt64;
  role @1 :Text;
  term @2 :UInt64;
  leaderId @3 :UInt64;
  leaderAddress @4 :Text;
  commitIndex @5 :UInt64;
  appliedIndex @6 :UInt64;
  lastIndex @7 :UInt64;
  digest @8 :Text;        # the state machine's summary of what it applied
  storageError @9 :Text;  # set while this server cannot write to its disk (full)
  members @10 :List(ConfigMember);  # the configuration this server knows
}

struct ConfigMember { id @0 :UInt64; address @1 :Text; learner @2 :Bool; }

struct Error {
  code @0 :Text;           # a stable name: not_leader, busy, ...
  message @1 :Text;
  leaderId @2 :UInt64;     # for not_leader: who leads, if known
  leaderAddress @3 :Text;
}

struct MembershipChange {
  kind @0 :UInt8;       # 0 add as learner, 1 promote to voter, 2 remove
  id @1 :UInt64;
  address @2 :Text;     # host:port, for adding
}
