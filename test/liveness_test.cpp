// Failure detection on the leader, with time as an argument: suspect and
// dead transitions, crash detection by a broken connection, the bounds on
// session expiry across a leader change, overload, and proposals that Raft
// refuses or commits late (each is proposed again until the registry holds it).
#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <functional>

#include "actors/registry/liveness.hpp"

using namespace conclave::registry;

namespace {

// A leader: the monitor proposes and the registry applies (commits) at once,
// unless `refuse` says the proposal is refused (as Raft refuses one while a
// leadership transfer is under way or too much is uncommitted) or `delay_ms`
// holds accepted proposals back that long before they commit.
struct leader {
  registry reg;
  liveness_monitor mon;
  std::uint64_t index = 0;
  std::vector<command> proposed;  // every proposal, refused or not
  std::function<bool(const command&, std::uint64_t)> refuse = [](const command&, std::uint64_t) { return false; };
  std::uint64_t delay_ms = 0;
  std::deque<std::pair<std::uint64_t, command>> in_flight;  // (commit time, command)
  explicit leader(liveness_config c = {}) : mon(c) {}

  outcome apply(const command& c, std::uint64_t now) {
    auto o = reg.apply(c, ++index);
    mon.sync(reg.state(), now);
    return o;
  }
  void tick(std::uint64_t now) {
    while (!in_flight.empty() && in_flight.front().first <= now) {
      apply(in_flight.front().second, now);
      in_flight.pop_front();
    }
    for (auto& c : mon.tick(now)) {
      proposed.push_back(c);
      if (refuse(c, now)) continue;
      if (delay_ms) {
        in_flight.emplace_back(now + delay_ms, c);
      } else {
        apply(c, now);
      }
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
  template <class C>
  int count() const {
    int n = 0;
    for (const auto& c : proposed) n += std::holds_alternative<C>(c);
    return n;
  }
  int count_expired() const { return count<close_session>(); }
};

bool is_status(const command& c, member_status s) {
  auto* m = std::get_if<set_member_status>(&c);
  return m && m->status == s;
}

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

TEST_CASE("an overloaded leader does not make its members suspect for the time it lost") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 3000}, 0).value;
  l.run(0, 500, {s});
  // The leader's loop stalls for 1 s (a SIGSTOP, a starved CPU): the
  // member's heartbeats wait unread. The next ticks must not call it late.
  l.tick(1500);
  l.tick(1510);
  l.tick(1520);
  CHECK(l.reg.find_member("w1")->status == member_status::alive);
  CHECK(std::none_of(l.proposed.begin(), l.proposed.end(), [](const command& c) { return is_status(c, member_status::suspect); }));
  // Its queued heartbeat is read, and it keeps heartbeating: never suspect.
  l.mon.keepalive(s, 1530);
  l.run(1540, 3000, {s});
  CHECK(std::none_of(l.proposed.begin(), l.proposed.end(), [](const command& c) { return is_status(c, member_status::suspect); }));
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
  CHECK(l.count<report_usage>() == 1);
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

// --- refused and delayed proposals: the monitor proposes what the registry
// lacks until it holds it, and gives up only with leadership ------------------

TEST_CASE("a refused expiry is proposed again until it commits: the session's locks and ephemeral keys go") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto dead = l.apply(open_session{"c", 1000}, 0).value;
  auto waiter = l.apply(open_session{"d", 60000}, 0).value;
  REQUIRE(l.apply(put{"/eph", "x", dead, std::nullopt}, 0).code == code::ok);
  REQUIRE(l.apply(acquire_lock{"L", dead, true}, 0).code == code::ok);
  REQUIRE(l.apply(acquire_lock{"L", waiter, true}, 0).code == code::queued);
  // The owner of `dead` is silent from 0: its deadline is 1000. Raft refuses
  // every proposal until 2500 (a leadership transfer that was abandoned, then
  // a full queue).
  l.refuse = [](const command&, std::uint64_t now) { return now < 2500; };
  l.run(0, 2490, {waiter});
  REQUIRE(l.count_expired() >= 1);
  REQUIRE(l.reg.find_session(dead) != nullptr);
  l.refuse = [](const command&, std::uint64_t) { return false; };
  l.run(2500, 4000, {waiter});
  CHECK(l.reg.find_session(dead) == nullptr);
  CHECK(l.reg.get("/eph") == nullptr);
  REQUIRE(l.reg.find_lock("L") != nullptr);
  CHECK(l.reg.find_lock("L")->holder == waiter);
  CHECK(l.reg.find_session(waiter) != nullptr);
}

