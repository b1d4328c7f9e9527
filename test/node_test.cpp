// The embedding API: a master and a worker started inside the test's own
// actor system, used through the blocking facade.
#include <doctest/doctest.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "roles/node.hpp"
#include "roles/registry_reads.hpp"
#include "schema/client_codec.hpp"
#include "schema/push_codec.hpp"
#include "schema/registry_codec.hpp"
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

// One embedded master (leading) and one registered worker "w1", in one
// actor system (destroyed after both nodes).
// Ends node `n` where it goes out of scope. A node's callbacks run until it
// is destroyed (its own shutdown is news to them: its member leaves, its
// leadership ends), so a test declares one after the state its callbacks
// use: the node ends first, whatever REQUIRE leaves the test early.
struct stop_before {
  std::unique_ptr<node>& n;
  ~stop_before() { n.reset(); }
};

struct master_and_worker {
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  std::unique_ptr<node> master, worker;
  master_and_worker() {
    auto peers = "1=127.0.0.1:" + std::to_string(test::free_port());
    auto m = node::start(sys, {{"role", "master"}, {"id", "1"}, {"peers", peers}, {"cluster-id", "embed"},
                               {"data-dir", dir.path() + "/m1"}, {"session-ttl-ms", "1000"}});
    REQUIRE_MESSAGE(m.has_value(), m.error().message());
    master = std::move(*m);
    REQUIRE(wait_for([&] { return master->leading(); }, 10s));
    auto w = node::start(sys, {{"role", "worker"}, {"name", "w1"}, {"peers", peers}, {"cluster-id", "embed"},
                               {"session-ttl-ms", "1000"}});
    REQUIRE(w.has_value());
    worker = std::move(*w);
    REQUIRE(wait_for([&] { return worker->session() != 0; }, 10s));
  }
};

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

  // Keys, compare-and-set, watch (from the registry's first revision, so
  // that no change below can be made before the watch starts).
  std::vector<registry::change> seen;
  int compacted = 0;
  stop_before stop_watching{*master};
  leader.watch("/w/", [&](const registry::change& c) {
    std::lock_guard<std::mutex> g(m);
    seen.push_back(c);
  }, [&](const registry::watch_listing&) {
    std::lock_guard<std::mutex> g(m);
    ++compacted;
  }, registry::revision{0});
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
  stop_before stop_listening{*master};
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

