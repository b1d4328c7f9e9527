#include "roles/raft_client.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <functional>
#include <optional>
#include <thread>

#include "actors/atoms.hpp"
#include "actors/connector.hpp"
#include "actors/stage_trace.hpp"
#include "roles/relay.hpp"
#include "schema/client_codec.hpp"

namespace conclave {

struct raft_client::impl {
  caf::actor_system& sys;
  std::optional<caf::scoped_actor> actor;  // the caller's side of each request
  std::size_t requests = 0;                 // made by this client (a fresh `actor` every 32)
  caf::scoped_actor& self() { return *actor; }
  std::map<std::string, caf::actor> connections;  // endpoint -> its relay
  std::shared_ptr<std::function<void()>> on_lost = std::make_shared<std::function<void()>>();
  auth::keys keys;
  std::string cluster_id;
  local_master local;
  std::string connect_error;  // why the last connection attempt failed, as CAF says
  explicit impl(caf::actor_system& s) : sys(s) { actor.emplace(s); }
  ~impl() {
    for (auto& [key, r] : connections) self()->send_exit(r, caf::exit_reason::user_shutdown);
  }

  // Each blocking request leaves a timeout message behind once its reply
  // came (CAF 0.17 neither cancels nor drops it: every later receive walks
  // past it, and the mailbox grows by one per request). A fresh actor every
  // 32 requests takes them away; nothing else is ever sent to it.
  void renew_if_due() {
    if (++requests % 32 != 0) return;
    actor.reset();
    actor.emplace(sys);
  }

  void forget(const std::string& key) {
    auto it = connections.find(key);
    if (it == connections.end()) return;
    self()->send_exit(it->second, caf::exit_reason::user_shutdown);
    connections.erase(it);
  }

  // Whether a local actor still runs: monitoring one that has ended
  // delivers its down message at once.
  bool alive(const caf::actor& a) {
    bool down = false;
    self()->monitor(a);
    self()->receive([&](const caf::down_msg& dm) { down = dm.source == a.address(); },
                  caf::after(std::chrono::seconds(0)) >> [] {});
    self()->demonitor(a);
    return !down;
  }

