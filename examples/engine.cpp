// A small compute engine that embeds conclave (roles/node.hpp).
//
//   engine [conclave settings: --role, --id, --name, --peers, --cluster-id, --data-dir, ...]
//          [--tasks 100] [--work-ms 20]
//
// The leader (a master, while it leads and holds the "engine/leader" lock,
// which it releases when it stops leading) assigns tasks to alive workers, a
// few at a time to the least loaded, and reassigns the tasks of workers that
// die (a worker declared dead while frozen may still finish a task it had
// begun, so a task can run twice); a suspect worker keeps its tasks, since it
// may still run them. Workers run what they are assigned. Every assignment
// carries the assigning leader's term and the fencing token of its lock; a
// worker refuses an assignment with a token lower than one it has already
// seen, so a deposed leader cannot make two workers run the same task. State
// lives in the registry:
//   /engine/assign/<task> = "worker=W term=T token=K"   (created only if absent: one assignment at a time)
//   /engine/done/<task>   = worker that ran it          (create-only)
//
// Nothing polls: the loops wait until the registry pushes a change under
// /engine/ or in the member list (node::watch, node::on_members), or
// leadership changes; they sleep only to back off after an error.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "actors/log.hpp"
#include "roles/node.hpp"

using namespace conclave;
using namespace std::chrono_literals;

namespace {

std::atomic<bool> stopping{false};

// Wakes the loops when something they look at may have changed.
struct changes_signal {
  std::mutex mutex;
  std::condition_variable cv;
  std::uint64_t generation = 0;
  void bump() {
    std::lock_guard<std::mutex> guard(mutex);
    ++generation;
    cv.notify_all();
  }
  // Waits until bump() is called after `seen` (stopping and losing
  // leadership bump too) or `give_up`; returns the generation.
  std::uint64_t wait(std::uint64_t seen, const std::function<bool()>& give_up) {
    std::unique_lock<std::mutex> guard(mutex);
    cv.wait(guard, [&] { return generation != seen || give_up(); });
    return generation;
  }
  std::uint64_t current() {
    std::lock_guard<std::mutex> guard(mutex);
    return generation;
  }
};
changes_signal changed;
constexpr std::size_t tasks_per_worker = 3;  // assigned and not done, at a time

std::string task_key(int t) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06d", t);
  return buf;
}

// The leader's loop, for one term: assign every task not done to a live
// worker. `leading` holds the term this process leads in (0: none).
void lead(node& n, std::uint64_t term, int tasks, const std::atomic<std::uint64_t>& leading) {
  auto still = [&] { return leading == term && !stopping; };
  // The previous leader may still hold the lock (it hands it over when it
  // sees it no longer leads, or loses it with its session): keep asking.
  std::optional<node::lock_grant> lock;
  while (still() && !lock) {
    auto l = n.lock("engine/leader", 1s);
    if (l) lock = *l;
    else log_line("engine {}: waiting for the leader lock: {}", n.member_id(), l.error().message());
  }
  if (!lock) return;
  log_line("engine {}: leading in term {} with fencing token {}", n.member_id(), term, lock->token);
  bool reported = false;
  for (auto seen = changed.current(); still(); seen = changed.wait(seen, [&] { return !still(); })) {
    auto done = n.list("/engine/done/");
    auto assigned = n.list("/engine/assign/");
    auto members = n.members();
    if (!done || !assigned || !members) {
      std::this_thread::sleep_for(50ms);  // no leader: back off, then look again
      changed.bump();
      continue;
    }
    // New tasks go to alive workers; a suspect one (late heartbeats, perhaps
    // frozen) keeps its tasks until it is dead, as it may still run them.
    std::vector<std::string> workers;
    std::set<std::string> live;
    for (const auto& m : *members) {
      if (m.role != registry::member_role::worker) continue;
      if (m.status == registry::member_status::alive) workers.push_back(m.id);
      if (m.status == registry::member_status::alive || m.status == registry::member_status::suspect) live.insert(m.id);
    }
    std::set<std::string> done_tasks, busy;
    std::map<std::string, std::size_t> in_flight;  // per alive worker
    for (const auto& w : workers) in_flight[w] = 0;
    for (const auto& [k, kv] : *done) done_tasks.insert(k.substr(std::strlen("/engine/done/")));
    for (const auto& [k, kv] : *assigned) {
      auto task = k.substr(std::strlen("/engine/assign/"));
      auto worker = kv.value.substr(7, kv.value.find(' ') - 7);  // "worker=W ..."
      if (!live.count(worker) || done_tasks.count(task)) {
        // Its worker died (or it is done): free the task, but only the
        // assignment we looked at (compare-and-set on its version).
        (void)n.remove(k, kv.version);
      } else {
        busy.insert(task);
        if (in_flight.count(worker)) ++in_flight[worker];
      }
    }
    if (static_cast<int>(done_tasks.size()) >= tasks) {
      if (!reported) log_line("engine {}: all {} tasks done", n.member_id(), tasks);
      reported = true;
    } else {
      for (int t = 0; t < tasks; ++t) {
        auto key = task_key(t);
        if (done_tasks.count(key) || busy.count(key)) continue;
        // A few tasks per worker at a time, to the least loaded: the leader
        // keeps assigning as workers finish.
        auto least = std::min_element(in_flight.begin(), in_flight.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; });
        if (least == in_flight.end() || least->second >= tasks_per_worker) break;
        const auto& w = least->first;
        auto value = "worker=" + w + " term=" + std::to_string(term) + " token=" + std::to_string(lock->token);
        // Create-only: a task has at most one assignment, even if an earlier
        // attempt's outcome was unknown.
        auto r = n.put("/engine/assign/" + key, value, std::uint64_t{0});
        if (!r) break;
        busy.insert(key);
        ++least->second;
      }
    }
  }
  // Hand the lock to the next leader: this process may live on (a leadership
  // transfer), and its session with it.
  for (;;) {
    auto released = n.unlock("engine/leader");
    if (released || released.error().code == errc::invalid_argument || stopping) break;  // done, or not ours
    std::this_thread::sleep_for(50ms);
  }
  log_line("engine {}: no longer leading term {}", n.member_id(), term);
}

