// Simulated workers for conclave-bench's heartbeat-scale scenario: one
// process registers `count` members and heartbeats for each of them at the
// member heartbeat interval, every heartbeat its own request (as from
// separate worker processes), spread evenly over the interval.
#pragma once

namespace conclave::bench {

// conclave-bench --swarm LEADER_HOST:PORT CLUSTER_ID PREFIX COUNT INTERVAL_MS TTL_MS SECONDS OUT_FILE
// Writes "registered N", then after SECONDS of heartbeats one line
// "heartbeats N errors N p50_ms X p99_ms X" to OUT_FILE. Exit 0 on success.
int swarm_main(int argc, char** argv);

// conclave-bench --lock-holder LEADER_HOST:PORT CLUSTER_ID LOCK TTL_MS INTERVAL_MS
// Opens a session, takes LOCK, prints "holding TOKEN" and keeps the session
// alive until killed: the lock of an engine that dies with its host.
int lock_holder_main(int argc, char** argv);

}  // namespace conclave::bench