TEST_CASE("a member suspect when leadership changes is made alive by the new leader once it heartbeats") {
  leader old_leader;
  old_leader.mon.become_leader(old_leader.reg.state(), 0);
  auto s = old_leader.apply(register_member{worker("w1"), 5000}, 0).value;
  old_leader.run(0, 500);  // silent: suspect at 300
  REQUIRE(old_leader.reg.find_member("w1")->status == member_status::suspect);
  // The old leader dies; the new one starts from the replicated state.
  leader next;
  next.reg = registry(old_leader.reg.state());
  next.index = old_leader.index;
  next.mon.become_leader(next.reg.state(), 700);
  next.run(700, 790);  // not heard from yet: nothing to propose
  CHECK(next.count<set_member_status>() == 0);
  // Its heartbeats reach the new leader from 800 on.
  next.run(800, 2000, {s});
  CHECK(next.reg.find_member("w1")->status == member_status::alive);
}

TEST_CASE("a member made suspect by the old leader is not made alive by the new one before it is heard from") {
  leader old_leader;
  old_leader.mon.become_leader(old_leader.reg.state(), 0);
  auto s = old_leader.apply(register_member{worker("w1"), 5000}, 0).value;
  // The new leader starts before the old leader's suspect transition is
  // applied on it; it applies it right after.
  leader next;
  next.reg = registry(old_leader.reg.state());
  next.index = old_leader.index;
  next.mon.become_leader(next.reg.state(), 300);
  next.apply(set_member_status{"w1", member_status::suspect}, 310);
  next.run(310, 1000);
  CHECK(next.reg.find_member("w1")->status == member_status::suspect);
  CHECK(next.count<set_member_status>() == 0);
  next.run(1010, 1500, {s});
  CHECK(next.reg.find_member("w1")->status == member_status::alive);
}

TEST_CASE("a refused suspect or alive transition is proposed again until the registry holds it") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 10000}, 0).value;
  // Silent from 0: suspect is due at 300, refused until 400.
  l.refuse = [](const command& c, std::uint64_t now) { return is_status(c, member_status::suspect) && now < 400; };
  l.run(0, 1500);
  CHECK(l.reg.find_member("w1")->status == member_status::suspect);
  // Back at 1510: alive is due at once, refused until 1600.
  l.refuse = [](const command& c, std::uint64_t now) { return is_status(c, member_status::alive) && now < 1600; };
  l.run(1510, 3000, {s}, 10);
  CHECK(l.reg.find_member("w1")->status == member_status::alive);
}

TEST_CASE("a refused checkpoint is proposed again after the retry interval, not a checkpoint interval later") {
  liveness_config cfg;  // checkpoints every 1000 ms, retries after 500 ms
  leader l(cfg);
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(open_session{"c", 5000}, 0).value;
  l.refuse = [](const command& c, std::uint64_t now) {
    return std::holds_alternative<checkpoint_sessions>(c) && now < 1100;
  };
  l.run(0, 1600);  // silent since 0
  // A checkpoint from 1500 (retrying the one refused at 1000) holds its
  // remaining TTL, so a new leader would not restart it from a stale value.
  REQUIRE(l.reg.find_session(s) != nullptr);
  CHECK(l.reg.find_session(s)->remaining_ms <= 5000 - 1500);
}

TEST_CASE("a refused usage report is proposed again at the next usage interval") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 60000}, 0).value;
  resources u;
  u.cpu_percent = 10;
  l.mon.keepalive(s, 100, std::make_pair(std::string("w1"), u));  // reported once
  l.refuse = [](const command& c, std::uint64_t now) { return std::holds_alternative<report_usage>(c) && now < 1500; };
  l.run(110, 2010);
  CHECK(l.reg.find_member("w1")->usage.cpu_percent == 10);
}

TEST_CASE("a transition on its way to commit is not proposed again within the retry interval") {
  leader l;
  l.delay_ms = 300;  // slow commits, but under the 500 ms retry interval
  l.mon.become_leader(l.reg.state(), 0);
  auto s = l.apply(register_member{worker("w1"), 1000}, 0).value;
  l.run(0, 3000);
  CHECK(l.reg.find_session(s) == nullptr);
  CHECK(l.count_expired() == 1);
  CHECK(l.count<set_member_status>() == 1);  // suspect, once
}

TEST_CASE("a monitor that lost leadership proposes nothing, even what it was retrying") {
  leader l;
  l.mon.become_leader(l.reg.state(), 0);
  l.apply(open_session{"c", 100}, 0);
  l.refuse = [](const command&, std::uint64_t) { return true; };
  l.run(0, 500);
  REQUIRE(l.count_expired() >= 1);
  l.mon.step_down();
  CHECK(l.mon.tick(600).empty());
  CHECK(l.mon.tick(5000).empty());
}
