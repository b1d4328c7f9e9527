// etcd as a system under test in conclave-bench: a 3-member etcd cluster on
// 127.0.0.1 (processes of the installed etcd binary), driven through its v3
// JSON gateway with libcurl. Free of CAF, like bench/system.hpp.
#pragma once

#include <memory>
#include <string>

#include "bench/system.hpp"

namespace conclave::bench {

// Starts the cluster and waits until it has a leader; throws
// std::runtime_error when etcd is missing or does not come up within 20 s.
// timing: "defaults" (etcd's own: heartbeat 100 ms, election 1000 ms) or
// "matched" (conclave's: heartbeat 50 ms, election timeout 250 ms).
// self_exe: this program, run as `self_exe --etcd-holder ...` for the
// lease-holder children of worker-crash and scale and
// `self_exe --etcd-watchers ...` for the watch scenario's watchers.
std::unique_ptr<system_under_test> make_etcd(const std::string& timing, const std::string& self_exe);

// Entry for a lease-holder child: conclave-bench's main calls this with
// argv from the `--etcd-holder` flag on (argv[0] is the flag) and returns
// its result.
int etcd_holder_main(int argc, char** argv);

// Entry for a watcher child of the watch scenario (`--etcd-watchers ...`).
int etcd_watchers_main(int argc, char** argv);

}  // namespace conclave::bench
