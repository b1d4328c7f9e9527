// The registry state machine: one behaviour per case, then a seeded
// simulation of random commands checked against a model.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "actors/registry/registry.hpp"

using namespace conclave::registry;

namespace {

member worker(const std::string& id) {
  member m;
  m.id = id;
  m.role = member_role::worker;
  m.host = "127.0.0.1";
  m.port = 9000;
  return m;
}

// Applies commands at increasing log indexes, as the Raft log would.
struct replica {
  registry reg;
  std::uint64_t index = 0;
  std::vector<lock_grant> grants;
  explicit replica(limits l = {}) : reg(l) {}
  outcome operator()(const command& c) {
    auto o = reg.apply(c, ++index, &grants);
    reg.check_invariants();
    return o;
  }
};

}  // namespace

TEST_CASE("a registered member is alive with a session; registering again ends the old incarnation") {
  replica r;
  auto first = r(register_member{worker("w1"), 5000});
  REQUIRE(first.code == code::ok);
  auto* m = r.reg.find_member("w1");
  REQUIRE(m);
  CHECK(m->status == member_status::alive);
  CHECK(m->session == first.value);
  REQUIRE(r(put{"/tasks/w1", "running", first.value, std::nullopt}).code == code::ok);
  auto second = r(register_member{worker("w1"), 5000});
  CHECK(second.value != first.value);
  CHECK(r.reg.find_session(first.value) == nullptr);
  CHECK(r.reg.get("/tasks/w1") == nullptr);  // the old incarnation's ephemeral key went with it
  CHECK(r.reg.find_member("w1")->status == member_status::alive);
  CHECK(r(register_member{worker(""), 5000}).code == code::invalid);
  CHECK(r(register_member{worker("w2"), 0}).code == code::invalid);
}

TEST_CASE("registering again with the same incarnation while its session lives returns that session") {
  // A member agent whose registration timed out (outcome unknown) asks
  // again; the first attempt may have committed, and its events must stay.
  replica r;
  auto m = worker("w1");
  m.incarnation = 7;
  auto first = r(register_member{m, 5000});
  REQUIRE(first.code == code::ok);
  REQUIRE(r(put{"/eph/w1", "x", first.value, std::nullopt}).code == code::ok);
  REQUIRE(r(publish_event{"master", "w1", "run"}).code == code::ok);
  auto again = r(register_member{m, 5000});
  REQUIRE(again.code == code::ok);
  CHECK(again.value == first.value);
  CHECK(r.reg.find_member("w1")->status == member_status::alive);
  CHECK(r.reg.find_session(first.value) != nullptr);
  CHECK(r.reg.get("/eph/w1") != nullptr);
  CHECK(r.reg.pending_events("w1").size() == 1);
  // Another incarnation (the process restarted) ends the first one.
  m.incarnation = 8;
  auto restarted = r(register_member{m, 5000});
  CHECK(restarted.value != first.value);
  CHECK(r.reg.find_session(first.value) == nullptr);
  CHECK(r.reg.pending_events("w1").empty());
  // The same incarnation after its session ended gets a new session.
  r(close_session{restarted.value, true});
  auto back = r(register_member{m, 5000});
  CHECK(back.value != restarted.value);
  CHECK(r.reg.find_member("w1")->status == member_status::alive);
}

TEST_CASE("resource usage reports update members; unknown members are skipped") {
  replica r;
  r(register_member{worker("w1"), 5000});
  resources usage;
  usage.cpu_percent = 42.5;
  usage.memory_available_bytes = 1 << 30;
  r(report_usage{{{"w1", usage}, {"ghost", usage}}});
  CHECK(r.reg.find_member("w1")->usage == usage);
  CHECK(r.reg.find_member("ghost") == nullptr);
}

TEST_CASE("keys: put, get, compare-and-set on version, delete, list by prefix, with revisions") {
  replica r;
  auto p1 = r(put{"/a/x", "1", 0, std::nullopt});
  REQUIRE(p1.code == code::ok);
  auto* kv = r.reg.get("/a/x");
  REQUIRE(kv);
  CHECK(kv->version == 1);
  CHECK(kv->created == p1.value);
  CHECK(kv->modified == p1.value);
  auto p2 = r(put{"/a/x", "2", 0, std::uint64_t{1}});
  REQUIRE(p2.code == code::ok);
  CHECK(p2.value > p1.value);
  CHECK(r.reg.get("/a/x")->version == 2);
  CHECK(r.reg.get("/a/x")->created == p1.value);
  auto stale = r(put{"/a/x", "3", 0, std::uint64_t{1}});
  CHECK(stale.code == code::version_mismatch);
  CHECK(r.reg.get("/a/x")->value == "2");
  CHECK(r(put{"/a/x", "create-only", 0, std::uint64_t{0}}).code == code::version_mismatch);
  CHECK(r(put{"/a/y", "create-only", 0, std::uint64_t{0}}).code == code::ok);
  r(put{"/b/z", "other", 0, std::nullopt});
  auto listed = r.reg.list("/a/");
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].first == "/a/x");
  CHECK(listed[1].first == "/a/y");
  CHECK(r(remove_key{"/a/x", std::uint64_t{1}}).code == code::version_mismatch);
  CHECK(r(remove_key{"/a/x", std::uint64_t{2}}).code == code::ok);
  CHECK(r.reg.get("/a/x") == nullptr);
  CHECK(r(remove_key{"/a/x", std::nullopt}).code == code::not_found);
  CHECK(r(put{"", "v", 0, std::nullopt}).code == code::invalid);
}

