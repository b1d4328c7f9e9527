// ZooKeeper as a system under test in conclave-bench: a local 3-server
// ensemble (java processes on loopback) driven through the C client.
//
// This header is free of CAF and of ZooKeeper's headers.
#pragma once

#include <memory>
#include <string>

#include "bench/system.hpp"

namespace conclave::bench {

// Starts a 3-server ZooKeeper ensemble on 127.0.0.1 and waits until it has a
// leader and two followers; throws std::runtime_error when java or ZooKeeper
// is missing or the ensemble is not up within 30 s plus initLimit ticks.
// `timing` is
//   "defaults": Debian's zoo.cfg (tickTime 2000 ms, initLimit 10, syncLimit 5);
//   "matched":  tickTime 200 ms, syncLimit 2, so a follower gives up on a
//               silent leader after 400 ms, within conclave's 250-500 ms
//               election timeout (syncLimit 1, 200 ms, made followers drop
//               a merely busy leader on this 2-core machine).
// `self_exe` is the running program: it is started as
// `self_exe --zk-holder ...` to own the session whose death worker-crash
// measures, and as `self_exe --zk-holder swarm ...` to keep scale()'s
// sessions alive. Everything started is killed when the object is destroyed.
std::unique_ptr<system_under_test> make_zookeeper(const std::string& timing, const std::string& self_exe);

// Entry point of those children: the program's main calls it with argv
// starting at "--zk-holder" and returns its result. The holder opens a
// session, creates an ephemeral znode and waits to be killed.
int zookeeper_holder_main(int argc, char** argv);

}  // namespace conclave::bench