TEST_CASE("embedding: calls from 8 threads at once all succeed and each sees its own writes") {
  master_and_worker f;
  // Both facades: the master's reaches its server in-process, the worker's over the network.
  std::atomic<int> failures{0};
  std::vector<std::string> why(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto& n = t % 2 == 0 ? *f.master : *f.worker;
      for (int i = 0; i < 20; ++i) {
        auto key = "/par/" + std::to_string(t) + "/" + std::to_string(i % 4);
        auto value = std::to_string(t) + ":" + std::to_string(i);
        auto put = n.put(key, value);
        auto got = n.get(key);
        if (!put || put->code != registry::code::ok || !got || !got->has_value() || (*got)->value != value) {
          why[static_cast<std::size_t>(t)] = put ? (got ? "read another value" : got.error().message())
                                                 : put.error().message();
          ++failures;
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& w : why) CHECK_MESSAGE(w.empty(), w);
  CHECK(failures == 0);
  auto all = f.master->list("/par/");
  REQUIRE(all.has_value());
  CHECK(all->size() == 8 * 4);
}

TEST_CASE("embedding: a master's own process reaches it with no socket, even where its address does not lead back") {
  // It listens on 127.0.0.1 but is named by 127.0.0.2 (an address behind a
  // NAT without hairpinning, say): nothing in this process can connect there.
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  auto port = std::to_string(test::free_port());
  auto n = node::start(sys, {{"role", "master_and_worker"}, {"id", "1"}, {"peers", "1=127.0.0.2:" + port},
                             {"listen", "127.0.0.1:" + port}, {"cluster-id", "embed"},
                             {"data-dir", dir.path() + "/m1"}, {"session-ttl-ms", "1000"}});
  REQUIRE_MESSAGE(n.has_value(), n.error().message());
  auto& m = **n;
  REQUIRE(wait_for([&] { return m.leading(); }, 10s));
  // The member agent registers; the facade writes and reads; a watch is pushed.
  CHECK(wait_for([&] { return m.session() != 0; }, 10s));
  std::mutex mu;
  std::vector<std::string> seen;
  stop_before stop{*n};
  m.watch("/own/", [&](const registry::change& c) {
    std::lock_guard<std::mutex> g(mu);
    seen.push_back(c.value);
  }, [](const registry::watch_listing&) {}, registry::revision{0});
  auto put = m.put("/own/k", "here");
  REQUIRE_MESSAGE(put.has_value(), put.error().message());
  CHECK(put->code == registry::code::ok);
  auto got = m.get("/own/k");
  REQUIRE(got.has_value());
  REQUIRE(got->has_value());
  CHECK((*got)->value == "here");
  CHECK(wait_for([&] {
    std::lock_guard<std::mutex> g(mu);
    return seen.size() == 1 && seen[0] == "here";
  }, 5s));
}

namespace {

// What the actor host below reports to the test.
using reply_atom = caf::atom_constant<caf::atom("reply")>;

// An actor host: through the node's typed handle only, it subscribes to a
// watch, puts a key, reads it back, and reports the reply and the push.
caf::behavior actor_host(caf::event_based_actor* self, raft::gateway_interface server, caf::actor report) {
  const std::string cluster = "embed";
  auto fail = [=](const std::string& why) { self->send(report, reply_atom::value, std::string("failed"), why); };
  auto subscription = registry::subscription{registry::watch_subscription{"/actor/", registry::revision{0}}};
  self->request(server, 10s, pushsub_atom::value, std::uint64_t{7}, wire::encode_subscription(subscription, cluster))
      .then(
          [=](const std::string& refused) {
            if (!refused.empty()) return fail("subscription refused: " + refused);
            auto put = client::propose{wire::encode_command(registry::put{"/actor/k", "typed", 0, std::nullopt})};
            self->request(server, 10s, client_atom::value, wire::encode_request(put, cluster))
                .then(
                    [=](const std::string& reply) {
                      auto r = wire::decode_response(reply);
                      if (!r || !std::holds_alternative<client::committed>(*r)) return fail("put not committed");
                      auto res = wire::decode_result(std::get<client::committed>(*r).result);
                      if (!res || res->outcome.code != registry::code::ok) return fail("put refused");
                      auto get = client::read{wire::encode_query(registry::get_key{"/actor/k"})};
                      self->request(server, 10s, client_atom::value, wire::encode_request(get, cluster))
                          .then(
                              [=](const std::string& reply) {
                                auto r = wire::decode_response(reply);
                                if (!r || !std::holds_alternative<client::read_result>(*r)) return fail("read failed");
                                auto got = wire::decode_answer<registry::get_key>(
                                    std::get<client::read_result>(*r).result);
                                if (!got || !got->value) return fail("the key is not there");
                                self->send(report, reply_atom::value, std::string("read"), got->value->value);
                              },
                              [=](caf::error&) { fail("no answer to the read"); });
                    },
                    [=](caf::error&) { fail("no answer to the put"); });
          },
          [=](caf::error&) { fail("no answer to the subscription"); });
  return {
      [=](push_atom, std::uint64_t id, std::uint8_t kind, const std::string& state) {
        auto p = wire::decode_push(kind, state);
        if (id != 7 || !p || p->kind != registry::push_kind::changes) return;
        for (const auto& c : p->state.history) {
          if (c.key == "/actor/k") self->send(report, reply_atom::value, std::string("pushed"), c.value);
        }
      },
  };
}

}  // namespace

TEST_CASE("embedding: an actor host puts, reads and is pushed a watch through the typed handle alone") {
  master_and_worker f;
  caf::scoped_actor test{f.sys};
  auto host = f.sys.spawn(actor_host, f.master->gateway(), caf::actor(test));
  std::map<std::string, std::string> got;
  for (int i = 0; i < 2; ++i) {
    test->receive([&](reply_atom, const std::string& what, const std::string& value) { got[what] = value; },
                  caf::after(10s) >> [] {});
  }
  caf::anon_send_exit(host, caf::exit_reason::user_shutdown);
  CHECK_MESSAGE(!got.count("failed"), got["failed"]);
  CHECK(got["read"] == "typed");
  CHECK(got["pushed"] == "typed");
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
  stop_before stop{*master};
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
  }, registry::revision{0});  // from the start: the puts below may come before the watcher's first read
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
  master_and_worker nodes;
  auto& leader = *nodes.master;
  auto& w = *nodes.worker;
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

TEST_CASE("commands: pushed to the member as they are published, each run once, in order") {
  master_and_worker nodes;
  auto& leader = *nodes.master;
  auto& w = *nodes.worker;
  std::mutex m;
  std::vector<std::string> ran;
  w.on_commands([&](const node::command& c) {
    std::lock_guard<std::mutex> g(m);
    ran.push_back(c.payload);
    return true;
  });
  auto term = leader.term();
  for (int i = 1; i <= 5; ++i) REQUIRE(leader.send_command("w1", "task " + std::to_string(i), term, 5).has_value());
  // Nobody calls commands(): the pushes alone hand them over.
  REQUIRE(wait_for([&] {
    std::lock_guard<std::mutex> g(m);
    return ran.size() >= 5;
  }, 10s));
  CHECK(wait_for([&] { auto e = w.events(); return e && e->empty(); }, 10s));  // acknowledged
  std::lock_guard<std::mutex> g(m);
  CHECK(ran == std::vector<std::string>{"task 1", "task 2", "task 3", "task 4", "task 5"});
}

TEST_CASE("members: a member listener is pushed a joining member and a leaving one") {
  master_and_worker nodes;
  std::mutex m;
  std::vector<std::string> seen;  // one digest per call
  stop_before stop{nodes.master};
  nodes.master->on_members([&](const std::vector<registry::member>& list) {
    std::string d;
    for (const auto& x : list) d += x.id + "=" + registry::to_string(x.status) + " ";
    std::lock_guard<std::mutex> g(m);
    seen.push_back(d);
  });
  auto has = [&](const std::string& what) {
    std::lock_guard<std::mutex> g(m);
    return !seen.empty() && seen.back().find(what) != std::string::npos;
  };
  REQUIRE(wait_for([&] { return has("w1=alive"); }, 10s));
  nodes.worker.reset();  // leaves
  CHECK(wait_for([&] { return has("w1=left"); }, 10s));
}

TEST_CASE("commands: a run that calls commands() again returns; the inner call hands nothing over") {
  master_and_worker nodes;
  auto& leader = *nodes.master;
  auto& w = *nodes.worker;
  auto term = leader.term();
  for (int i = 1; i <= 2; ++i) REQUIRE(leader.send_command("w1", "task " + std::to_string(i), term, 5).has_value());
  std::vector<std::string> ran;
  std::vector<expected<std::size_t>> inner;
  std::optional<expected<std::size_t>> outer;
  std::atomic<bool> finished{false};
  std::thread caller([&] {
    outer = w.commands([&](const node::command& c) {
      ran.push_back(c.payload);
      inner.push_back(w.commands([&](const node::command& again) {
        ran.push_back("inner: " + again.payload);
        return true;
      }));
      return true;
    });
    finished = true;
  });
  if (!wait_for([&] { return finished.load(); }, 20s)) {
    // The call cannot be interrupted: report and end the process.
    std::fprintf(stderr, "FAIL: commands() called from within run did not return within 20 s (deadlock)\n");
    std::_Exit(1);
  }
  caller.join();
  REQUIRE(outer.has_value());
  REQUIRE(outer->has_value());
  CHECK(**outer == 2);
  CHECK(ran == std::vector<std::string>{"task 1", "task 2"});
  REQUIRE(inner.size() == 2);
  for (const auto& r : inner) CHECK((r.has_value() && *r == 0));
  CHECK(w.events()->empty());
}

namespace {

// Whether `session` holds or waits for lock `name`, as the cluster has it;
// nullopt when unreadable.
std::optional<bool> involved(test::process_cluster& cluster, const std::string& name, std::uint64_t session) {
  auto r = ask(cluster.client(), registry::lock_query{name}, 5s);
  if (!r) return std::nullopt;
  if (!r->value) return false;
  const auto& w = r->value->waiters;
  return r->value->holder == session || std::find(w.begin(), w.end(), session) != w.end();
}

// A failed lock call must leave nothing behind: checked for a while, since
// a request the cluster still had queued may apply late.
void check_holds_nothing(test::process_cluster& cluster, const std::string& name, std::uint64_t s) {
  auto until = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < until) {
    auto now_involved = involved(cluster, name, s);
    REQUIRE_MESSAGE(now_involved != std::optional<bool>(true),
                    "the lock call failed, yet session " << s << " holds or waits for '" << name << "'");
    std::this_thread::sleep_for(50ms);
  }
}

// A worker node in the test's actor system against one real master process
// that the test can freeze (SIGSTOP); the master's lock state read through
// the cluster's own client.
struct frozen_master_fixture {
  test::process_cluster cluster{1, {"-r", "master", "--session-ttl-ms", "1000", "--member-heartbeat-ms", "100"},
                                test::conclave_binary()};
  caf::actor_system sys{test::client_config()};
  std::unique_ptr<node> worker;

  frozen_master_fixture() {
    REQUIRE(cluster.wait_for_leader(10s));
    // A TTL far longer than any freeze below: the session outlives them all.
    auto w = node::start(sys, {{"role", "worker"}, {"name", "w"}, {"peers", cluster.peers()},
                               {"cluster-id", cluster.cluster_id}, {"session-ttl-ms", "30000"},
                               {"member-heartbeat-ms", "100"}, {"no-master-timeout-ms", "60000"}});
    REQUIRE_MESSAGE(w.has_value(), (w ? std::string() : w.error().message()));
    worker = std::move(*w);
    REQUIRE(wait_for([&] { return worker->session() != 0; }, 10s));
  }

  registry::outcome run(const registry::command& cmd) {
    auto r = cluster.client().propose(wire::encode_command(cmd), 10s);
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
    auto res = wire::decode_result(r->result);
    REQUIRE(res.has_value());
    return res->outcome;
  }

  std::optional<bool> involved(const std::string& name, std::uint64_t session) {
    return ::involved(cluster, name, session);
  }
  void check_holds_nothing(const std::string& name, std::uint64_t s) { ::check_holds_nothing(cluster, name, s); }
};

}  // namespace

