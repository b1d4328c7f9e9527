@0xcbaa190523515762;
# Replicated log entries and cluster configurations. These bytes are stored in
# LMDB (one LogEntry per key) and carried inside AppendEntries, so a field may
# be added but never renumbered or retyped.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("conclave::schema");

enum EntryKind {
  command @0;        # an opaque state-machine command (registry, counter, ...)
  noop @1;           # appended by every new leader (Raft thesis 6.4)
  configuration @2;  # carries `configuration`; payload is empty
}

struct LogEntry {
  term @0 :UInt64;
  index @1 :UInt64;
  kind @2 :EntryKind;
  payload @3 :Data;
  configuration @4 :Configuration;  # set when kind = configuration
}

enum Suffrage {
  voter @0;    # counts toward quorums, may become leader
  learner @1;  # receives the log, never votes (workers, servers catching up)
}

struct Server {
  id @0 :UInt64;        # never 0
  address @1 :Text;     # host:port of its peer endpoint
  suffrage @2 :Suffrage;
}

struct Configuration {
  servers @0 :List(Server);
}