TEST_CASE("the revision counts key changes only, as etcd's: members, sessions, usage, events and lock waits leave it") {
  replica r;
  auto rev = [&] { return r.reg.current_revision(); };
  auto s = r(register_member{worker("w1"), 5000}).value;
  auto other = r(open_session{"x", 5000}).value;
  CHECK(rev() == 0);
  r(report_usage{{{"w1", resources{}}}});
  r(set_member_status{"w1", member_status::suspect});
  r(set_member_status{"w1", member_status::alive});
  r(publish_event{"x", "w1", "hello"});
  CHECK(rev() == 0);
  // Consecutive writes see consecutive revisions.
  CHECK(r(put{"/a", "1", 0, std::nullopt}).value == 1);
  CHECK(r(put{"/a", "2", 0, std::nullopt}).value == 2);
  CHECK(r(remove_key{"/a", std::nullopt}).value == 3);
  // A session's end deletes all its keys at one revision.
  r(put{"/e1", "v", s, std::nullopt});
  r(put{"/e2", "v", s, std::nullopt});
  CHECK(rev() == 5);
  // A lock grant is a revision (its fencing token); waiting for it is not.
  CHECK(r(acquire_lock{"L", other, true}).value == 6);
  auto queued = r(acquire_lock{"L", s, true});
  CHECK(queued.code == code::queued);
  CHECK(rev() == 6);
  r(close_session{s, false});
  CHECK(rev() == 7);
  CHECK(r.reg.get("/e1") == nullptr);
  CHECK(r.reg.get("/e2") == nullptr);
  auto changes = r.reg.changes_since(5, "/e");
  REQUIRE(changes.has_value());
  REQUIRE(changes->size() == 2);
  CHECK((*changes)[0].rev == 7);
  CHECK((*changes)[1].rev == 7);
}

TEST_CASE("ephemeral keys vanish with their session, whether closed or expired") {
  replica r;
  auto s1 = r(open_session{"client-1", 3000}).value;
  auto s2 = r(open_session{"client-2", 3000}).value;
  REQUIRE(r(put{"/eph/1", "a", s1, std::nullopt}).code == code::ok);
  REQUIRE(r(put{"/eph/2", "b", s2, std::nullopt}).code == code::ok);
  REQUIRE(r(put{"/keep", "c", 0, std::nullopt}).code == code::ok);
  CHECK(r(put{"/eph/3", "d", 999, std::nullopt}).code == code::no_session);
  r(close_session{s1, false});
  CHECK(r.reg.get("/eph/1") == nullptr);
  CHECK(r.reg.get("/eph/2") != nullptr);
  r(close_session{s2, true});
  CHECK(r.reg.get("/eph/2") == nullptr);
  CHECK(r.reg.get("/keep") != nullptr);
  CHECK(r(close_session{s2, true}).code == code::no_session);
}

TEST_CASE("a member's session ending makes it dead (expired) or left (closed); the dead list shows it") {
  replica r;
  auto s1 = r(register_member{worker("w1"), 1000}).value;
  auto s2 = r(register_member{worker("w2"), 1000}).value;
  r(close_session{s1, true});
  r(close_session{s2, false});
  CHECK(r.reg.find_member("w1")->status == member_status::dead);
  CHECK(r.reg.find_member("w2")->status == member_status::left);
  auto dead = r.reg.members(member_status::dead);
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].id == "w1");
  // A suspect member stays registered with its session; dead ends it.
  auto s3 = r(register_member{worker("w3"), 1000}).value;
  r(set_member_status{"w3", member_status::suspect});
  CHECK(r.reg.find_session(s3) != nullptr);
  r(set_member_status{"w3", member_status::dead});
  CHECK(r.reg.find_session(s3) == nullptr);
  CHECK(r(set_member_status{"nobody", member_status::dead}).code == code::not_found);
}

TEST_CASE("session checkpoints record the remaining TTL, never above the TTL") {
  replica r;
  auto s = r(open_session{"c", 1000}).value;
  r(checkpoint_sessions{{{s, 400}, {12345, 1}}});
  CHECK(r.reg.find_session(s)->remaining_ms == 400);
  r(checkpoint_sessions{{{s, 5000}}});
  CHECK(r.reg.find_session(s)->remaining_ms == 1000);
  CHECK(r(open_session{"c", 0}).code == code::invalid);
}

