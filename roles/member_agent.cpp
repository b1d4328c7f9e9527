#include "roles/member_agent.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "actors/log.hpp"
#include "actors/registry/registry_service.hpp"
#include "roles/raft_client.hpp"
#include "roles/resource_sampler.hpp"
#include "schema/registry_codec.hpp"

namespace conclave {

namespace {

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

}  // namespace

void run_member_agent(caf::actor_system& sys, const agent_options& o, std::atomic<bool>& stop,
                      std::atomic<int>& exit_code) {
  using namespace std::chrono;
  // Woken early when a connection to a master breaks: the next heartbeat
  // then goes out at once and finds the new leader as soon as there is one,
  // instead of up to a heartbeat interval later.
  struct wakeup {
    std::mutex m;
    std::condition_variable cv;
    bool lost = false;
  };
  auto wake = std::make_shared<wakeup>();
  raft_client client(sys, o.cluster_id, o.masters);
  client.set_keys(o.keys);
  client.set_local(o.local);
  client.on_connection_lost([wake] {
    std::lock_guard<std::mutex> guard(wake->m);
    wake->lost = true;
    wake->cv.notify_all();
  });
  resource_sampler sampler(o.disk_path, o.usage_window_ms);
  auto me = o.me;
  me.start_time_ms = wall_ms();
  // One incarnation per run: a registration repeated because its outcome was
  // unknown gets the session it may already have, instead of ending it (#12).
  std::random_device entropy;
  me.incarnation = (static_cast<std::uint64_t>(entropy()) << 32 | entropy()) | 1;
  registry::session_id session = 0;
  auto last_contact = now_ms();
  auto last_leader = now_ms();
  bool fenced = false;
  while (!stop) {
    auto started = now_ms();
    auto usage = sampler.sample(started);
    if (session == 0) {
      me.usage = usage;
      auto r = client.propose(wire::encode_command(registry::register_member{me, o.session_ttl_ms}), milliseconds(500));
      if (!r && r.error().code == errc::unauthenticated) {
        log_error("member {}: the cluster refused our credentials ({}); exiting (code {})", me.id, r.error().message(),
                   exit_bad_config);
        exit_code = exit_bad_config;
        return;
      }
      if (r) {
        auto res = wire::decode_result(r->result);
        if (res && res->outcome.code == registry::code::ok) {
          session = res->outcome.value;
          if (o.on_session) o.on_session(session);
          last_contact = now_ms();
          log_line("member {}: registered as {} (session {})", me.id, registry::to_string(me.role), session);
          // The first heartbeat goes out at once: it tells the leader which
          // connection the session lives on, so that a crash right after
          // registering is detected by the broken connection, not the TTL.
          continue;
        }
      }
    } else {
      auto r = client.to_leader(client::keepalive{session, registry::registry_service::encode_usage(me.id, usage)},
                                milliseconds(o.heartbeat_ms * 3));
      if (r && std::holds_alternative<client::ok>(*r)) {
        last_contact = now_ms();
        if (o.contact_out) o.contact_out->store(last_contact);
      } else if (r && std::holds_alternative<client::failure>(*r) && std::get<client::failure>(*r).code == "not_found") {
        log_line("member {}: session {} expired; registering again", me.id, session);
        session = 0;
        if (o.on_session) o.on_session(0);
        last_contact = now_ms();
      }
    }
    // Masters are gone when none answers at all; one that answers but cannot
    // lead (no quorum, a full disk) is still there. A member that is also a
    // master fences or exits on quorum loss (below); a pure worker keeps
    // running, and its engine sees heartbeats fail (contact_out).
    auto answered = static_cast<std::uint64_t>(
        duration_cast<milliseconds>(client.last_answer().time_since_epoch()).count());
    auto heard = std::max(last_contact, answered);
    if (o.no_master_timeout_ms > 0 && now_ms() - heard > static_cast<std::uint64_t>(o.no_master_timeout_ms)) {
      log_error("member {}: no master answered for {} ms; exiting (code {})", me.id, now_ms() - heard,
                 exit_no_master);
      exit_code = exit_no_master;
      return;
    }
    if (o.quorum_loss_timeout_ms > 0 && o.known_leader) {
      if (o.known_leader() != 0) {
        last_leader = now_ms();
        if (fenced) log_line("member {}: a leader is back; no longer fenced", me.id);
        fenced = false;
      } else if (now_ms() - last_leader > static_cast<std::uint64_t>(o.quorum_loss_timeout_ms)) {
        if (o.exit_on_quorum_loss) {
          log_error("member {}: no quorum for {} ms; exiting (code {}, on_quorum_loss = exit)", me.id,
                     now_ms() - last_leader, exit_quorum_lost);
          exit_code = exit_quorum_lost;
          return;
        }
        if (!fenced) log_warning("member {}: no quorum; fenced until a leader is back (on_quorum_loss = fence)", me.id);
        fenced = true;
      }
    }
    auto spent = now_ms() - started;
    if (spent < static_cast<std::uint64_t>(o.heartbeat_ms)) {
      std::unique_lock<std::mutex> lock(wake->m);
      wake->cv.wait_for(lock, milliseconds(o.heartbeat_ms - spent), [&] { return wake->lost || stop.load(); });
      wake->lost = false;
    }
  }
  if (session != 0) {
    // A graceful leave: the member shows as left at once instead of dying later.
    (void)client.propose(wire::encode_command(registry::close_session{session, false}), milliseconds(500));
  }
}

}  // namespace conclave