TEST_CASE("a failed lock call leaves the member holding nothing: an acquire whose outcome is unknown") {
  frozen_master_fixture f;
  auto pid = f.cluster.at(1).pid;
  // The acquire reaches the frozen master and waits there: the call cannot
  // know whether it took effect until the master answers again.
  auto session = f.worker->session();
  REQUIRE(test::freeze(pid));
  std::optional<expected<node::lock_grant>> result;
  std::thread caller([&] { result = f.worker->lock("unknown", 1500ms); });
  std::this_thread::sleep_for(3s);  // past the acquire's attempt (1 s) and the call's timeout
  ::kill(pid, SIGCONT);
  caller.join();
  REQUIRE(result.has_value());
  if (*result) {
    CHECK(f.involved("unknown", session) == std::optional<bool>(true));
  } else {
    f.check_holds_nothing("unknown", session);
  }
}

TEST_CASE("a failed lock call leaves the member holding nothing: granted while the wait is given up") {
  frozen_master_fixture f;
  auto pid = f.cluster.at(1).pid;
  auto other = f.run(registry::open_session{"other", 60000}).value;
  REQUIRE(f.run(registry::acquire_lock{"crossed", other, false}).code == registry::code::ok);
  // The releaser's connection is made now: a frozen master accepts none.
  caf::actor_system releaser_sys{test::client_config()};
  raft_client releaser_client(releaser_sys, f.cluster.cluster_id, f.cluster.client().endpoints());
  REQUIRE(releaser_client.status(f.cluster.at(1).address).has_value());
  auto session = f.worker->session();
  auto started = std::chrono::steady_clock::now();
  std::optional<expected<node::lock_grant>> result;
  const auto timeout = 5s;
  std::thread caller([&] { result = f.worker->lock("crossed", timeout); });
  bool queued = wait_for([&] {
    auto r = ask(f.cluster.client(), registry::lock_query{"crossed"}, 2s);
    return r && r->value && r->value->waiters == std::vector<registry::session_id>{session};
  }, timeout - 1s);
  // Frozen with the worker's poll queued; the holder's release queued after
  // it; the call times out meanwhile. Once the master runs again, the poll
  // still sees the lock held by `other`, and the release grants the lock to
  // the worker just before its cancel arrives.
  bool stopped = test::freeze(pid);  // checked once the threads are joined
  auto frozen = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(300ms);
  std::thread releaser([&] {
    (void)releaser_client.propose(wire::encode_command(registry::release_lock{"crossed", other}), 20s);
  });
  // The call's time runs out during the freeze (a second to spare).
  std::this_thread::sleep_until(std::max(started + timeout + 1s, frozen + 1500ms));
  ::kill(pid, SIGCONT);
  caller.join();
  releaser.join();
  REQUIRE(queued);
  REQUIRE(stopped);
  REQUIRE(result.has_value());
  if (*result) {
    CHECK(f.involved("crossed", session) == std::optional<bool>(true));
  } else {
    f.check_holds_nothing("crossed", session);
  }
}

