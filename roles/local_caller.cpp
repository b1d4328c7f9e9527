#include "roles/local_caller.hpp"

#include <caf/all.hpp>

#include <mutex>

#include "actors/atoms.hpp"
#include "roles/relay.hpp"
#include "schema/client_codec.hpp"

namespace conclave {

using steady = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

struct local_caller::state {
  caf::actor_system& sys;
  std::string cluster_id;
  local_master local;
  auth::keys keys;
  std::mutex m;
  caf::actor relay;     // null until the first call, and after it ended
  bool closed = false;  // the local_caller is gone: no relay is started again

  state(caf::actor_system& s, std::string id, local_master l, auth::keys k)
      : sys(s), cluster_id(std::move(id)), local(std::move(l)), keys(std::move(k)) {}

  // The relay, started again after it ended (a lost handshake ends it); null
  // once closed. Its handshake gets less time than any attempt waits (the
  // shortest, a keepalive's, 300 ms): a request held back by a slow one is
  // answered "not sent" (retried), never timed out as unknown.
  caf::actor current(const std::shared_ptr<state>& self) {
    std::lock_guard<std::mutex> guard(m);
    if (!relay && !closed) {
      std::weak_ptr<state> weak = self;
      auto started = std::make_shared<caf::actor_addr>();
      relay = spawn_relay(sys, local.peer, [weak, started] {
        if (auto st = weak.lock()) st->forget(*started);
      }, keys, cluster_id, ms(250));
      *started = relay.address();
    }
    return relay;
  }
  // `r` ended or lost its connection: the next call starts another.
  void forget(const caf::actor_addr& r) {
    std::lock_guard<std::mutex> guard(m);
    if (relay && relay.address() == r) relay = nullptr;
  }
};

namespace {

struct call_spec {
  std::string bytes;
  bool retry = false;       // to the leader: refusals that say to try again are retried
  bool idempotent = false;  // asking again cannot apply it twice
  steady::time_point until;
  local_caller::done_fn done;
  ms attempt;  // the longest wait for one answer (attempt_timeout)
  int attempts = 0;
};

// One call: attempts until an answer that ends it, or the deadline, each
// waiting at most attempt_timeout (as raft_client's).
caf::behavior caller(caf::event_based_actor* self, std::shared_ptr<local_caller::state> st, call_spec spec) {
  auto s = std::make_shared<call_spec>(std::move(spec));
  auto last = std::make_shared<error>(make_error(errc::unavailable, "no answer from this master"));
  auto finish = [self, s](expected<client::response> r) {
    s->done(std::move(r));
    self->quit();
  };
  // Asks again after 2, 4, 8 ... up to 50 ms (no leader yet, or this master
  // not yet connected to it), while the deadline allows.
  auto again = [self, s, finish, last] {
    auto pause = std::min(ms(50), ms(2) * (1 << std::min(s->attempts++, 5)));
    if (!s->retry || steady::now() + pause >= s->until) return finish(*last);
    self->delayed_send(self, pause, caf::ok_atom::value);
  };
  self->send(self, caf::ok_atom::value);
  return {[=](caf::ok_atom) {
    auto left = std::chrono::duration_cast<ms>(s->until - steady::now());
    if (left <= ms(0)) return finish(*last);
    auto attempt = s->retry ? std::min(left + ms(1), s->attempt) : left;
    auto relay = st->current(st);
    if (!relay) return finish(make_error(errc::unavailable, "this master's etcd API is stopping"));
    // The relay times the request out itself; this one is a backstop.
    self->request(relay, attempt + ms(500), client_atom::value, s->bytes, static_cast<std::uint64_t>(attempt.count()))
        .then(
            [=](const std::string& reply) {
              auto decoded = wire::decode_response(reply);
              if (!decoded) return finish(decoded.error());
              auto* f = std::get_if<client::failure>(&*decoded);
              if (!s->retry || !f || !retryable(*f)) return finish(std::move(*decoded));
              // When every attempt is refused for want of disk, say so, not "unavailable".
              auto code = client::code_from_name(f->code);
              bool full = code == errc::disk_full || code == errc::map_full;
              *last = full ? error_of(*f) : make_error(errc::unavailable, f->code + ": " + f->message);
              again();
            },
            [=](caf::error& e) {
              auto why = "this master (" + st->local.at.text() + "): " + self->system().render(e);
              if (e == caf::sec::request_receiver_down) {
                // Never sent: the relay had ended.
                st->forget(relay.address());
                *last = make_error(errc::unavailable, why);
                return again();
              }
              if (e != caf::sec::request_timeout) st->forget(relay.address());
              *last = make_error(errc::outcome_unknown, why);
              // Sending it again could apply it twice: its caller must decide.
              if (!s->idempotent) return finish(*last);
              again();
            });
  }};
}

void start(const std::shared_ptr<local_caller::state>& st, call_spec spec) {
  if (!st->local.peer) {
    spec.done(make_error(errc::unavailable, "this process runs no master"));
    return;
  }
  st->sys.spawn(caller, st, std::move(spec));
}

}  // namespace

local_caller::local_caller(caf::actor_system& sys, std::string cluster_id, local_master local, auth::keys keys)
    : state_(std::make_shared<state>(sys, std::move(cluster_id), std::move(local), std::move(keys))) {}

local_caller::~local_caller() {
  std::lock_guard<std::mutex> guard(state_->m);
  state_->closed = true;
  if (state_->relay) caf::anon_send_exit(state_->relay, caf::exit_reason::user_shutdown);
  state_->relay = nullptr;
}

void local_caller::to_leader(const client::request& r, std::chrono::milliseconds deadline, done_fn done) {
  start(state_, call_spec{wire::encode_request(r, state_->cluster_id), true, client::traits_of(r).idempotent,
                          steady::now() + deadline, std::move(done), attempt_timeout(r, deadline)});
}

void local_caller::call(const client::request& r, std::chrono::milliseconds timeout, done_fn done) {
  start(state_, call_spec{wire::encode_request(r, state_->cluster_id), false, client::traits_of(r).idempotent,
                          steady::now() + timeout, std::move(done), timeout});
}

}  // namespace conclave
