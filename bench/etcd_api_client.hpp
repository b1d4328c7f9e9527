// The etcd-API rows of conclave-bench: one client, written once against the
// project's etcd v3 protos (schema/etcd), driving any system that serves
// etcd's v3 gRPC API (conclave masters with client-listen, etcd's members),
// so that both are measured through the same client code.
//
// Only bench/etcd_api_client.cpp sees gRPC; this header is free of gRPC and
// of CAF, like bench/system.hpp.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/system.hpp"

namespace conclave::bench {

// A system whose servers the etcd-API client drives (they are started and
// stopped by that system's own driver; the etcd-API row only talks to them).
struct etcd_api_target {
  std::string name;     // the row's name, e.g. "conclave (etcd API)"
  std::string servers;  // how the servers run, for the report (one line)
  // The servers now, each with its gRPC endpoint and pid (a restarted
  // server may listen elsewhere than before).
  std::function<std::vector<etcd_api_server>()> current;
  std::string self_exe;  // this program, for the lease-holder and watcher children
};

// Probes the servers (a leader, the smallest lease TTL they grant); throws
// std::runtime_error when they do not answer within 20 s.
std::unique_ptr<system_under_test> make_etcd_api(etcd_api_target target);

// The row's name for the system `native` (its native row's name):
// "conclave" -> "conclave (etcd API)", "etcd (defaults)" -> "etcd (defaults, etcd API)".
std::string etcd_api_name(const std::string& native);

// conclave-bench --etcd-api-holder ENDPOINTS KEY VALUE TTL: grants a lease of
// TTL seconds (or the smallest the server grants), puts KEY = VALUE on it and
// keeps it alive on a LeaseKeepAlive stream every TTL/3 (as clientv3 does),
// until killed or its parent is gone.
int etcd_api_holder_main(int argc, char** argv);

// conclave-bench --etcd-api-watchers ENDPOINT PREFIX AFTER COUNT WRITES OUT:
// COUNT watches of PREFIX from revision AFTER + 1, all on one Watch stream of
// one connection (as clientv3 multiplexes them), recorded with a
// watch_recorder (bench/watch.hpp) until each delivered WRITES writes.
int etcd_api_watchers_main(int argc, char** argv);

}  // namespace conclave::bench
