#include "roles/relay.hpp"

#include <caf/all.hpp>

#include <map>
#include <memory>

#include "actors/atoms.hpp"
#include "schema/client_codec.hpp"
#include "schema/error.hpp"

namespace conclave {

namespace {

// Relays requests to one server and answers each: the server's reply, a
// timeout, or a failure as soon as the connection to that server breaks.
// CAF 0.17 does not answer a request that was on the wire when its
// connection broke, so without this a request lost with a crashed server
// would wait for its whole timeout.
//
// The relay is the connection servers see: a leader ties the sessions it
// receives keepalives for to it and expires them soon after it goes. So it
// lives as long as its connection (or its raft_client), whatever the
// timeouts of single requests.
//
// The relay sends nothing until the server has answered it once on this
// connection (the challenge of actors/auth.hpp, and with credentials the
// proof): CAF 0.17 can leave a new connection deaf, its requests arriving
// but every answer lost (a server that accepts it on the descriptor of a
// connection it just closed routes the answers elsewhere, for the
// connection's whole life). A write sent there takes effect unanswered; one
// never sent is only unavailable, and the client asks another master. If the
// server refuses the credentials, every request gets that refusal.
caf::behavior relay(caf::event_based_actor* self, caf::actor server, std::function<void()> on_lost, auth::keys keys,
                    std::string cluster_id, std::chrono::milliseconds first_answer) {
  auto pending = std::make_shared<std::map<std::uint64_t, caf::response_promise>>();
  auto next_id = std::make_shared<std::uint64_t>(0);
  self->monitor(server);
  self->set_down_handler([=](caf::down_msg&) {
    // Sent, but the answer can no longer come: the outcome is unknown.
    for (auto& [id, promise] : *pending) promise.deliver(caf::make_error(caf::sec::socket_disconnected));
    pending->clear();
    if (on_lost) on_lost();
    self->quit();
  });
  caf::behavior relaying{[=](client_atom, const std::string& bytes, std::uint64_t timeout_ms) -> caf::result<std::string> {
    auto id = (*next_id)++;
    (*pending)[id] = self->make_response_promise();
    self->request(server, std::chrono::milliseconds(timeout_ms), client_atom::value, bytes)
        .then(
            [=](const std::string& reply) {
              if (auto it = pending->find(id); it != pending->end()) {
                it->second.deliver(reply);
                pending->erase(it);
              }
            },
            [=](caf::error& e) {
              if (auto it = pending->find(id); it != pending->end()) {
                it->second.deliver(e);
                pending->erase(it);
              }
            });
    return caf::delegated<std::string>{};
  }};
  auto refuse = [=](const std::string& why) {
    self->become([=](client_atom, const std::string&, std::uint64_t) {
      return wire::encode_response(
          client::failure{client::code_name(errc::unauthenticated), make_error(errc::unauthenticated, why).message(), 0, {}});
    });
  };
  // No answer to the handshake (a deaf connection, a server frozen or slow on
  // a loaded machine) is no refusal: what waits was not sent and gets a
  // retryable `unavailable`, and the relay ends; the next call to that server
  // starts a new one.
  auto give_up = [=] {
    self->set_default_handler(caf::print_and_drop);
    self->become(
        [=](client_atom, const std::string&, std::uint64_t) {
          return wire::encode_response(client::failure{
              client::code_name(errc::unavailable),
              make_error(errc::unavailable, "no answer on a new connection; the request was not sent").message(), 0,
              {}});
        },
        [=](caf::ok_atom) { self->quit(); });
    self->send(self, caf::ok_atom::value);
  };
  self->set_default_handler(caf::skip);  // requests wait for the handshake
  self->request(server, first_answer, auth_atom::value)
      .then(
          [=](const std::string& nonce) {
            if (!keys.enabled()) {
              self->set_default_handler(caf::print_and_drop);
              self->become(relaying);
              return;
            }
            self->request(server, first_answer, auth_atom::value, auth::prove(keys, cluster_id, nonce))
                .then(
                    [=](const std::string& granted) {
                      self->set_default_handler(caf::print_and_drop);
                      if (granted == "none") refuse("the server refused these credentials (wrong secret or member key)");
                      else self->become(relaying);
                    },
                    [=](caf::error&) { give_up(); });
          },
          [=](caf::error&) { give_up(); });
  return {[](caf::ok_atom) {}};  // replaced once the handshake ends
}

}  // namespace

caf::actor spawn_relay(caf::actor_system& sys, caf::actor server, std::function<void()> on_lost, auth::keys keys,
                       std::string cluster_id, std::chrono::milliseconds first_answer) {
  return sys.spawn(relay, std::move(server), std::move(on_lost), std::move(keys), std::move(cluster_id), first_answer);
}

}  // namespace conclave