TEST_CASE("locks are granted first come, first served, each grant with a larger fencing token") {
  replica r;
  auto a = r(open_session{"a", 1000}).value;
  auto b = r(open_session{"b", 1000}).value;
  auto c = r(open_session{"c", 1000}).value;
  auto ga = r(acquire_lock{"job", a, true});
  REQUIRE(ga.code == code::ok);
  CHECK(r(acquire_lock{"job", b, true}).code == code::queued);
  CHECK(r(acquire_lock{"job", c, true}).code == code::queued);
  CHECK(r(acquire_lock{"job", a, true}).value == ga.value);  // the holder asking again: same grant
  CHECK(r(acquire_lock{"job", c, false}).code == code::held);
  r.grants.clear();
  REQUIRE(r(release_lock{"job", a}).code == code::ok);
  REQUIRE(r.grants.size() == 1);
  CHECK(r.grants[0].session == b);
  CHECK(r.grants[0].token > ga.value);
  CHECK(r.reg.find_lock("job")->holder == b);
  // The holder's session expires: the lock passes to the next waiter.
  r.grants.clear();
  auto token_b = r.reg.find_lock("job")->token;
  r(close_session{b, true});
  REQUIRE(r.grants.size() == 1);
  CHECK(r.grants[0].session == c);
  CHECK(r.grants[0].token > token_b);
  CHECK(r(release_lock{"job", a}).code == code::not_holder);
  REQUIRE(r(release_lock{"job", c}).code == code::ok);
  CHECK(r.reg.find_lock("job") == nullptr);  // free with no waiters: forgotten
  // A later grant still gets a larger token than any before.
  auto again = r(acquire_lock{"job", a, true});
  CHECK(again.value > r.grants[0].token);
  CHECK(r(acquire_lock{"job", 4242, true}).code == code::no_session);
}

TEST_CASE("a waiter can give up; one whose session ends is skipped") {
  replica r;
  auto a = r(open_session{"a", 1000}).value;
  auto b = r(open_session{"b", 1000}).value;
  auto c = r(open_session{"c", 1000}).value;
  r(acquire_lock{"l", a, true});
  r(acquire_lock{"l", b, true});
  r(acquire_lock{"l", c, true});
  CHECK(r(cancel_lock_wait{"l", b}).code == code::ok);
  CHECK(r(cancel_lock_wait{"l", b}).code == code::not_found);
  r.grants.clear();
  r(release_lock{"l", a});
  REQUIRE(r.grants.size() == 1);
  CHECK(r.grants[0].session == c);
}

TEST_CASE("events reach the members alive when published, in order, until acknowledged") {
  replica r;
  r(register_member{worker("w1"), 1000});
  r(register_member{worker("w2"), 1000});
  auto e1 = r(publish_event{"master", "", "to all"});
  auto e2 = r(publish_event{"master", "w2", "to w2"});
  REQUIRE(e1.code == code::ok);
  REQUIRE(e2.code == code::ok);
  CHECK(e2.value > e1.value);
  r(register_member{worker("w3"), 1000});  // joined after: not a recipient
  CHECK(r.reg.pending_events("w3").empty());
  auto w2 = r.reg.pending_events("w2");
  REQUIRE(w2.size() == 2);
  CHECK(w2[0].payload == "to all");
  CHECK(w2[1].payload == "to w2");
  CHECK(r.reg.pending_events("w1").size() == 1);
  r(ack_events{"w2", e1.value});
  CHECK(r.reg.pending_events("w2").size() == 1);
  r(ack_events{"w2", e2.value});
  CHECK(r.reg.pending_events("w2").empty());
  // A dead member is dropped from what it would still receive.
  r(set_member_status{"w1", member_status::dead});
  CHECK(r.reg.state().events.empty());
  CHECK(r(publish_event{"master", "w1", "too late"}).code == code::not_found);
}

TEST_CASE("events: a publish at the cap is refused with full, and no undelivered event is dropped") {
  replica r(limits{100, 3});
  r(register_member{worker("w1"), 1000});
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 3; ++i) {
    auto o = r(publish_event{"master", "w1", "e" + std::to_string(i)});
    REQUIRE(o.code == code::ok);
    seqs.push_back(o.value);
  }
  auto rev = r.reg.current_revision();
  auto refused = r(publish_event{"master", "", "one too many"});
  CHECK(refused.code == code::full);
  CHECK(refused.detail == "3 undelivered events; members must acknowledge");
  CHECK(r.reg.current_revision() == rev);  // refused: nothing changed
  auto pending = r.reg.pending_events("w1");
  REQUIRE(pending.size() == 3);
  CHECK(pending.front().payload == "e0");  // the oldest is still there
  // An acknowledgement makes room.
  r(ack_events{"w1", seqs[0]});
  CHECK(r(publish_event{"master", "w1", "e3"}).code == code::ok);
  CHECK(r.reg.pending_events("w1").back().payload == "e3");
}

TEST_CASE("watch history: every key change once, in order; an old revision past the history is refused") {
  replica r(limits{5, 100});
  auto s = r(open_session{"c", 1000}).value;
  r(put{"/w/a", "1", 0, std::nullopt});
  auto mid = r.reg.current_revision();
  r(put{"/w/b", "2", s, std::nullopt});
  r(put{"/x/c", "3", 0, std::nullopt});
  r(remove_key{"/w/a", std::nullopt});
  auto changes = r.reg.changes_since(mid, "/w/");
  REQUIRE(changes.has_value());
  REQUIRE(changes->size() == 2);
  CHECK((*changes)[0].key == "/w/b");
  CHECK((*changes)[1].key == "/w/a");
  CHECK((*changes)[1].deleted);
  for (int i = 0; i < 10; ++i) r(put{"/w/n" + std::to_string(i), "v", 0, std::nullopt});
  CHECK_FALSE(r.reg.changes_since(mid, "/w/").has_value());
  CHECK(r.reg.changes_since(r.reg.current_revision(), "/w/")->empty());
}

