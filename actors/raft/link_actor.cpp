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

  bool passive() const { return passive_link(s.self, s.peer); }

  void connect() {
    if (connecting || remote || stopping || passive()) return;
    connecting = true;
    auto mm = connector(self->system());
    self->request(mm, std::chrono::seconds(2), caf::connect_atom::value, s.address.host, s.address.port)
        .then(
            [this](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
              connecting = false;
              if (!ptr) return unconnected();
              // The backoff starts over only once the peer speaks (heard_atom):
              // a port that accepts but whose actor is gone must not spin.
              use(caf::actor_cast<caf::actor>(ptr));
              // The peer's passive link answers over this connection.
              auto text = hello_text(s.cluster_id, s.self, s.peer);
              caf::send_as(s.gateway, remote, hello_atom::value, s.cluster_id, s.self.value, s.peer.value, auth::tag(s.keys, text));
            },
            [this](caf::error&) {
              connecting = false;
              unconnected();
            });
  }

  void use(caf::actor r) {
    remote = std::move(r);
    self->monitor(remote);
    self->send(s.owner, link_atom::value, s.peer.value, remote);
  }

  // Passive: the peer connected (again) and said hello from its gateway.
  void on_hello(const caf::actor& r) {
    if (!passive() || stopping || !r || r == remote) return;
    if (remote) self->demonitor(remote);
    use(r);
  }

  // The owner is told, and an active link's next attempt waits: capped
  // exponential backoff with full jitter.
  void unconnected() {
    self->send(s.owner, link_atom::value, s.peer.value, caf::actor());
    if (passive()) return;
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

std::string hello_text(const std::string& cluster_id, node_id from, node_id to) {
  return "hello|" + cluster_id + "|" + std::to_string(from.value) + "|" + std::to_string(to.value);
}

link_interface::behavior_type link_actor(link_interface::pointer self, link_setup setup) {
  auto st = std::make_shared<link_state>();
  st->self = self;
  st->s = std::move(setup);
  st->rng.seed(st->s.seed ^ st->s.peer.value);
  self->set_down_handler([st](caf::down_msg& dm) { st->on_down(dm); });
  st->connect();
  return {
      [st](peer_atom, std::string& bytes) { st->send(bytes); },
      [st](hello_atom, const caf::actor& remote) { st->on_hello(remote); },
      [st](heard_atom) { st->backoff_ms = 0; },
      [st](stop_atom) { st->stopping = true; },
      [st](reconnect_atom) { st->connect(); },
  };
}

}  // namespace conclave::raft
