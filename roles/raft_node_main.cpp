// conclave-raft-node: one Raft server with a counter state machine, for
// tests and benchmarks of the replication runtime.
//
//   conclave-raft-node --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003
//                      --data-dir /var/lib/conclave/1 --cluster-id test
//                      [--listen HOST:PORT] [--tick-ms 10] [--heartbeat-ticks 5]
//                      [--election-ticks 25:50] [--snapshot-every 10000] [--snapshot-trailing 1024]
//                      [--preferred-leader N] [--lease-reads] [--threads 1]
//
// Logs leader changes with timestamps on stderr. SIGTERM or SIGINT: a leader
// hands leadership over first, then the process exits 0. Exit 1: a runtime
// failure (storage); exit 2: bad flags.
#include <getopt.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
#include "roles/server.hpp"

using namespace conclave;
using namespace conclave::raft;

namespace {

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "conclave-raft-node: %s\n(see the comment at the top of roles/raft_node_main.cpp)\n", what.c_str());
  std::exit(2);
}

long number(const char* text, const char* flag) {
  char* end = nullptr;
  auto v = std::strtol(text, &end, 10);
  if (*end != '\0' || end == text) usage_error(std::string(flag) + ": '" + text + "' is not a number");
  return v;
}

int worker_threads = 1;

node_options parse(int argc, char** argv, std::optional<endpoint>& listen) {
  node_options o;
  static option longopts[] = {{"id", required_argument, nullptr, 'i'},
                              {"peers", required_argument, nullptr, 'p'},
                              {"data-dir", required_argument, nullptr, 'd'},
                              {"cluster-id", required_argument, nullptr, 'c'},
                              {"listen", required_argument, nullptr, 'l'},
                              {"tick-ms", required_argument, nullptr, 't'},
                              {"heartbeat-ticks", required_argument, nullptr, 'h'},
                              {"election-ticks", required_argument, nullptr, 'e'},
                              {"snapshot-every", required_argument, nullptr, 's'},
                              {"preferred-leader", required_argument, nullptr, 'P'},
                              {"lease-reads", no_argument, nullptr, 'L'},
                              {"snapshot-trailing", required_argument, nullptr, 'T'},
                              {"threads", required_argument, nullptr, 'W'},
                              {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, nullptr)) != -1) {
    switch (c) {
      case 'i': o.raft.id = node_id{static_cast<std::uint64_t>(number(optarg, "--id"))}; break;
      case 'p': {
        std::string all = optarg;
        std::size_t start = 0;
        while (start < all.size()) {
          auto end = all.find(',', start);
          auto item = all.substr(start, end == std::string::npos ? std::string::npos : end - start);
          auto eq = item.find('=');
          if (eq == std::string::npos) usage_error("--peers: '" + item + "' is not ID=HOST:PORT");
          auto id = node_id{static_cast<std::uint64_t>(number(item.substr(0, eq).c_str(), "--peers"))};
          auto ep = parse_endpoint(item.substr(eq + 1), "--peers");
          if (!ep) usage_error(ep.error().detail);
          o.members[id] = *ep;
          if (end == std::string::npos) break;
          start = end + 1;
        }
        break;
      }
      case 'd': o.data_dir = optarg; break;
      case 'c': o.cluster_id = optarg; break;
      case 'l': {
        auto ep = parse_endpoint(optarg, "--listen");
        if (!ep) usage_error(ep.error().detail);
        listen = *ep;
        break;
      }
      case 't': o.tick_ms = static_cast<int>(number(optarg, "--tick-ms")); break;
      case 'h': o.raft.heartbeat_interval_ticks = static_cast<int>(number(optarg, "--heartbeat-ticks")); break;
      case 'e': {
        std::string v = optarg;
        auto colon = v.find(':');
        if (colon == std::string::npos) usage_error("--election-ticks: expected MIN:MAX");
        o.raft.election_timeout_min_ticks = static_cast<int>(number(v.substr(0, colon).c_str(), "--election-ticks"));
        o.raft.election_timeout_max_ticks = static_cast<int>(number(v.substr(colon + 1).c_str(), "--election-ticks"));
        break;
      }
      case 's': o.snapshot_every_entries = static_cast<std::uint64_t>(number(optarg, "--snapshot-every")); break;
      case 'P': o.raft.preferred_leader = node_id{static_cast<std::uint64_t>(number(optarg, "--preferred-leader"))}; break;
      case 'L': o.raft.lease_reads = true; break;
      case 'W': worker_threads = static_cast<int>(number(optarg, "--threads")); break;
      case 'T': o.raft.snapshot_trailing_entries = static_cast<std::size_t>(number(optarg, "--snapshot-trailing")); break;
      default: usage_error("unknown flag");
    }
  }
  if (optind < argc) usage_error(std::string("unexpected argument '") + argv[optind] + "'");
  o.raft.seed = o.raft.id.value * 7919 + static_cast<std::uint64_t>(::getpid());
  if (auto ok = o.validate(); !ok) usage_error(ok.error().detail);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<endpoint> listen;
  auto opts = parse(argc, argv, listen);
  server_setup setup;
  setup.options = opts;
  setup.listen = listen ? *listen : opts.self();
  setup.threads = worker_threads;
  setup.machine = std::make_shared<counter_state_machine>();
  return run_server(std::move(setup));
}