// A worker's loop: run what is assigned to it, refusing stale leaders.
void work(node& n, int work_ms) {
  std::uint64_t highest_token = 0;
  auto mine = "worker=" + n.member_id() + " ";
  for (auto seen = changed.current(); !stopping; seen = changed.wait(seen, [] { return stopping.load(); })) {
    auto assigned = n.list("/engine/assign/");
    if (!assigned) {
      std::this_thread::sleep_for(50ms);  // no leader: back off, then look again
      changed.bump();
      continue;
    }
    for (const auto& [k, kv] : *assigned) {
      if (kv.value.rfind(mine, 0) != 0) continue;
      auto task = k.substr(std::strlen("/engine/assign/"));
      auto token = std::strtoull(kv.value.c_str() + kv.value.find("token=") + 6, nullptr, 10);
      if (token < highest_token) {
        log_line("engine {}: refusing task {} from a deposed leader (token {} < {})", n.member_id(), task, token,
                 highest_token);
        (void)n.remove(k, kv.version);
        continue;
      }
      highest_token = token;
      auto done = n.get("/engine/done/" + task);
      if (!done || *done) continue;  // unknown or already done: the leader cleans up
      std::this_thread::sleep_for(std::chrono::milliseconds(work_ms));
      log_line("engine {}: executed task {} (token {})", n.member_id(), task, token);
      // Record it until the answer is certain: a create-only put that times
      // out may have happened; asked again it says version_mismatch.
      while (!stopping) {
        auto r = n.put("/engine/done/" + task, n.member_id(), std::uint64_t{0});
        if (r && (r->code == registry::code::ok || r->code == registry::code::version_mismatch)) break;
        std::this_thread::sleep_for(20ms);  // no answer: back off, then ask again
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  settings values;
  int tasks = 100;
  int work_ms = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key == "--tasks") tasks = std::atoi(argv[i + 1]);
    else if (key == "--work-ms") work_ms = std::atoi(argv[i + 1]);
    else if (key == "-r") values["role"] = argv[i + 1];
    else if (key.rfind("--", 0) == 0) values[key.substr(2)] = argv[i + 1];
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.workers", 0);  // as the conclave program (README, "Embedding conclave")
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto n = node::start(sys, values);
  if (!n) {
    std::fprintf(stderr, "engine: %s\n", n.error().message().c_str());
    return 2;
  }
  auto& me = **n;
  // Every change under /engine/ and in the member list wakes the loops.
  me.watch("/engine/", [](const registry::change&) { changed.bump(); },
           [](const registry::watch_listing&) { changed.bump(); });
  me.on_members([](const std::vector<registry::member>&) { changed.bump(); });
  std::thread worker;
  std::atomic<std::uint64_t> leading{0};  // the term this process leads in; 0: none
  std::thread leader;
  if (me.is_master()) {
    me.on_leadership(
        [&](std::uint64_t term) {
          leading = term;
          // One term's loop at a time: each waits for the previous one to
          // release the lock (not here: this runs on a node thread).
          leader = std::thread([&, term, previous = std::move(leader)]() mutable {
            if (previous.joinable()) previous.join();
            lead(me, term, tasks, leading);
          });
        },
        [&] {
          leading = 0;
          changed.bump();
        });
  } else {
    worker = std::thread([&] { work(me, work_ms); });
  }
  int sig = 0;
  sigwait(&signals, &sig);
  stopping = true;
  changed.bump();
  // No leader loop starts from here on: on_leadership returns once a running
  // callback is done, and `leader` is then main's alone to join.
  if (me.is_master()) me.on_leadership({}, {});
  leading = 0;
  if (leader.joinable()) leader.join();
  if (worker.joinable()) worker.join();
  n->reset();
  return 0;
}
