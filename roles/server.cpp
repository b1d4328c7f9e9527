#include "roles/server.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <signal.h>

#include <algorithm>
#include <thread>

#include "actors/atoms.hpp"
#include "actors/log.hpp"
#include "actors/raft/gateway.hpp"
#include "actors/raft/peer_actor.hpp"
#include "actors/raft/storage_actor.hpp"
#include "roles/peer_tls.hpp"
#include "roles/scheduling.hpp"

namespace conclave {

using namespace conclave::raft;

expected<server_handles> start_server(caf::actor_system& sys, const server_setup& s) {
  const auto& opts = s.options;
  auto name = "node " + std::to_string(opts.raft.id.value);
  storage::lmdb_options lmdb;
  lmdb.max_map_bytes = static_cast<std::size_t>(opts.log_max_bytes);
  lmdb.initial_map_bytes = std::min(lmdb.initial_map_bytes, lmdb.max_map_bytes);
  auto log = storage::lmdb_log::open(opts.data_dir + "/log", lmdb);
  if (!log) return make_error(log.error().code, "cannot open the log: " + log.error().message());
  auto snapshots = storage::snapshot_store::open(opts.data_dir + "/snapshots", opts.snapshots_kept);
  if (!snapshots) return make_error(snapshots.error().code, "cannot open the snapshot directory: " + snapshots.error().message());
  auto loaded = snapshots->load_latest();
  if (!loaded) return make_error(loaded.error().code, "cannot read snapshots: " + loaded.error().message());
  for (const auto& skipped : loaded->skipped) log_warning("{}: skipping a bad snapshot: {}", name, skipped.message());

  auto setup = std::make_shared<peer_setup>();
  setup->options = opts;
  auto& durable = setup->durable;
  durable.state = (*log)->state();
  durable.start_index = (*log)->start_index();
  durable.start_term = (*log)->start_term();
  if ((*log)->last_index() >= (*log)->first_index()) {
    auto entries = (*log)->entries((*log)->first_index(), SIZE_MAX, SIZE_MAX);
    if (!entries) return make_error(entries.error().code, "cannot read the log: " + entries.error().message());
    durable.entries = std::move(*entries);
  }
  if (loaded->latest) {
    durable.snapshot = snapshot_data{loaded->latest->meta,
                                     std::make_shared<const std::string>(std::move(loaded->latest->data))};
    s.machine->restore(*durable.snapshot->data);
  }
  setup->machine = s.machine;
  setup->service = s.service;
  setup->push = s.push;
  setup->stats = s.stats ? s.stats : std::make_shared<metrics::sink>();
  log_line("{}: starting: cluster '{}', log {}..{}, term {}, snapshot at {}", name, opts.cluster_id,
           (*log)->first_index().value, (*log)->last_index().value, durable.state.term.value,
           durable.snapshot ? durable.snapshot->meta.last_index.value : 0);
  if (opts.keys.enabled()) {
    log_line("{}: authentication on: peers need the cluster secret, clients the secret or the member key", name);
  } else if (sys.has_openssl_manager()) {
    log_line("{}: no cluster secret: any process with a certificate from peer-trusted-ca-file can join and write", name);
  } else {
    log_warning("{}: authentication off: any process that reaches this port can join and write (set secret-file)",
                name);
  }
  storage_handles handles{std::shared_ptr<storage::lmdb_log>(std::move(*log)),
                          std::make_shared<storage::snapshot_store>(std::move(*snapshots)), setup->stats};
  setup->storage = sys.spawn<caf::detached>(storage_actor, handles);
  auto peer = sys.spawn(peer_actor, setup);
  auto gateway = sys.spawn(gateway_actor, gateway_setup{opts, peer, setup->stats});
  // With CAF's OpenSSL manager loaded (peer-cert-file), the port speaks only TLS.
  auto port = sys.has_openssl_manager() ? caf::openssl::publish(gateway, s.listen.port, s.listen.host.c_str(), true)
                                        : sys.middleman().publish(gateway, s.listen.port, s.listen.host.c_str(), true);
  if (!port) {
    caf::anon_send_exit(peer, caf::exit_reason::user_shutdown);
    return make_error(errc::io_error, "cannot listen on " + s.listen.text() + ": " + sys.render(port.error()));
  }
  log_line("{}: listening on {}{}", name, s.listen.text(), sys.has_openssl_manager() ? " (TLS)" : "");
  return server_handles{caf::actor_cast<gateway_interface>(gateway), peer};
}

void stop_server(caf::actor_system& sys, const server_handles& server) {
  caf::scoped_actor self{sys};
  self->request(server.peer, std::chrono::seconds(10), stop_atom::value).receive([] {}, [](caf::error&) {});
  caf::anon_send_exit(server.peer, caf::exit_reason::user_shutdown);
  // The address is free again: a host may start the server anew in this actor system.
  sys.middleman().unpublish(server.gateway);
}

sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

caf::actor_system_config& server_system_config(int threads, const tls_files& peer_tls) {
  static caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  if (peer_tls.enabled()) use_peer_tls(cfg, peer_tls);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  configure_scheduling(cfg, threads);
  return cfg;
}

int wait_for_stop(const sigset_t& signals, const std::function<int()>& exit_request) {
  for (;;) {
    timespec wait{0, 50 * 1000 * 1000};
    int sig = sigtimedwait(&signals, nullptr, &wait);
    if (sig == SIGTERM || sig == SIGINT) {
      log_line("{} received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return 0;
    }
    if (int code = exit_request()) return code;
  }
}

int run_server(server_setup s) {
  auto name = "node " + std::to_string(s.options.raft.id.value);
  auto signals = block_stop_signals();
  caf::actor_system sys{server_system_config(s.threads, s.peer_tls)};
  auto started = start_server(sys, s);
  if (!started) {
    log_error("{}: {}", name, started.error().detail);
    return 1;
  }
  server_handles server = *started;
  started = make_error(errc::unavailable);  // the only handles left are `server`'s
  int exit_code;
  {
    caf::scoped_actor self{sys};
    self->monitor(server.peer);
    exit_code = wait_for_stop(signals, [&] {
      bool down = false;
      self->receive([&](caf::down_msg&) { down = true; }, caf::after(std::chrono::seconds(0)) >> [] {});
      if (down) log_error("{}: stopped after a failure", name);
      return down ? 1 : 0;
    });
  }
  if (exit_code == 0) stop_server(sys, server);
  caf::anon_send_exit(server.peer, caf::exit_reason::user_shutdown);
  // The actor system waits for its detached actors (storage) to be destroyed;
  // the peer holds the only handle to it, so drop ours.
  server = server_handles{};
  return exit_code;
}

}  // namespace conclave