// --- simulation ---------------------------------------------------------------------

namespace {

// Random commands over a few members, sessions, keys and locks.
command random_command(std::mt19937_64& rng, const registry& reg) {
  auto pick = [&](std::uint64_t n) { return n ? rng() % n : 0; };
  std::vector<session_id> sessions;
  for (const auto& [id, s] : reg.state().sessions) sessions.push_back(id);
  auto any_session = [&]() -> session_id { return sessions.empty() || pick(10) == 0 ? 999999 : sessions[pick(sessions.size())]; };
  auto key = "/k/" + std::to_string(pick(8));
  auto lock_name = "lock" + std::to_string(pick(3));
  auto member_id = "m" + std::to_string(pick(4));
  auto random_ops = [&] {
    std::vector<txn_op> ops;
    for (auto n = pick(3); n > 0; --n) {
      txn_op op;
      op.kind = static_cast<op_kind>(pick(3));
      op.range = pick(2) ? key_range{"/k/" + std::to_string(pick(8)), {}} : key_range{"/k/" + std::to_string(pick(4)), "/k/6"};
      op.value = "t" + std::to_string(rng() % 1000);
      op.session = pick(4) == 0 ? any_session() : 0;
      op.ignore_value = pick(6) == 0;
      op.ignore_session = pick(6) == 0;
      ops.push_back(op);
    }
    return ops;
  };
  switch (pick(17)) {
    case 14: {
      txn t;
      for (auto n = pick(3); n > 0; --n) {
        compare c;
        c.range = pick(3) ? key_range{key, {}} : key_range{"/k/", "/k0"};
        c.target = static_cast<compare_target>(pick(5));
        c.op = static_cast<compare_op>(pick(4));
        c.value = "v" + std::to_string(rng() % 1000);
        c.number = pick(4);
        t.compares.push_back(c);
      }
      t.success = random_ops();
      t.failure = random_ops();
      return t;
    }
    case 15: return compact{reg.current_revision() - pick(reg.current_revision() + 1) / 2};
    case 16: return open_session{"lease", 500, pick(2) ? 0 : 1 + pick(reg.state().applied + 10)};
    case 0: {
      auto m = worker(member_id);
      m.incarnation = pick(3);  // repeats of one incarnation, and restarts
      return register_member{m, 1000 + pick(1000)};
    }
    case 1: return set_member_status{member_id, static_cast<member_status>(pick(4))};
    case 2: return open_session{"client", 500 + pick(500)};
    case 3: return close_session{any_session(), pick(2) == 0};
    case 4: return checkpoint_sessions{{{any_session(), pick(2000)}}};
    case 5: case 6: {
      std::optional<std::uint64_t> v;
      if (pick(3) == 0) v = pick(3);
      return put{key, "v" + std::to_string(rng() % 1000), pick(3) == 0 ? any_session() : 0, v};
    }
    case 7: return remove_key{key, pick(3) == 0 ? std::optional<std::uint64_t>(pick(3)) : std::nullopt};
    case 8: case 9: return acquire_lock{lock_name, any_session(), pick(4) != 0};
    case 10: return release_lock{lock_name, any_session()};
    case 11: return cancel_lock_wait{lock_name, any_session()};
    case 12: return publish_event{"m0", pick(2) ? "" : member_id, "e"};
    default: return ack_events{member_id, reg.state().event_seq - pick(3)};
  }
}

}  // namespace

