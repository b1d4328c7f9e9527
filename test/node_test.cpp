// The embedding API: a master and a worker started inside the test's own
// actor system, used through the blocking facade.
#include <doctest/doctest.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <map>
#include <mutex>
#include <thread>

#include "roles/node.hpp"
#include "test/process_cluster.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace std::chrono_literals;

namespace {

bool wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("embedding: a master and a worker in one actor system, used through the facade") {
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  auto port = test::free_port();
  auto peers = "1=127.0.0.1:" + std::to_string(port);
  std::mutex m;
  std::vector<std::uint64_t> terms;
  auto master = node::start(sys, {{"role", "master"}, {"id", "1"}, {"peers", peers}, {"cluster-id", "embed"},
                                  {"data-dir", dir.path() + "/m1"}, {"session-ttl-ms", "1000"}});
  REQUIRE_MESSAGE(master.has_value(), master.error().message());
  auto& leader = **master;
  leader.on_leadership([&](std::uint64_t term) {
    std::lock_guard<std::mutex> g(m);
    terms.push_back(term);
  }, [] {});
  REQUIRE(wait_for([&] { return leader.leading(); }, 10s));
  REQUIRE(wait_for([&] {
    std::lock_guard<std::mutex> g(m);
    return !terms.empty();
  }, 2s));
  CHECK(terms.front() == leader.term());

  auto worker = node::start(sys, {{"role", "worker"}, {"name", "w1"}, {"peers", peers}, {"cluster-id", "embed"},
                                  {"session-ttl-ms", "1000"}});
  REQUIRE(worker.has_value());
  auto& w = **worker;
  REQUIRE(wait_for([&] { return w.session() != 0 && leader.session() != 0; }, 10s));
  auto members = leader.members(registry::member_status::alive);
  REQUIRE(members.has_value());
  CHECK(members->size() == 2);

  // Keys, compare-and-set, watch.
  std::vector<registry::change> seen;
  int compacted = 0;
  leader.watch("/w/", [&](const registry::change& c) {
    std::lock_guard<std::mutex> g(m);
    seen.push_back(c);
  }, [&](const registry::watch_listing&) {
    std::lock_guard<std::mutex> g(m);
    ++compacted;
  });
  std::this_thread::sleep_for(200ms);
  auto p = w.put("/w/a", "1");
  REQUIRE(p.has_value());
  CHECK(p->code == registry::code::ok);
  CHECK(w.put("/w/a", "2", std::uint64_t{5})->code == registry::code::version_mismatch);
  CHECK(w.put("/w/b", "x", std::nullopt, true)->code == registry::code::ok);  // ephemeral
  CHECK(leader.remove("/w/a")->code == registry::code::ok);
  auto got = leader.get("/w/b");
  REQUIRE(got.has_value());
  REQUIRE(got->has_value());
  CHECK((*got)->session == w.session());
  CHECK(leader.list("/w/")->size() == 1);
  REQUIRE(wait_for([&] {
    std::lock_guard<std::mutex> g(m);
    return seen.size() == 3;
  }, 5s));
  CHECK(seen[0].key == "/w/a");
  CHECK(seen[1].key == "/w/b");
  CHECK(seen[2].deleted);
  CHECK(compacted == 0);

  // Locks: FIFO, fencing tokens grow.
  auto first = leader.lock("job", 2s);
  REQUIRE(first.has_value());
  std::optional<node::lock_grant> second;
  std::thread waiter([&] {
    auto g = w.lock("job", 5s);
    if (g) second = *g;
  });
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(second.has_value());
  REQUIRE(leader.unlock("job").has_value());
  waiter.join();
  REQUIRE(second.has_value());
  CHECK(second->token > first->token);
  auto timed_out = leader.lock("job", 200ms);
  CHECK_FALSE(timed_out.has_value());

  // Events, delivered until acknowledged.
  auto seq = leader.publish("hello", "w1");
  REQUIRE(seq.has_value());
  auto events = w.events();
  REQUIRE(events.has_value());
  REQUIRE(events->size() == 1);
  CHECK(events->front().payload == "hello");
  REQUIRE(w.ack_events(*seq).has_value());
  CHECK(w.events()->empty());

  // Fenced commands: a command older than one accepted is refused.
  auto term = leader.term();
  REQUIRE(leader.send_command("w1", "run task 1", term, 50).has_value());
  REQUIRE(leader.send_command("w1", "stale: a deposed leader", term - 1, 99).has_value());
  REQUIRE(leader.send_command("w1", "stale: an older lock", term, 10).has_value());
  REQUIRE(leader.send_command("w1", "run task 2", term, 51).has_value());
  std::vector<std::string> ran;
  auto run = [&](const node::command& c) {
    ran.push_back(c.payload);
    return true;
  };
  auto cmds = w.commands(run);
  REQUIRE(cmds.has_value());
  CHECK(*cmds == 2);
  REQUIRE(ran.size() == 2);
  CHECK(ran[0] == "run task 1");
  CHECK(ran[1] == "run task 2");
  CHECK(*w.commands(run) == 0);  // acknowledged
  CHECK(w.events()->empty());

  // Change notifications.
  std::vector<std::size_t> sizes;
  std::uint64_t seen_leader = 0;
  leader.on_leader_change([&](std::uint64_t id, std::uint64_t) {
    std::lock_guard<std::mutex> g(m);
    seen_leader = id;
  });
  leader.on_members([&](const std::vector<registry::member>& all) {
    std::lock_guard<std::mutex> g(m);
    sizes.push_back(all.size());
  });
  REQUIRE(wait_for([&] {
    std::lock_guard<std::mutex> g(m);
    return !sizes.empty() && seen_leader == 1;
  }, 5s));

  // A worker that leaves: its ephemeral key goes with its session.
  worker->reset();
  REQUIRE(wait_for([&] { auto g = leader.get("/w/b"); return g && !g->has_value(); }, 5s));
}

TEST_CASE("embedding: bad settings are refused with the key named, and nothing starts") {
  caf::actor_system sys{test::client_config()};
  auto n = node::start(sys, {{"role", "master"}, {"peers", "1=127.0.0.1:1"}, {"cluster-id", "x"}, {"bogus", "1"}});
  REQUIRE_FALSE(n.has_value());
  CHECK(n.error().message().find("unknown key 'bogus'") != std::string::npos);
  auto m = node::start(sys, {{"role", "master"}, {"peers", "1=127.0.0.1:1"}, {"cluster-id", "x"}});
  REQUIRE_FALSE(m.has_value());
  CHECK(m.error().message().find("id:") != std::string::npos);
}

TEST_CASE("watch: a watcher the history no longer reaches is told, gets a listing, and continues after it") {
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  auto peers = "1=127.0.0.1:" + std::to_string(test::free_port());
  // A history of 4 changes: a session ending with 10 ephemeral keys deletes
  // them all at one revision, more than a watcher can find in the history.
  auto master = node::start(sys, {{"role", "master"}, {"id", "1"}, {"peers", peers}, {"cluster-id", "embed"},
                                  {"data-dir", dir.path() + "/m1"}, {"session-ttl-ms", "1000"},
                                  {"watch-history", "4"}});
  REQUIRE_MESSAGE(master.has_value(), master.error().message());
  auto& leader = **master;
  REQUIRE(wait_for([&] { return leader.leading() && leader.session() != 0; }, 10s));
  auto worker = node::start(sys, {{"role", "worker"}, {"name", "w1"}, {"peers", peers}, {"cluster-id", "embed"},
                                  {"session-ttl-ms", "1000"}});
  REQUIRE(worker.has_value());
  REQUIRE(wait_for([&] { return (*worker)->session() != 0; }, 10s));

  // The watcher's view of /c/: changes applied as they come, a listing replacing it.
  std::mutex m;
  std::map<std::string, std::string> view;
  std::vector<registry::watch_listing> listings;
  registry::revision last = 0;
  bool in_order = true;
  leader.watch("/c/", [&](const registry::change& c) {
    std::lock_guard<std::mutex> g(m);
    in_order = in_order && c.rev > last;
    last = c.rev;
    if (c.deleted) view.erase(c.key);
    else view[c.key] = c.value;
  }, [&](const registry::watch_listing& l) {
    std::lock_guard<std::mutex> g(m);
    in_order = in_order && l.rev >= last;
    last = l.rev;
    listings.push_back(l);
    view.clear();
    for (const auto& [k, kv] : l.keys) view[k] = kv.value;
  });
  auto registry_view = [&] {
    std::map<std::string, std::string> out;
    auto listed = leader.list("/c/");
    if (listed) for (const auto& [k, kv] : *listed) out[k] = kv.value;
    return out;
  };
  auto converged = [&] {
    auto want = registry_view();
    std::lock_guard<std::mutex> g(m);
    return view == want;
  };
  REQUIRE(leader.put("/c/keep", "k")->code == registry::code::ok);
  for (int i = 0; i < 10; ++i) {
    REQUIRE((*worker)->put("/c/eph" + std::to_string(i), "e", std::nullopt, true)->code == registry::code::ok);
  }
  REQUIRE(wait_for(converged, 10s));
  worker->reset();  // its session closes: 10 deletions at one revision
  REQUIRE(wait_for([&] {
    auto l = leader.list("/c/");
    return l && l->size() == 1;
  }, 10s));
  CHECK_MESSAGE(wait_for(converged, 10s), "the watcher's view missed changes");
  {
    std::lock_guard<std::mutex> g(m);
    REQUIRE_FALSE(listings.empty());
    CHECK(listings.back().keys.size() == 1);
    CHECK(listings.back().rev > listings.back().after);
  }
  // Changes continue after the listing.
  auto after = leader.put("/c/after", "a");
  REQUIRE(after->code == registry::code::ok);
  CHECK(wait_for(converged, 10s));
  std::lock_guard<std::mutex> g(m);
  CHECK(view.count("/c/after"));
  CHECK(in_order);
}

TEST_CASE("commands: acknowledged only once run, so a command not run comes again") {
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  auto peers = "1=127.0.0.1:" + std::to_string(test::free_port());
  auto master = node::start(sys, {{"role", "master"}, {"id", "1"}, {"peers", peers}, {"cluster-id", "embed"},
                                  {"data-dir", dir.path() + "/m1"}, {"session-ttl-ms", "1000"}});
  REQUIRE_MESSAGE(master.has_value(), master.error().message());
  auto& leader = **master;
  REQUIRE(wait_for([&] { return leader.leading(); }, 10s));
  auto worker = node::start(sys, {{"role", "worker"}, {"name", "w1"}, {"peers", peers}, {"cluster-id", "embed"},
                                  {"session-ttl-ms", "1000"}});
  REQUIRE(worker.has_value());
  auto& w = **worker;
  REQUIRE(wait_for([&] { return w.session() != 0; }, 10s));
  auto term = leader.term();
  for (int i = 1; i <= 3; ++i) REQUIRE(leader.send_command("w1", "task " + std::to_string(i), term, 5).has_value());
  // The member fails on task 2 (it could not act, or crashed while acting).
  std::vector<std::string> ran;
  auto first = w.commands([&](const node::command& c) {
    if (c.payload == "task 2") return false;
    ran.push_back(c.payload);
    return true;
  });
  REQUIRE(first.has_value());
  CHECK(*first == 1);
  // Task 2 is handed over again, then task 3; task 1 is not.
  auto second = w.commands([&](const node::command& c) {
    ran.push_back(c.payload);
    return true;
  });
  REQUIRE(second.has_value());
  CHECK(*second == 2);
  CHECK(ran == std::vector<std::string>{"task 1", "task 2", "task 3"});
  CHECK(w.events()->empty());
}
