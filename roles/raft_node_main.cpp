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
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <getopt.h>
#include <signal.h>

#include <cstdio>
#include <cstring>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
#include "actors/raft/peer_actor.hpp"
#include "actors/raft/storage_actor.hpp"

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
  if (!listen) listen = opts.self();
  auto name = "node " + std::to_string(opts.raft.id.value);

  // SIGTERM and SIGINT are taken by sigwait below; block them before any
  // thread starts so no CAF thread receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto log = storage::lmdb_log::open(opts.data_dir + "/log");
  if (!log) {
    log_line("{}: cannot open the log: {}", name, log.error().message());
    return 1;
  }
  auto snapshots = storage::snapshot_store::open(opts.data_dir + "/snapshots", opts.snapshots_kept);
  if (!snapshots) {
    log_line("{}: cannot open the snapshot directory: {}", name, snapshots.error().message());
    return 1;
  }
  auto loaded = snapshots->load_latest();
  if (!loaded) {
    log_line("{}: cannot read snapshots: {}", name, loaded.error().message());
    return 1;
  }
  for (const auto& skipped : loaded->skipped) log_line("{}: skipping a bad snapshot: {}", name, skipped.message());

  auto setup = std::make_shared<peer_setup>();
  setup->options = opts;
  auto machine = std::make_shared<counter_state_machine>();
  auto& durable = setup->durable;
  durable.state = (*log)->state();
  durable.start_index = (*log)->start_index();
  durable.start_term = (*log)->start_term();
  if ((*log)->last_index() >= (*log)->first_index()) {
    auto entries = (*log)->entries((*log)->first_index(), SIZE_MAX, SIZE_MAX);
    if (!entries) {
      log_line("{}: cannot read the log: {}", name, entries.error().message());
      return 1;
    }
    durable.entries = std::move(*entries);
  }
  if (loaded->latest) {
    durable.snapshot = snapshot_data{loaded->latest->meta,
                                     std::make_shared<const std::string>(std::move(loaded->latest->data))};
    machine->restore(*durable.snapshot->data);
  }
  setup->machine = machine;
  setup->stall_until_ms = std::make_shared<std::atomic<std::int64_t>>(0);
  log_line("{}: starting: cluster '{}', log {}..{}, term {}, snapshot at {}", name, opts.cluster_id,
           (*log)->first_index().value, (*log)->last_index().value, durable.state.term.value,
           durable.snapshot ? durable.snapshot->meta.last_index.value : 0);

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // One Raft peer is one actor: a single worker thread on a shared queue
  // (no work stealing, no spinning) measured fastest on small machines
  // (bench/README.md); the storage actor has its own thread anyway.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", worker_threads);
  caf::actor_system sys{cfg};
  storage_handles handles{std::shared_ptr<storage::lmdb_log>(std::move(*log)),
                          std::make_shared<storage::snapshot_store>(std::move(*snapshots)), setup->stall_until_ms};
  setup->storage = sys.spawn<caf::detached>(storage_actor, handles);
  auto peer = sys.spawn(peer_actor, setup);
  auto port = sys.middleman().publish(peer, listen->port, listen->host.c_str(), true);
  if (!port) {
    log_line("{}: cannot listen on {}: {}", name, listen->text(), sys.render(port.error()));
    caf::anon_send_exit(peer, caf::exit_reason::user_shutdown);
    return 1;
  }
  log_line("{}: listening on {}", name, listen->text());

  caf::scoped_actor self{sys};
  self->monitor(peer);
  int exit_code = 0;
  for (;;) {
    timespec wait{0, 100 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      log_line("{}: {} received", name, sig == SIGTERM ? "SIGTERM" : "SIGINT");
      self->request(peer, std::chrono::seconds(10), stop_atom::value)
          .receive([] {}, [&](caf::error& e) {
            log_line("{}: stopping failed: {}", name, sys.render(e));
            exit_code = 1;
          });
      break;
    }
    bool down = false;
    self->receive([&](caf::down_msg&) { down = true; }, caf::after(std::chrono::seconds(0)) >> [] {});
    if (down) {
      log_line("{}: stopped after a failure", name);
      exit_code = 1;
      break;
    }
  }
  caf::anon_send_exit(peer, caf::exit_reason::user_shutdown);
  // The actor system waits for its detached actors (storage) to be destroyed,
  // so drop every handle to them first.
  setup.reset();
  peer = nullptr;
  return exit_code;
}
