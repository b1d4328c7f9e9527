// A small compute engine that embeds conclave (roles/node.hpp).
//
//   engine [conclave settings: --role, --id, --name, --peers, --cluster-id, --data-dir, ...]
//          [--tasks 100] [--work-ms 20]
//
// The leader (a master, while it leads) assigns tasks to live workers and
// reassigns the tasks of workers that die; workers run what they are
// assigned. Every assignment carries the assigning leader's term and the
// fencing token of its "engine/leader" lock; a worker refuses an assignment
// with a token lower than one it has already seen, so a deposed leader
// cannot make two workers run the same task. State lives in the registry:
//   /engine/assign/<task> = "worker=W term=T token=K"   (created only if absent: one owner per task)
//   /engine/done/<task>   = worker that ran it          (create-only)
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "actors/log.hpp"
#include "roles/node.hpp"

using namespace conclave;
using namespace std::chrono_literals;

namespace {

std::atomic<bool> stopping{false};

std::string task_key(int t) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06d", t);
  return buf;
}

// The leader's loop, for one term: assign every task not done to a live worker.
void lead(node& n, std::uint64_t term, int tasks, const std::atomic<bool>& leading) {
  auto lock = n.lock("engine/leader", 5s);
  if (!lock) {
    log_line("engine {}: cannot take the leader lock: {}", n.member_id(), lock.error().message());
    return;
  }
  log_line("engine {}: leading in term {} with fencing token {}", n.member_id(), term, lock->token);
  std::size_t next_worker = 0;
  bool reported = false;
  while (leading && !stopping) {
    auto done = n.list("/engine/done/");
    auto assigned = n.list("/engine/assign/");
    auto alive = n.members(registry::member_status::alive);
    if (!done || !assigned || !alive) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    std::vector<std::string> workers;
    for (const auto& m : *alive) {
      if (m.role == registry::member_role::worker) workers.push_back(m.id);
    }
    std::set<std::string> done_tasks, busy;
    for (const auto& [k, kv] : *done) done_tasks.insert(k.substr(std::strlen("/engine/done/")));
    for (const auto& [k, kv] : *assigned) {
      auto task = k.substr(std::strlen("/engine/assign/"));
      auto worker = kv.value.substr(7, kv.value.find(' ') - 7);  // "worker=W ..."
      bool live = std::find(workers.begin(), workers.end(), worker) != workers.end();
      if (!live || done_tasks.count(task)) {
        // Its worker died (or it is done): free the task, but only the
        // assignment we looked at (compare-and-set on its version).
        (void)n.remove(k, kv.version);
      } else {
        busy.insert(task);
      }
    }
    if (static_cast<int>(done_tasks.size()) >= tasks) {
      if (!reported) log_line("engine {}: all {} tasks done", n.member_id(), tasks);
      reported = true;
    } else if (!workers.empty()) {
      for (int t = 0; t < tasks; ++t) {
        auto key = task_key(t);
        if (done_tasks.count(key) || busy.count(key)) continue;
        const auto& w = workers[next_worker++ % workers.size()];
        auto value = "worker=" + w + " term=" + std::to_string(term) + " token=" + std::to_string(lock->token);
        // Create-only: a task has at most one assignment, even if an earlier
        // attempt's outcome was unknown.
        auto r = n.put("/engine/assign/" + key, value, std::uint64_t{0});
        if (!r) break;
        busy.insert(key);
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  log_line("engine {}: no longer leading term {}", n.member_id(), term);
}

// A worker's loop: run what is assigned to it, refusing stale leaders.
void work(node& n, int work_ms) {
  std::uint64_t highest_token = 0;
  auto mine = "worker=" + n.member_id() + " ";
  while (!stopping) {
    auto assigned = n.list("/engine/assign/");
    if (!assigned) {
      std::this_thread::sleep_for(50ms);
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
        std::this_thread::sleep_for(20ms);
      }
    }
    std::this_thread::sleep_for(20ms);
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
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto n = node::start(sys, values);
  if (!n) {
    std::fprintf(stderr, "engine: %s\n", n.error().message().c_str());
    return 2;
  }
  auto& me = **n;
  std::thread worker;
  std::atomic<bool> leading{false};
  std::thread leader;
  if (me.is_master()) {
    me.on_leadership(
        [&](std::uint64_t term) {
          leading = true;
          if (leader.joinable()) leader.join();
          leader = std::thread([&, term] { lead(me, term, tasks, leading); });
        },
        [&] { leading = false; });
  } else {
    worker = std::thread([&] { work(me, work_ms); });
  }
  int sig = 0;
  sigwait(&signals, &sig);
  stopping = true;
  leading = false;
  if (leader.joinable()) leader.join();
  if (worker.joinable()) worker.join();
  n->reset();
  return 0;
}
