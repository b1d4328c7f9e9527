#include "actors/raft/link_actor.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <set>

#include "actors/connector.hpp"
#include "actors/log.hpp"

namespace conclave::raft {
namespace {

struct link_state {
  link_interface::pointer self;
  link_setup s;
  caf::actor remote;  // the peer's gateway, while connected
  bool connecting = false;
  bool stopping = false;
  int backoff_ms = 0;  // 0, or the current backoff cap: it grows with each retry until the peer speaks
  std::mt19937_64 rng;
  log_limiter limiter;

  void connect() {
    if (connecting || remote || stopping) return;
    connecting = true;
    auto mm = connector(self->system());
    self->request(mm, std::chrono::seconds(2), caf::connect_atom::value, s.address.host, s.address.port)
        .then(
            [this](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              connecting = false;
              if (!ptr) return unconnected();
              remote = caf::actor_cast<caf::actor>(ptr);
              // The backoff starts over only once the peer speaks (heard_atom):
              // a port that accepts but whose actor is gone must not spin.
              self->monitor(remote);
              self->send(s.owner, link_atom::value, s.peer.value, remote);
            },
            [this](caf::error&) {
              connecting = false;
              unconnected();
            });
  }

  // The owner is told, and the next attempt waits: capped exponential
  // backoff with full jitter.
  void unconnected() {
    self->send(s.owner, link_atom::value, s.peer.value, caf::actor());
    backoff_ms = backoff_ms == 0 ? s.reconnect_min_ms : std::min(s.reconnect_max_ms, backoff_ms * 2);
    auto wait = s.reconnect_min_ms + static_cast<int>(rng() % static_cast<std::uint64_t>(backoff_ms));
    self->delayed_send(self, std::chrono::milliseconds(wait), reconnect_atom::value);
  }

  void on_down(const caf::down_msg& dm) {
    if (!remote || dm.source != remote.address()) return;
    remote = nullptr;
    limiter("lost", [&](std::uint64_t suppressed) {
      log_warning("{}: lost the connection to node {}{}", s.name, s.peer.value,
                  suppressed ? fmt::format(" ({} more times in the last minute)", suppressed) : std::string());
    });
    unconnected();
  }

  void send(std::string& bytes) {
    if (!remote) return connect();
    auto tag = auth::tag(s.keys, bytes);
    caf::send_as(s.gateway, remote, peer_atom::value, std::move(bytes), std::move(tag));
  }
};

}  // namespace

link_interface::behavior_type link_actor(link_interface::pointer self, link_setup setup) {
  auto st = std::make_shared<link_state>();
  st->self = self;
  st->s = std::move(setup);
  st->rng.seed(st->s.seed ^ st->s.peer.value);
  self->set_down_handler([st](caf::down_msg& dm) { st->on_down(dm); });
  st->connect();
  return {
      [st](peer_atom, std::string& bytes) { st->send(bytes); },
      [st](heard_atom) { st->backoff_ms = 0; },
      [st](stop_atom) { st->stopping = true; },
      [st](reconnect_atom) { st->connect(); },
  };
}

}  // namespace conclave::raft