TEST_CASE("simulation: random commands keep every invariant; replicas and restored snapshots agree; reads at past revisions see the keys as they were") {
  int seeds = 300, steps = 2000;
  for (int seed = 1; seed <= seeds; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(static_cast<std::uint64_t>(seed));
    replica a(limits{50, 1000}), b(limits{50, 1000});
    std::map<std::string, revision> last_token;        // per lock: the largest token granted
    std::map<std::string, std::vector<session_id>> queue;  // per lock: the waiting order seen
    std::map<std::string, std::string> watched;        // a watcher's view of /k/ keys
    revision watched_rev = 0;
    std::map<revision, std::map<std::string, std::string>> at_revision;  // every /k/ key at each revision
    bool watcher_reads_b = false;
    for (int step = 0; step < steps; ++step) {
      auto cmd = random_command(rng, a.reg);
      a.grants.clear();
      auto o = a(cmd);
      auto ob = b(cmd);
      REQUIRE(o.code == ob.code);
      REQUIRE(o.value == ob.value);
      REQUIRE(a.reg.digest() == b.reg.digest());
      // Fencing tokens only grow, and waiters are served in the order they queued.
      auto grant = [&](const std::string& name, session_id s, revision token) {
        REQUIRE(token > last_token[name]);
        last_token[name] = token;
        auto& q = queue[name];
        // Waiters ahead of it may have left (cancelled, session ended); none behind it goes first.
        auto pos = std::find(q.begin(), q.end(), s);
        if (pos != q.end()) {
          for (auto it = q.begin(); it != pos; ++it) REQUIRE(a.reg.find_session(*it) == nullptr);
          q.erase(q.begin(), pos + 1);
        }
      };
      // An id may be used again once its session ended (a client chooses it):
      // the waiter the queue knew by that id is gone.
      if ((std::holds_alternative<open_session>(cmd) || std::holds_alternative<register_member>(cmd)) &&
          o.code == code::ok) {
        for (auto& [name, q] : queue) q.erase(std::remove(q.begin(), q.end(), o.value), q.end());
      }
      if (auto* acq = std::get_if<acquire_lock>(&cmd)) {
        if (o.code == code::ok && o.value > last_token[acq->name]) grant(acq->name, acq->session, o.value);
        auto& q = queue[acq->name];
        if (o.code == code::queued && std::find(q.begin(), q.end(), acq->session) == q.end()) q.push_back(acq->session);
      }
      if (auto* cancel = std::get_if<cancel_lock_wait>(&cmd); cancel && o.code == code::ok) {
        auto& q = queue[cancel->name];
        q.erase(std::remove(q.begin(), q.end(), cancel->session), q.end());
      }
      for (const auto& g : a.grants) grant(g.name, g.session, g.token);
      // A read at any revision the history reaches sees the keys as they were then.
      auto& now = at_revision[a.reg.current_revision()];
      now.clear();
      for (const auto& [k, kv] : a.reg.list("/k/")) now[k] = kv.value;
      if (!at_revision.empty()) {
        auto past = std::next(at_revision.begin(), static_cast<long>(rng() % at_revision.size()));
        auto read = (rng() % 2 ? a.reg : b.reg).range(key_range{"/k/", "/k0"}, past->first);
        if (past->first == 0) {
          // (0 asks for the current revision)
        } else if (past->first < std::max(a.reg.state().history_floor, a.reg.state().compacted)) {
          REQUIRE(read.status == code::compacted);
          at_revision.erase(past);
        } else {
          REQUIRE(read.status == code::ok);
          std::map<std::string, std::string> seen;
          for (const auto& [k, kv] : read.keys) seen[k] = kv.value;
          REQUIRE(seen == past->second);
        }
      }
      // A watcher polling changes sees each change once, in order, with no
      // gap, even when it switches replicas (as a client does on failover).
      if (rng() % 4 == 0) watcher_reads_b = !watcher_reads_b;
      const auto& source = watcher_reads_b ? b.reg : a.reg;
      auto changes = source.changes_since(watched_rev, "/k/");
      if (!changes) {
        // Fell behind the history: re-list, as a watcher must.
        watched.clear();
        for (const auto& [k, kv] : source.list("/k/")) watched[k] = kv.value;
      } else {
        revision seen = watched_rev;
        for (const auto& c : *changes) {
          REQUIRE(c.rev > watched_rev);  // nothing already seen comes again
          REQUIRE(c.rev >= seen);        // in order
          seen = c.rev;
          if (c.deleted) watched.erase(c.key);
          else watched[c.key] = c.value;
        }
      }
      watched_rev = source.current_revision();
      std::map<std::string, std::string> actual;
      for (const auto& [k, kv] : source.list("/k/")) actual[k] = kv.value;
      REQUIRE(watched == actual);
      // Now and then one replica restarts from a copy of its state (a snapshot).
      if (rng() % 200 == 0) {
        b.reg = registry(b.reg.state(), limits{50, 1000});
        REQUIRE(b.reg.digest() == a.reg.digest());
      }
    }
  }
}

// --- etcd's transactions, history reads, compaction and lease ids ------------------------

TEST_CASE("a transaction runs its success or failure operations, every key changed at one new revision") {
  replica r;
  REQUIRE(r(put{"/a", "1", 0, std::nullopt}).value == 1);
  REQUIRE(r(put{"/b", "2", 0, std::nullopt}).value == 2);
  auto single = [](const std::string& k) { return key_range{k, {}}; };
  txn t;
  t.compares = {compare{single("/a"), compare_target::value, compare_op::equal, "1", 0},
                compare{single("/b"), compare_target::version, compare_op::greater, {}, 0}};
  t.success = {txn_op{op_kind::put, single("/a"), "10", 0, false, false},
               txn_op{op_kind::remove, single("/b"), {}, 0, false, false},
               txn_op{op_kind::range, key_range{"/", "0"}, {}, 0, false, false}};
  t.failure = {txn_op{op_kind::put, single("/failed"), "x", 0, false, false}};
  auto o = r(t);
  REQUIRE(o.code == code::ok);
  CHECK(o.succeeded);
  CHECK(o.value == 3);
  REQUIRE(o.ops.size() == 3);
  REQUIRE(o.ops[0].keys.size() == 1);  // the put: what it replaced
  CHECK(o.ops[0].keys[0].second.value == "1");
  REQUIRE(o.ops[1].keys.size() == 1);  // the remove: what it removed
  CHECK(o.ops[1].keys[0].first == "/b");
  REQUIRE(o.ops[2].keys.size() == 1);  // the range sees the writes before it
  CHECK(o.ops[2].keys[0].second.value == "10");
  auto* a = r.reg.get("/a");
  REQUIRE(a);
  CHECK(a->created == 1);
  CHECK(a->modified == 3);
  CHECK(a->version == 2);
  CHECK(r.reg.get("/failed") == nullptr);
  CHECK(r.reg.current_revision() == 3);
  auto changes = r.reg.changes_since(2, "/");
  REQUIRE(changes);
  REQUIRE(changes->size() == 2);
  CHECK(((*changes)[0].rev == 3 && (*changes)[1].rev == 3));
  // The same comparisons no longer hold: the failure branch runs.
  o = r(t);
  CHECK(!o.succeeded);
  CHECK(o.value == 4);
  CHECK(r.reg.get("/failed"));
  // Only reads: no new revision.
  txn reads;
  reads.success = {txn_op{op_kind::range, single("/a"), {}, 0, false, false}};
  o = r(reads);
  CHECK(o.succeeded);  // no comparisons hold vacuously
  CHECK(o.value == 4);
  CHECK(r.reg.current_revision() == 4);
}

