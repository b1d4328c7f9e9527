@0xf0a4e6bab13f87b9;
# Header of a snapshot file. The file is: magic "CNCLSNAP", this header as a
# length-prefixed Cap'n Proto message, the state machine's bytes, and a
# CRC-32 of everything before it (see storage/snapshot_store.hpp).

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("conclave::schema");

using Log = import "log.capnp";

struct SnapshotHeader {
  lastIncludedIndex @0 :UInt64;
  lastIncludedTerm @1 :UInt64;
  configuration @2 :Log.Configuration;
  dataSize @3 :UInt64;
}
