// What a master pushes to subscribers (actors/registry/subscriptions.hpp):
// each case applies registry commands as the Raft log would and checks what
// collect() hands out after them.
#include <doctest/doctest.h>

#include "actors/registry/subscriptions.hpp"

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

// A registry fed commands at increasing log indexes, with its subscriptions.
struct master {
  registry reg;
  subscriptions subs{reg};
  std::uint64_t index = 0;
  explicit master(limits l = {}) : reg(l) {}
  outcome operator()(const command& c) {
    std::vector<lock_grant> grants;
    auto o = reg.apply(c, ++index, &grants);
    subs.on_command(c, grants);
    return o;
  }
  std::vector<push> due(subscriptions::key k) {
    std::vector<push> out;
    for (auto& [key, p] : subs.collect()) {
      if (key == k) out.push_back(std::move(p));
    }
    return out;
  }
};

std::vector<std::string> keys_of(const push& p) {
  std::vector<std::string> out;
  for (const auto& c : p.state.history) out.push_back(c.key + (c.deleted ? "-" : "=" + c.value));
  return out;
}

}  // namespace

TEST_CASE("a watch is pushed every change under its prefix once, in order, and nothing else") {
  master m;
  REQUIRE(m(put{"/a/0", "before", 0, std::nullopt}).code == code::ok);
  CHECK(m.subs.add(1, watch_subscription{"/a/", std::nullopt}).empty());  // from now: nothing yet
  m(put{"/a/1", "x", 0, std::nullopt});
  m(put{"/b/1", "other prefix", 0, std::nullopt});
  m(remove_key{"/a/0", std::nullopt});
  auto pushes = m.due(1);
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].kind == push_kind::changes);
  CHECK(keys_of(pushes[0]) == std::vector<std::string>{"/a/1=x", "/a/0-"});
  CHECK(pushes[0].state.rev == m.reg.current_revision());
  CHECK(m.due(1).empty());  // no repeats
  m(put{"/b/2", "y", 0, std::nullopt});
  CHECK(m.due(1).empty());  // a change elsewhere is not pushed
  m(put{"/a/2", "z", 0, std::nullopt});
  pushes = m.due(1);
  REQUIRE(pushes.size() == 1);
  CHECK(keys_of(pushes[0]) == std::vector<std::string>{"/a/2=z"});
  m.subs.remove(1);
  m(put{"/a/3", "gone", 0, std::nullopt});
  CHECK(m.due(1).empty());
}

TEST_CASE("a watch from an earlier revision catches up at once, from the revision after it") {
  master m;
  auto first = m(put{"/a/1", "one", 0, std::nullopt}).value;
  m(put{"/a/2", "two", 0, std::nullopt});
  m(put{"/a/3", "three", 0, std::nullopt});
  auto pushes = m.subs.add(7, watch_subscription{"/a/", first});
  REQUIRE(pushes.size() == 1);
  CHECK(keys_of(pushes[0]) == std::vector<std::string>{"/a/2=two", "/a/3=three"});
  CHECK(m.due(7).empty());
}

TEST_CASE("a watch behind the history gets the keys under its prefix and the revision they are at") {
  limits l;
  l.history = 3;
  master m(l);
  auto first = m(put{"/a/1", "one", 0, std::nullopt}).value;
  for (int i = 0; i < 5; ++i) m(put{"/a/k" + std::to_string(i), "v", 0, std::nullopt});
  m(put{"/b/x", "elsewhere", 0, std::nullopt});
  auto pushes = m.subs.add(2, watch_subscription{"/a/", first});
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].kind == push_kind::compacted);
  CHECK(pushes[0].state.rev == m.reg.current_revision());
  CHECK(pushes[0].state.keys.size() == 6);
  CHECK(pushes[0].state.keys.count("/b/x") == 0);
  m(put{"/a/after", "v", 0, std::nullopt});
  pushes = m.due(2);
  REQUIRE(pushes.size() == 1);
  CHECK(keys_of(pushes[0]) == std::vector<std::string>{"/a/after=v"});
}