TEST_CASE("a failed lock call leaves the member holding nothing: an unknown acquire, then no leader for a while") {
  // Elections take 2-3 s: the leader leads on for a while after its
  // followers freeze. Masters suspect each other only after 6 s.
  test::process_cluster cluster{3,
                                {"-r", "master", "--election-ticks", "200:300", "--session-ttl-ms", "60000",
                                 "--member-heartbeat-ms", "2000"},
                                test::conclave_binary()};
  auto leader = cluster.wait_for_leader(20s);
  REQUIRE(leader);
  caf::actor_system sys{test::client_config()};
  auto w = node::start(sys, {{"role", "worker"}, {"name", "w"}, {"peers", cluster.peers()},
                             {"cluster-id", cluster.cluster_id}, {"session-ttl-ms", "60000"},
                             {"member-heartbeat-ms", "100"}, {"no-master-timeout-ms", "120000"}});
  REQUIRE_MESSAGE(w.has_value(), (w ? std::string() : w.error().message()));
  auto& worker = **w;
  REQUIRE(wait_for([&] { return worker.session() != 0; }, 10s));
  REQUIRE(worker.put("/warm", "x")->code == registry::code::ok);  // the worker's requests now go to the leader
  auto session = worker.session();
  std::vector<std::uint64_t> followers;
  for (const auto& m : cluster.members()) {
    if (m.id != *leader) followers.push_back(m.id);
  }
  // The followers freeze: the leader takes the acquire into its log but
  // cannot commit it. Then they die: it stops leading, and for a while no
  // server leads, so the acquire's outcome is unknown and a resend finds no
  // leader (unavailable).
  for (auto id : followers) REQUIRE(test::freeze(cluster.at(id).pid));
  auto before = cluster.status(*leader);
  REQUIRE(before);
  std::atomic<bool> returned{false};
  std::optional<expected<node::lock_grant>> result;
  std::thread caller([&] {
    result = worker.lock("unsettled", 1s);
    returned = true;
  });
  REQUIRE(wait_for([&] {
    auto s = cluster.status(*leader);
    return s && s->last_index > before->last_index;
  }, 5s));
  for (auto id : followers) cluster.signal(id, SIGKILL);
  // Long enough for a call that gives up on `unavailable` to have returned.
  (void)wait_for([&] { return returned.load(); }, 15s);
  // One follower comes back: the old leader's log is the longer, so it leads
  // again and commits the acquire.
  cluster.start(followers[0]);
  REQUIRE(cluster.wait_for_leader(30s));
  caller.join();
  REQUIRE(result.has_value());
  if (*result) {
    CHECK(involved(cluster, "unsettled", session) == std::optional<bool>(true));
  } else {
    INFO("the lock call failed: " << result->error().message());
    check_holds_nothing(cluster, "unsettled", session);
  }
}

