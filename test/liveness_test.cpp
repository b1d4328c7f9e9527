// Failure detection on the leader, with time as an argument: suspect and
// dead transitions, crash detection by a broken connection, the bounds on
// session expiry across a leader change, and overload.
#include <doctest/doctest.h>

#include "actors/registry/liveness.hpp"

using namespace conclave::registry;

namespace {

// A leader: the monitor proposes, the registry applies at once (commit).
struct leader {
  registry reg;
  liveness_monitor mon;
  std::uint64_t index = 0;
  std::vector<command> proposed;
  explicit leader(liveness_config c = {}) : mon(c) {}

  outcome apply(const command& c, std::uint64_t now) {
    auto o = reg.apply(c, ++index);
    mon.sync(reg.state(), now);
    return o;
  }
  void tick(std::uint64_t now) {
    for (auto& c : mon.tick(now)) {
      proposed.push_back(c);
      apply(c, now);
    }
  }
  // Ticks every 10 ms from `from` to `to`, with heartbeats for `alive` every `period` ms.
  void run(std::uint64_t from, std::uint64_t to, const std::vector<session_id>& alive = {}, std::uint64_t period = 100) {
    for (auto t = from; t <= to; t += 10) {
      if (period && t % period == 0) {
        for (auto s : alive) mon.keepalive(s, t);
      }
      tick(t);
    }
  }
  int count_expired() const {
    int n = 0;
    for (const auto& c : proposed) n += std::holds_alternative<close_session>(c);
    return n;
  }
};

member worker(const std::string& id) {
  member m;
  m.id = id;
  return m;
}

}  // namespace

TEST_CASE("a member that keeps heartbeating stays alive; silence makes it suspect, then dead at its TTL") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 1000}, 0).value;
  l.run(0, 3000, {s});
  CHECK(l.reg.find_member("w1")->status == member_status::alive);
  CHECK(l.count_expired() == 0);
  // Silent from 3000 on: suspect after 300 ms, dead at 3000 + TTL.
  l.run(3010, 3300);
  CHECK(l.reg.find_member("w1")->status == member_status::suspect);
  l.run(3310, 3990);
  CHECK(l.reg.find_member("w1")->status == member_status::suspect);
  l.run(4000, 4010);
  CHECK(l.reg.find_member("w1")->status == member_status::dead);
  CHECK(l.reg.find_session(s) == nullptr);
}

TEST_CASE("a suspect member that heartbeats again is alive again") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 2000}, 0).value;
  l.run(0, 500);
  REQUIRE(l.reg.find_member("w1")->status == member_status::suspect);
  l.mon.keepalive(s, 510);
  l.tick(520);
  CHECK(l.reg.find_member("w1")->status == member_status::alive);
}

TEST_CASE("a broken connection expires the session after the crash grace, not the TTL") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 10000}, 0).value;
  l.run(0, 1000, {s});
  l.mon.connection_lost(s, 1000);
  l.run(1010, 1090);
  CHECK(l.reg.find_member("w1")->status != member_status::dead);
  l.run(1100, 1110);
  CHECK(l.reg.find_member("w1")->status == member_status::dead);
}

TEST_CASE("no expiry storm: after a leader change every live session survives") {
  liveness_config cfg;
  cfg.failover_grace_ms = 1500;
  leader old_leader(cfg);
  old_leader.mon.become_leader(old_leader.reg.state(), 0);
  std::vector<session_id> sessions;
  for (int i = 0; i < 200; ++i) sessions.push_back(old_leader.apply(open_session{"c", 1000}, 0).value);
  old_leader.run(0, 5000, sessions);
  // The new leader starts from the replicated state (with checkpoints) after
  // a 400 ms failover; clients reach it 1200 ms later, beyond their TTL of
  // 1000 ms but within the grace, and heartbeat again.
  leader next(cfg);
  next.reg = registry(old_leader.reg.state());
  next.index = old_leader.index;
  next.mon.become_leader(next.reg.state(), 5400);
  next.run(5400, 6590);
  next.run(6600, 9000, sessions);
  CHECK(next.count_expired() == 0);
  CHECK(next.reg.state().sessions.size() == 200);
}

TEST_CASE("a dead session is still expired within TTL + checkpoint staleness + failover after a leader change") {
  liveness_config cfg;
  cfg.failover_grace_ms = 200;
  leader old_leader(cfg);
  old_leader.mon.become_leader(old_leader.reg.state(), 0);
  auto s = old_leader.apply(open_session{"c", 3000}, 0).value;
  old_leader.run(0, 2000, {s});  // last heartbeat at 2000
  // Its owner dies at 2000; the old leader checkpoints at 3000 and dies at 3500.
  old_leader.run(2010, 3500);
  auto remaining = old_leader.reg.find_session(s)->remaining_ms;
  CHECK(remaining <= 3000 - 1000);  // the checkpoint did count the silence
  leader next(cfg);
  next.reg = registry(old_leader.reg.state());
  next.index = old_leader.index;
  auto start = 3800;  // failover took 300 ms
  next.mon.become_leader(next.reg.state(), start);
  std::uint64_t expired_at = 0;
  for (std::uint64_t t = start; t <= 10000 && !expired_at; t += 10) {
    next.tick(t);
    if (!next.reg.find_session(s)) expired_at = t;
  }
  REQUIRE(expired_at > 0);
  // Not restarted from a full TTL (which would be 3800 + 3000 = 6800) ...
  CHECK(expired_at < start + 3000);
  // ... and within death + TTL + checkpoint interval + failover time.
  CHECK(expired_at <= 2000 + 3000 + cfg.checkpoint_interval_ms + 300 + 10);
}

TEST_CASE("an overloaded leader expires nothing while it lags and pushes deadlines back") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(open_session{"c", 1000}, 0).value;
  l.run(0, 500, {s});
  auto before = *l.mon.deadline(s);
  // The leader's loop stalls for 2 s: the next tick comes late.
  l.tick(2600);
  CHECK(l.reg.find_session(s) != nullptr);
  CHECK(*l.mon.deadline(s) > before + 2000);
  // The client's heartbeats, queued during the stall, are read now.
  l.mon.keepalive(s, 2610);
  l.run(2620, 3000, {s});
  CHECK(l.count_expired() == 0);
}

TEST_CASE("resource usage is replicated in batches, at most usage_interval stale") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 5000}, 0).value;
  resources u;
  u.cpu_percent = 10;
  l.mon.keepalive(s, 100, std::make_pair(std::string("w1"), u));
  l.run(110, 990);
  CHECK(l.reg.find_member("w1")->usage.cpu_percent == 0);  // not yet
  l.run(1000, 1010);
  CHECK(l.reg.find_member("w1")->usage.cpu_percent == 10);
  int usage_commands = 0;
  for (const auto& c : l.proposed) usage_commands += std::holds_alternative<report_usage>(c);
  CHECK(usage_commands == 1);
}

TEST_CASE("a follower proposes nothing") {
  liveness_monitor mon;
  registry reg;
  reg.apply(open_session{"c", 100}, 1);
  mon.sync(reg.state(), 0);
  CHECK(mon.tick(100000).empty());
  mon.become_leader(reg.state(), 0);
  mon.step_down();
  CHECK(mon.tick(200000).empty());
}
