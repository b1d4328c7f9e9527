@0xd3a4f2c6b1e07a95;
# Subscriptions: what a client asks a master to push to it as the master
# applies the registry's commands (actors/registry/subscriptions.hpp). The
# pushes themselves carry a registry snapshot holding what changed (the
# registry's own encoding, registry.capnp), with a kind beside it.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("conclave::schema");

struct Subscription {
  clusterId @0 :Text;
  union {
    # Every key change under `prefix` after revision `after` (if hasAfter;
    # otherwise from the master's current revision on).
    watch :group {
      prefix @1 :Text;
      hasAfter @2 :Bool;
      after @3 :UInt64;
    }
    # Told once when `session` holds lock `name` (with its token), or no
    # longer waits for it, by a master that has applied log index `after`
    # (the acquire's queued outcome) or later.
    lock :group {
      name @4 :Text;
      session @5 :UInt64;
      after @9 :UInt64;
    }
    # The member's undelivered events with a seq above `after`.
    events :group {
      member @6 :Text;
      after @7 :UInt64;
    }
    # The member list, now and whenever a member joins, leaves or changes status.
    members @8 :Void;
  }
}