TEST_CASE("commands: a command that ran is reported even if its acknowledgement fails, and is not run again") {
  frozen_master_fixture f;
  auto pid = f.cluster.at(1).pid;
  REQUIRE(f.run(registry::publish_event{"leader", "w", "fenced 1 1\ntask"}).code == registry::code::ok);
  // The master freezes while the command runs: its acknowledgement gets no answer.
  std::vector<std::string> ran;
  bool frozen = false;
  auto first = f.worker->commands([&](const node::command& c) {
    ran.push_back(c.payload);
    frozen = test::freeze(pid);
    return true;
  });
  ::kill(pid, SIGCONT);
  REQUIRE(frozen);
  REQUIRE_MESSAGE(first.has_value(), (first ? std::string() : first.error().message()));
  CHECK(*first == 1);
  auto second = f.worker->commands([&](const node::command& c) {
    ran.push_back(c.payload);
    return true;
  });
  REQUIRE(second.has_value());
  CHECK(*second == 0);
  CHECK(ran == std::vector<std::string>{"task"});
  CHECK(wait_for([&] {
    auto e = f.worker->events();
    return e && e->empty();
  }, 10s));
}

TEST_CASE("embedding: a master node that stops frees its address in the host's actor system; a new one starts there") {
  test::temp_dir dir;
  caf::actor_system sys{test::client_config()};
  auto peers = "1=127.0.0.1:" + std::to_string(test::free_port());
  settings s{{"role", "master"}, {"id", "1"}, {"peers", peers}, {"cluster-id", "embed"}, {"data-dir", dir.path() + "/m1"}};
  auto first = node::start(sys, s);
  REQUIRE_MESSAGE(first.has_value(), first.error().message());
  REQUIRE(wait_for([&] { return (*first)->leading(); }, 10s));
  REQUIRE((*first)->put("k", "v").has_value());
  first->reset();
  // The same master again, in the same process: same address, same data.
  auto again = node::start(sys, s);
  REQUIRE_MESSAGE(again.has_value(), again.error().message());
  REQUIRE(wait_for([&] { return (*again)->leading(); }, 10s));
  auto got = (*again)->get("k");
  REQUIRE(got.has_value());
  REQUIRE(got->has_value());
  CHECK((*got)->value == "v");
}