  caf::actor connect(const raft::endpoint& to, std::chrono::milliseconds timeout) {
    renew_if_due();
    auto key = to.text();
    if (auto it = connections.find(key); it != connections.end()) return it->second;
    caf::actor result;
    if (local.peer && key == local.at.text()) {
      // A local master that stopped is no connection, as a closed port is not.
      if (!alive(local.peer)) return result;
      result = local.peer;
    } else {
      self()->request(connector(sys), timeout, caf::connect_atom::value, to.host, to.port)
          .receive(
              [&](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
                result = caf::actor_cast<caf::actor>(ptr);
              },
              [&](caf::error& e) { connect_error = sys.render(e); });
    }
    if (!result) return result;
    auto lost = on_lost;
    auto r = spawn_relay(sys, result, [lost] {
      if (*lost) (*lost)();
    }, keys, cluster_id, timeout);
    connections[key] = r;
    return r;
  }
};

raft_client::raft_client(caf::actor_system& sys, std::string cluster_id, std::vector<raft::endpoint> endpoints)
    : impl_(std::make_unique<impl>(sys)), cluster_id_(std::move(cluster_id)), endpoints_(std::move(endpoints)) {
  impl_->cluster_id = cluster_id_;
}

raft_client::~raft_client() = default;

void raft_client::on_connection_lost(std::function<void()> f) { *impl_->on_lost = std::move(f); }

void raft_client::set_keys(const auth::keys& keys) { impl_->keys = keys; }

std::size_t raft_client::queued_messages() const { return impl_->self()->mailbox().size(); }

void raft_client::set_local(local_master local) {
  // Requests start there: it answers, or passes them on to the leader, in-process.
  for (std::size_t i = 0; local.peer && i < endpoints_.size(); ++i) {
    if (endpoints_[i].text() == local.at.text()) preferred_ = i;
  }
  impl_->local = std::move(local);
}

expected<client::response> raft_client::call(const raft::endpoint& to, const client::request& r,
                                             std::chrono::milliseconds timeout) {
  auto handle = impl_->connect(to, timeout);
  if (!handle) return make_error(errc::unavailable, "cannot connect to " + to.text() + ": " + impl_->connect_error);
  expected<client::response> result = make_error(errc::unavailable, "no answer from " + to.text());
  // The relay times the request out itself (a late reply then goes to the
  // relay, not to this caller's mailbox); our own timeout is only a backstop.
  auto backstop = timeout + std::chrono::milliseconds(500);
  auto sent_ns = stage_trace::enabled() ? stage_trace::now_ns() : 0;
  impl_->self()
      ->request(handle, backstop, client_atom::value, wire::encode_request(r, cluster_id_),
                static_cast<std::uint64_t>(timeout.count()))
      .receive(
          [&](const std::string& bytes) {
            last_answer_ = std::chrono::steady_clock::now();
            auto decoded = wire::decode_response(bytes);
            result = decoded ? expected<client::response>(*decoded) : expected<client::response>(decoded.error());
            auto* c = decoded ? std::get_if<client::committed>(&*decoded) : nullptr;
            if (sent_ns && c) {
              stage_trace::mark(stage_trace::stage::client_sent, c->index, c->index, sent_ns);
              stage_trace::mark(stage_trace::stage::client_received, c->index);
            }
          },
          [&](caf::error& e) {
            // A slow reply is no lost connection: the relay stays (the leader
            // ties sessions to it). Otherwise the connection is gone: forget
            // it (and its relay) so that the next call reconnects.
            if (e != caf::sec::request_timeout) impl_->forget(to.text());
            // A receiver known to be down never got the request; otherwise it
            // was sent (or on its way) and whether it took effect is unknown.
            auto code = e == caf::sec::request_receiver_down ? errc::unavailable : errc::outcome_unknown;
            result = make_error(code, to.text() + ": " + impl_->sys.render(e));
          });
  return result;
}

// The server's message already starts with the code's description.
error error_of(const client::failure& f) {
  auto code = client::code_from_name(f.code);
  std::string prefix(to_string(code));
  prefix += ": ";
  auto detail = f.message.rfind(prefix, 0) == 0 ? f.message.substr(prefix.size()) : f.code + ": " + f.message;
  return make_error(code, detail);
}

std::chrono::milliseconds attempt_timeout(const client::request& r, std::chrono::milliseconds deadline) {
  if (std::holds_alternative<client::keepalive>(r)) return std::chrono::milliseconds(300);
  if (std::holds_alternative<client::change_membership>(r)) return deadline;
  return std::chrono::milliseconds(1000);
}

bool retryable(const client::failure& f) {
  return f.code == "not_leader" || f.code == "transferring" || f.code == "busy" || f.code == "unavailable" ||
         f.code == "disk_full" || f.code == "map_full";
}

expected<client::response> raft_client::to_leader(const client::request& request, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  error last = make_error(errc::unavailable, "no server answered");
  std::size_t next = preferred_;
  const auto& eps = endpoints_;
  auto attempt = attempt_timeout(request, deadline);
  while (std::chrono::steady_clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    auto r = call(eps[next % eps.size()], request, std::min(left + std::chrono::milliseconds(1), attempt));
    if (r) {
      auto* f = std::get_if<client::failure>(&*r);
      if (!f || !retryable(*f)) {
        preferred_ = next % eps.size();
        return r;
      }
      // When every master refuses for want of disk, say so, not "unavailable".
      auto code = client::code_from_name(f->code);
      bool full = code == errc::disk_full || code == errc::map_full;
      last = full ? error_of(*f) : make_error(errc::unavailable, f->code + ": " + f->message);
      bool hinted = false;
      for (std::size_t i = 0; f->leader_id != 0 && i < eps.size(); ++i) {
        if (eps[i].text() == f->leader_address) {
          next = i;  // follow the hint to the leader
          hinted = true;
          break;
        }
      }
      // A leader this client was not told of (it was given some masters,
      // not all) is added: asking the same follower again would only get the
      // same hint, as fast as the loop runs.
      if (!hinted && f->leader_id != 0 && !f->leader_address.empty()) {
        if (auto ep = raft::parse_endpoint(f->leader_address, "leader")) {
          endpoints_.push_back(*ep);
          next = endpoints_.size() - 1;
          hinted = true;
        }
      }
      if (hinted) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        continue;
      }
    } else {
      last = r.error();
      // A server that did not answer is not asked first next time: it may
      // be frozen while another leads.
      preferred_ = (next + 1) % eps.size();
      // Sending it again could apply it twice: its caller must decide.
      if (r.error().code == errc::outcome_unknown && !client::traits_of(request).idempotent) return last;
    }
    ++next;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return last;
}

expected<client::committed> raft_client::propose(const std::string& command, std::chrono::milliseconds deadline) {
  return reply_as<client::committed>(to_leader(client::propose{command}, deadline));
}

expected<client::read_result> raft_client::read(const std::string& query, std::chrono::milliseconds deadline) {
  return reply_as<client::read_result>(to_leader(client::read{query}, deadline));
}

expected<client::status> raft_client::status(const raft::endpoint& of) {
  auto r = call(of, client::status_request{}, std::chrono::milliseconds(1000));
  if (!r) return r.error();
  if (auto* s = std::get_if<client::status>(&*r)) return *s;
  return make_error(errc::malformed, "unexpected reply to status");
}

}  // namespace conclave