TEST_CASE("transaction comparisons: value, version, create and mod revision, session; all four operators; ranges and missing keys") {
  replica r;
  auto lease = r(open_session{"lease", 1000, 77}).value;
  REQUIRE(lease == 77);
  r(put{"/x", "b", 0, std::nullopt});      // rev 1
  r(put{"/x", "b", 0, std::nullopt});      // rev 2: version 2, created 1, modified 2
  r(put{"/y", "a", lease, std::nullopt});  // rev 3
  auto holds = [&](key_range range, compare_target target, compare_op op, std::string value, std::uint64_t n) {
    txn t;
    t.compares = {compare{std::move(range), target, op, std::move(value), n}};
    return r(t).succeeded;
  };
  key_range x{"/x", {}}, both{"/x", "/z"}, missing{"/none", {}};
  using T = compare_target;
  using O = compare_op;
  CHECK(holds(x, T::value, O::equal, "b", 0));
  CHECK(holds(x, T::value, O::greater, "a", 0));
  CHECK(holds(x, T::value, O::less, "c", 0));
  CHECK(holds(x, T::value, O::not_equal, "a", 0));
  CHECK(!holds(x, T::value, O::equal, "a", 0));
  CHECK(holds(x, T::version, O::equal, {}, 2));
  CHECK(holds(x, T::created, O::equal, {}, 1));
  CHECK(holds(x, T::modified, O::equal, {}, 2));
  CHECK(holds(x, T::modified, O::less, {}, 3));
  CHECK(!holds(x, T::modified, O::greater, {}, 2));
  CHECK(holds(key_range{"/y", {}}, T::session, O::equal, {}, 77));
  CHECK(holds(x, T::session, O::equal, {}, 0));
  // A range: every key must hold.
  CHECK(holds(both, T::value, O::less, "c", 0));
  CHECK(!holds(both, T::value, O::equal, "b", 0));
  // A missing key has version, revisions and session 0, and no value.
  CHECK(holds(missing, T::version, O::equal, {}, 0));
  CHECK(holds(missing, T::created, O::equal, {}, 0));
  CHECK(!holds(missing, T::value, O::equal, "", 0));
  CHECK(!holds(missing, T::value, O::not_equal, "x", 0));
}

TEST_CASE("a refused transaction changes nothing: an unknown session, a kept value of a missing key, a key changed twice") {
  replica r;
  r(put{"/a", "1", 0, std::nullopt});
  auto digest = r.reg.digest();
  auto put_op = [](std::string k, std::string v, session_id s = 0) {
    return txn_op{op_kind::put, key_range{std::move(k), {}}, std::move(v), s, false, false};
  };
  txn unknown_session;
  unknown_session.success = {put_op("/b", "2"), put_op("/c", "3", 999)};
  CHECK(r(unknown_session).code == code::no_session);
  txn keep_missing;
  keep_missing.success = {put_op("/b", "2"), txn_op{op_kind::put, key_range{"/none", {}}, {}, 0, true, false}};
  CHECK(r(keep_missing).code == code::not_found);
  txn twice;
  twice.success = {put_op("/b", "2"), put_op("/b", "3")};
  CHECK(r(twice).code == code::invalid);
  txn put_and_remove;
  put_and_remove.failure = {put_op("/b", "2"), txn_op{op_kind::remove, key_range{"/", "0"}, {}, 0, false, false}};
  CHECK(r(put_and_remove).code == code::invalid);  // either branch is checked
  txn empty_key;
  empty_key.success = {put_op("", "2")};
  CHECK(r(empty_key).code == code::invalid);
  CHECK(r.reg.digest() == digest);
  CHECK(r.reg.current_revision() == 1);
  // ignore_value and ignore_session keep what the key has.
  auto lease = r(open_session{"lease", 1000, 5}).value;
  r(put{"/k", "kept", lease, std::nullopt});
  txn keep;
  keep.success = {txn_op{op_kind::put, key_range{"/k", {}}, {}, 0, true, true}};
  REQUIRE(r(keep).code == code::ok);
  CHECK(r.reg.get("/k")->value == "kept");
  CHECK(r.reg.get("/k")->session == lease);
  CHECK(r.reg.get("/k")->version == 2);
}

