// How a conclave server process (server_system_config) and the benchmark's
// clients set up CAF's scheduler and middleman: `threads` workers on one
// shared queue and no BASP worker threads. (Not yet for embedding hosts: with
// 2 threads on the shared queue, test/node_test's embedded master and worker
// crashed once in about 80 runs while the master stopped, in CAF's shared
// queue; not understood yet, so embedding keeps CAF's default scheduler.)
//
// Why (bench/README.md, "Where a write's time goes"): a request crosses
// several threads (the caller, the middleman's multiplexer, an actor's
// worker, the storage thread), and on a small machine a write is mostly
// those hand-offs. CAF's default work-stealing scheduler lets an idle worker
// sleep in 50 us steps and then on a 10 ms timer, so a hand-off to it waits;
// the shared queue wakes a worker at once. Measured on a 2-core VM, the
// same client code on the default scheduler against this one: one write
// 2.2 -> 1.6 ms, lock acquire + release 4.3 -> 3.2 ms, 64 closed-loop
// clients 9,700 -> 14,600 writes/s. No BASP workers: with them, CAF 0.17.6
// cleans up a closed connection only after the messages being decoded, and
// a connection accepted meanwhile on the same descriptor is left deaf.
#pragma once

#include <caf/fwd.hpp>

namespace conclave {

void configure_scheduling(caf::actor_system_config& cfg, int threads);

}  // namespace conclave