TEST_CASE("a lock waiter is pushed its grant with the fencing token when the holder lets go, once") {
  master m;
  auto a = m(open_session{"a", 5000}).value;
  auto b = m(open_session{"b", 5000}).value;
  auto c = m(open_session{"c", 5000}).value;
  REQUIRE(m(acquire_lock{"L", a, true}).code == code::ok);
  REQUIRE(m(acquire_lock{"L", b, true}).code == code::queued);
  REQUIRE(m(acquire_lock{"L", c, true}).code == code::queued);
  CHECK(m.subs.add(1, lock_subscription{"L", b}).empty());
  CHECK(m.subs.add(2, lock_subscription{"L", c}).empty());
  m(put{"/unrelated", "v", 0, std::nullopt});
  CHECK(m.subs.collect().empty());
  m(release_lock{"L", a});
  auto pushes = m.due(1);
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].kind == push_kind::granted);
  CHECK(pushes[0].state.locks.at("L").holder == b);
  CHECK(pushes[0].state.locks.at("L").token == m.reg.find_lock("L")->token);
  // c still waits: nothing for it; b's subscription is done.
  m(put{"/unrelated", "w", 0, std::nullopt});
  CHECK(m.subs.collect().empty());
  // c's wait ends without a grant: it is told so.
  m(cancel_lock_wait{"L", c});
  pushes = m.due(2);
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].kind == push_kind::gone);
  CHECK(m.subs.size() == 0);
}

TEST_CASE("a master behind the waiter's log index does not judge the wait (no false 'gone')") {
  master m;
  auto a = m(open_session{"a", 5000}).value;
  auto b = m(open_session{"b", 5000}).value;
  REQUIRE(m(acquire_lock{"L", a, true}).code == code::ok);
  // The client was told "queued as of log index I" (waiting changes no key,
  // so only the index tells a master that has applied it from one that has
  // not); this master is not there yet.
  auto i = m.index + 1;
  CHECK(m.subs.add(1, lock_subscription{"L", b, i}).empty());
  auto revision = m.reg.current_revision();
  auto queued = m(acquire_lock{"L", b, true});
  REQUIRE(queued.code == code::queued);
  CHECK(queued.value == i);
  CHECK(m.reg.current_revision() == revision);
  CHECK(m.due(1).empty());  // now seen waiting: still nothing
  m(release_lock{"L", a});
  auto pushes = m.due(1);
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].kind == push_kind::granted);
}

TEST_CASE("a lock already held when subscribing is granted at once") {
  master m;
  auto a = m(open_session{"a", 5000}).value;
  REQUIRE(m(acquire_lock{"L", a, true}).code == code::ok);
  auto pushes = m.subs.add(1, lock_subscription{"L", a});
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].kind == push_kind::granted);
  CHECK(m.subs.size() == 0);
}

TEST_CASE("a member is pushed its events after the seq it asked from, each once") {
  master m;
  auto w1 = m(register_member{worker("w1"), 5000});
  m(register_member{worker("w2"), 5000});
  auto early = m(publish_event{"leader", "w1", "first"}).value;
  auto pushes = m.subs.add(1, events_subscription{"w1", 0});
  REQUIRE(pushes.size() == 1);
  REQUIRE(pushes[0].state.events.size() == 1);
  CHECK(pushes[0].state.events[0].seq == early);
  m(publish_event{"leader", "w2", "not for w1"});
  CHECK(m.due(1).empty());
  m(publish_event{"leader", "", "for everyone"});
  pushes = m.due(1);
  REQUIRE(pushes.size() == 1);
  REQUIRE(pushes[0].state.events.size() == 1);
  CHECK(pushes[0].state.events[0].payload == "for everyone");
  (void)w1;
}

TEST_CASE("member listeners are pushed the list on joins and status changes, not on usage reports") {
  master m;
  m(register_member{worker("w1"), 5000});
  auto pushes = m.subs.add(1, members_subscription{});
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].state.members.size() == 1);
  m(report_usage{{{"w1", resources{50, 1, 1, 1, 1}}}});
  CHECK(m.due(1).empty());
  m(register_member{worker("w2"), 5000});
  pushes = m.due(1);
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].state.members.size() == 2);
  m(set_member_status{"w2", member_status::suspect});
  pushes = m.due(1);
  REQUIRE(pushes.size() == 1);
  CHECK(pushes[0].state.members.at("w2").status == member_status::suspect);
}