TEST_CASE("reads at a past revision see the keys as they were; compaction drops the history before it") {
  replica r;
  r(put{"/a", "1", 0, std::nullopt});  // rev 1
  r(put{"/b", "1", 0, std::nullopt});  // rev 2
  r(put{"/a", "2", 0, std::nullopt});  // rev 3
  r(remove_key{"/b", std::nullopt});   // rev 4
  key_range all{"/", "0"};
  auto at = [&](revision rev) {
    auto res = r.reg.range(all, rev);
    std::string out = to_string(res.status) + std::string(":");
    for (const auto& [k, kv] : res.keys) out += k + "=" + kv.value + "@" + std::to_string(kv.modified) + " ";
    return out;
  };
  CHECK(at(1) == "ok:/a=1@1 ");
  CHECK(at(2) == "ok:/a=1@1 /b=1@2 ");
  CHECK(at(3) == "ok:/a=2@3 /b=1@2 ");
  CHECK(at(4) == "ok:/a=2@3 ");
  CHECK(at(0) == at(4));
  CHECK(at(5) == "future_revision:");
  CHECK(r(compact{5}).code == code::future_revision);
  REQUIRE(r(compact{2}).code == code::ok);
  CHECK(at(1) == "compacted:");
  CHECK(at(2) == "ok:/a=1@1 /b=1@2 ");
  CHECK(r.reg.range(all, 3).floor == 2);
  CHECK(!r.reg.changes_since(0, "/"));
  CHECK(r.reg.changes_since(1, "/"));  // a watch may start at the compaction's revision, as etcd's
  CHECK(r(compact{2}).code == code::compacted);  // as etcd: not again, nor below
  CHECK(r(compact{1}).code == code::compacted);
  CHECK(r.reg.current_revision() == 4);          // compaction changes no key
  // The history records each key as it was before, for watchers' prev_kv.
  auto changes = r.reg.changes_since(2, "/");
  REQUIRE(changes);
  REQUIRE(changes->size() == 2);
  CHECK(r.reg.changes_since(1, "/")->size() == 3);
  REQUIRE((*changes)[0].prev);
  CHECK((*changes)[0].prev->value == "1");
  CHECK((*changes)[0].version == 2);
  CHECK((*changes)[0].created == 1);
  REQUIRE((*changes)[1].prev);
  CHECK((*changes)[1].prev->modified == 2);
}

TEST_CASE("sessions: a client may choose the id (an etcd lease ID); ids the registry picks skip chosen ones") {
  replica r;
  CHECK(r(open_session{"lease", 1000, 3}).value == 3);  // at index 1
  auto again = r(open_session{"lease", 1000, 3});      // index 2
  CHECK(again.code == code::exists);
  auto picked = r(open_session{"client", 1000});       // index 3: taken, so the next free one
  CHECK(picked.code == code::ok);
  CHECK(picked.value == 4);
  auto member = r(register_member{worker("w1"), 1000});  // index 4: taken too
  CHECK(member.value == 5);
  CHECK(r.reg.find_member("w1")->session == 5);
  CHECK(r(open_session{"client", 1000}).value == 6);  // index 5 taken: 6
  CHECK(r(open_session{"client", 1000}).value == 7);  // index 6 taken: 7
  CHECK(r(open_session{"client", 1000}).value == 8);  // index 7 taken: 8
  CHECK(r(open_session{"client", 1000}).value == 9);  // index 8 taken: 9
}

#include "actors/registry/queries.hpp"

TEST_CASE("queries answer from the applied state: members, keys, locks, sessions, events, changes") {
  replica r(limits{3, 100});
  auto s = r(register_member{worker("w\"1"), 1000}).value;
  r(put{"/a", std::string("x\0y", 3), 0, std::nullopt});
  r(acquire_lock{"L", s, true});
  r(publish_event{"w\"1", "", "hi"});
  auto ask = [&](auto q) { return std::get<typename decltype(q)::result>(answer(r.reg, q)); };
  REQUIRE(ask(members_query{}).members.size() == 1);
  CHECK(ask(members_query{}).members[0].id == "w\"1");
  CHECK(ask(members_query{member_status::alive}).members.size() == 1);
  CHECK(ask(members_query{member_status::dead}).members.empty());
  REQUIRE(ask(get_key{"/a"}).value.has_value());
  CHECK(ask(get_key{"/a"}).value->value == std::string("x\0y", 3));
  CHECK_FALSE(ask(get_key{"/missing"}).value.has_value());
  auto listed = ask(list_prefix{"/"});
  CHECK(listed.rev == r.reg.current_revision());
  REQUIRE(listed.keys.size() == 1);
  CHECK(listed.keys[0].first == "/a");
  REQUIRE(ask(lock_query{"L"}).value.has_value());
  CHECK(ask(lock_query{"L"}).value->holder == s);
  CHECK_FALSE(ask(lock_query{"M"}).value.has_value());
  REQUIRE(ask(session_query{s}).value.has_value());
  CHECK(ask(session_query{s}).value->ttl_ms == 1000);
  CHECK_FALSE(ask(session_query{s + 1000}).value.has_value());
  REQUIRE(ask(events_query{"w\"1"}).events.size() == 1);
  CHECK(ask(events_query{"w\"1"}).events[0].payload == "hi");
  CHECK(ask(revision_query{}).rev == r.reg.current_revision());
  CHECK(ask(digest_query{}).digest == r.reg.digest());
  auto changes = ask(changes_query{0, "/"});
  CHECK_FALSE(changes.compacted);
  CHECK(changes.changes.size() == 1);
  for (int i = 0; i < 5; ++i) r(put{"/b" + std::to_string(i), "v", 0, std::nullopt});
  changes = ask(changes_query{0, "/"});
  CHECK(changes.compacted);
  CHECK(changes.changes.empty());
  CHECK(changes.rev == r.reg.current_revision());
}

