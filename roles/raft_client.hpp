// A blocking client for Raft servers (tests, benchmarks, tools): sends
// client-protocol requests over CAF's middleman, finds the leader among the
// given endpoints and follows not_leader hints.
#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/auth.hpp"
#include "actors/raft/node_options.hpp"
#include "schema/client_protocol.hpp"
#include "schema/error.hpp"

namespace conclave {

// The master of this process (an embedding node's own): requests to `at`
// go to the actor `peer` directly, with no network connection.
struct local_master {
  raft::endpoint at;
  caf::actor peer;
};

// A server's refusal (client::failure) as an error value.
error error_of(const client::failure& f);

// Whether a refusal means "ask again, maybe elsewhere" (a master whose disk
// is full refuses writes that another master may take).
bool retryable(const client::failure& f);

// How long one attempt of `r` may wait for a server's answer: a frozen
// server (SIGSTOP, a dead link) keeps its connection open, so only a timeout
// ends the wait, and another master may lead meanwhile. A keepalive waits at
// most 300 ms (a new leader gives each session failover_grace_ms = 1 s to
// find it, and followers point at the frozen leader until they elect a new
// one); other requests 1 s, but a membership change, which the leader may
// hold while a learner catches up, the whole deadline. A state-changing
// request that times out is not resent (outcome unknown), so it gets one
// attempt.
std::chrono::milliseconds attempt_timeout(const client::request& r, std::chrono::milliseconds deadline);

// The answer of the kind a request asks for (client::committed to a
// propose, ...); a refusal is its error, another kind `malformed`.
template <class Reply>
expected<Reply> reply_as(expected<client::response> r) {
  if (!r) return r.error();
  if (auto* ok = std::get_if<Reply>(&*r)) return std::move(*ok);
  if (auto* f = std::get_if<client::failure>(&*r)) return error_of(*f);
  return make_error(errc::malformed, "unexpected reply");
}

class raft_client {
 public:
  raft_client(caf::actor_system& sys, std::string cluster_id, std::vector<raft::endpoint> endpoints);
  ~raft_client();

  // One request to one endpoint. Errors: unavailable (cannot connect),
  // outcome_unknown (sent, but no answer within `timeout` or the connection
  // broke), malformed (a reply that does not decode). Only a broken
  // connection ends the connection: a leader ties sessions to it. Nothing is
  // sent on a new connection before its server answered on it; if it does
  // not within `timeout`, the answer is the refusal `unavailable`.
  expected<client::response> call(const raft::endpoint& to, const client::request& r,
                                   std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

  // Proposes through the leader until committed or `deadline` passes,
  // following hints and retrying refusals that say to try again.
  expected<client::committed> propose(const std::string& command,
                                      std::chrono::milliseconds deadline = std::chrono::milliseconds(10000));
  expected<client::read_result> read(const std::string& query,
                                     std::chrono::milliseconds deadline = std::chrono::milliseconds(10000));
  expected<client::status> status(const raft::endpoint& of);
  // Sends `r` to the leader, following hints and retrying refusals that say
  // to try again (not_leader, transferring, busy, unavailable) until
  // `deadline`; returns the first other answer, whatever it is. A hinted
  // leader missing from endpoints() is added to them.
  expected<client::response> to_leader(const client::request& r,
                                       std::chrono::milliseconds deadline = std::chrono::milliseconds(10000));

  const std::vector<raft::endpoint>& endpoints() const { return endpoints_; }

  // Called (on a CAF thread) when a connection to a server breaks, e.g.
  // because the server died; requests on it fail at once. Set it before use.
  void on_connection_lost(std::function<void()> f);

  // When a server last answered anything, a refusal included (steady
  // clock; the epoch if none has): some master is alive, even if none can
  // lead (no quorum, a full disk).
  std::chrono::steady_clock::time_point last_answer() const { return last_answer_; }

  // Credentials for clusters that require them (actors/auth.hpp): each
  // connection proves them once. Set them before use.
  void set_keys(const auth::keys& keys);

  // Messages waiting in this client's mailbox (diagnostics: a few dozen at
  // most, however many calls were made).
  std::size_t queued_messages() const;

  // This process's own master: requests to its endpoint reach it in-process
  // (through a relay like any other connection, so sessions tie to that
  // relay as to a remote one), and the first request goes there. Set it
  // before use.
  void set_local(local_master local);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string cluster_id_;
  std::vector<raft::endpoint> endpoints_;
  // Where the next request starts: the endpoint that led last time, or the
  // one after an endpoint that did not answer.
  std::size_t preferred_ = 0;
  std::chrono::steady_clock::time_point last_answer_{};
};

}  // namespace conclave