TEST_CASE("conclavectl's JSON: members, keys and changes, with every byte escaped") {
  replica r(limits{3, 100});
  r(register_member{worker("w\"1"), 1000});
  r(put{"/a", std::string("x\0y", 3), 0, std::nullopt});
  auto members = std::get<members_result>(answer(r.reg, members_query{}));
  CHECK(to_json(members).find("\"id\":\"w\\\"1\"") != std::string::npos);
  CHECK(to_json(members_result{}) == "[]");
  auto keys = std::get<keys_result>(answer(r.reg, list_prefix{"/"}));
  CHECK(to_json(keys) == "[{\"key\":\"/a\",\"value\":\"x\\u0000y\",\"version\":1,\"created\":" +
                             std::to_string(keys.keys[0].second.created) + ",\"modified\":" +
                             std::to_string(keys.keys[0].second.modified) + ",\"session\":0}]");
  change removed;
  removed.rev = 7;
  removed.deleted = true;
  removed.key = "/k";
  CHECK(to_json(removed) == "{\"revision\":7,\"type\":\"delete\",\"key\":\"/k\",\"value\":\"\"}");
}

#include "actors/registry/subscriptions.hpp"
#include "actors/registry/watch_cursor.hpp"
#include "schema/push_codec.hpp"
#include "schema/registry_codec.hpp"

TEST_CASE("a watch never repeats or goes back when it moves to a master behind, and re-lists past the history") {
  replica a(limits{4, 100}), behind(limits{4, 100});
  auto both = [&](const command& c) {
    a(c);
    behind(c);
  };
  // Pushes travel through the codec, as a master sends them.
  auto wire_form = [](const push& p) {
    auto back = conclave::wire::decode_push(static_cast<std::uint8_t>(p.kind), conclave::wire::encode_push_state(p));
    REQUIRE(back.has_value());
    return *back;
  };
  std::vector<std::string> seen;
  std::vector<watch_listing> listings;
  auto on_change = [&](const change& c) { seen.push_back(c.key + "@" + std::to_string(c.rev)); };
  auto on_listing = [&](const watch_listing& l) { listings.push_back(l); };
  both(put{"/w/a", "1", 0, std::nullopt});
  watch_cursor w("/w/", std::nullopt);
  subscriptions at_a(a.reg);
  // Subscribed at `a` from now: the master's progress says where that is.
  CHECK(at_a.add(1, w.subscription()).empty());
  w.take(wire_form(at_a.progress()), on_change, on_listing);
  REQUIRE(w.position());
  auto start = *w.position();
  a(put{"/w/b", "2", 0, std::nullopt});  // `behind` does not have it yet
  for (auto& [k, p] : at_a.collect()) w.take(wire_form(p), on_change, on_listing);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == "/w/b@" + std::to_string(start + 1));
  // `a` dies; the watch resumes at `behind`, which is behind: nothing
  // repeats, nothing goes back.
  subscriptions at_behind(behind.reg);
  for (auto& p : at_behind.add(1, w.subscription())) w.take(wire_form(p), on_change, on_listing);
  w.take(wire_form(at_behind.progress()), on_change, on_listing);
  CHECK(*w.position() == start + 1);
  behind(put{"/w/b", "2", 0, std::nullopt});
  for (auto& [k, p] : at_behind.collect()) w.take(wire_form(p), on_change, on_listing);
  CHECK(seen.size() == 1);
  behind(put{"/w/c", "3", 0, std::nullopt});
  for (auto& [k, p] : at_behind.collect()) w.take(wire_form(p), on_change, on_listing);
  REQUIRE(seen.size() == 2);
  CHECK(seen[1] == "/w/c@" + std::to_string(behind.reg.current_revision()));
  // Past the history (4 changes): a listing, then changes continue after it.
  auto before = *w.position();
  subscriptions late(behind.reg);
  for (int i = 0; i < 6; ++i) behind(put{"/w/n" + std::to_string(i), "v", 0, std::nullopt});
  for (auto& p : late.add(1, w.subscription())) w.take(wire_form(p), on_change, on_listing);
  CHECK(seen.size() == 2);
  REQUIRE(listings.size() == 1);
  CHECK(listings[0].after == before);
  CHECK(listings[0].rev == behind.reg.current_revision());
  CHECK(listings[0].keys.size() == 9);
  behind(remove_key{"/w/a", std::nullopt});
  for (auto& [k, p] : late.collect()) w.take(wire_form(p), on_change, on_listing);
  REQUIRE(seen.size() == 3);
  CHECK(seen[2] == "/w/a@" + std::to_string(behind.reg.current_revision()));
}
