// The status page on the HTTP listener (roles/status_page.hpp), against 3
// master processes with http-listen and no client-listen: /status.json
// names the leader, the members and a lock's holder and waiter; the event
// stream pushes a new snapshot when a lock changes hands, on the one request
// it was opened with; and headless chromium renders the page, then shows a
// change made after it loaded without loading it again.
#include <doctest/doctest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "test/headless_chromium.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// 3 masters serving HTTP only, each on a port it picked and logged.
struct status_cluster {
  std::unique_ptr<process_cluster> c;
  std::map<std::uint64_t, std::uint16_t> http;  // server id -> its http-listen port

  status_cluster() {
    process_cluster::layout where;
    for (std::uint64_t id = 1; id <= 3; ++id) where.flags[id] = {"--http-listen", "127.0.0.1:0"};
    c = std::make_unique<process_cluster>(3, std::vector<std::string>{"-r", "master"}, conclave_binary(), where);
    const std::string said = "HTTP listening on 127.0.0.1:";
    for (auto until = std::chrono::steady_clock::now() + 20s;
         http.size() < 3 && std::chrono::steady_clock::now() < until;) {
      for (std::uint64_t id = 1; id <= 3; ++id) {
        auto log = c->log_of(id);
        if (auto at = log.find(said); at != std::string::npos) {
          http[id] = static_cast<std::uint16_t>(std::stoi(log.substr(at + said.size())));
        }
      }
      if (http.size() < 3) std::this_thread::sleep_for(50ms);
    }
    REQUIRE_MESSAGE(http.size() == 3, c->logs());
  }

  std::string endpoints() const {
    std::string e;
    for (const auto& m : c->members()) e += (e.empty() ? "" : ",") + m.address.text();
    return e;
  }

  // conclavectl holding lock `name` (or waiting for it) for as long as it runs.
  pid_t hold_lock(const std::string& name, const std::string& log) {
    return c->spawn({conclavectl_binary(), "--endpoints", endpoints(), "--cluster-id", c->cluster_id, "lock", name,
                     "--", "sleep", "600"},
                    log);
  }

  pid_t worker(const std::string& name, const std::string& labels) {
    return c->spawn({conclave_binary(), "-r", "worker", "--name", name, "--peers", c->peers(), "--cluster-id",
                     c->cluster_id, "--labels", labels},
                    name + ".log");
  }

  // Server `id`'s /status.json, or null when it does not answer.
  json status(std::uint64_t id) {
    httplib::Client cli("127.0.0.1", http.at(id));
    cli.set_read_timeout(10, 0);
    auto r = cli.Get("/status.json");
    if (!r || r->status != 200) return nullptr;
    return json::parse(r->body, nullptr, false);
  }

  // Waits up to 20 s for server `id`'s snapshot to satisfy `ok`; the last one seen.
  template <class F>
  json status_until(std::uint64_t id, F&& ok) {
    json s;
    for (auto until = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < until;) {
      s = status(id);
      if (s.is_object() && ok(s)) return s;
      std::this_thread::sleep_for(100ms);
    }
    FAIL_CHECK("server " << id << "'s snapshot never got there; last: " << s.dump() << "\n" << c->logs());
    return s;
  }
};

const json* find_lock(const json& s, const std::string& name) {
  for (const auto& l : s["locks"]) {
    if (l["name"] == name) return &l;
  }
  return nullptr;
}

bool held_with_waiter(const json& s, const std::string& name) {
  auto* l = find_lock(s, name);
  return l && !(*l)["holder"].is_null() && (*l)["waiters"].size() == 1;
}

// Holder and waiter of lock `name` at server `id`, once both are there.
std::pair<std::uint64_t, std::uint64_t> holder_and_waiter(status_cluster& sc, std::uint64_t id,
                                                           const std::string& name) {
  auto s = sc.status_until(id, [&](const json& j) { return held_with_waiter(j, name); });
  auto* l = find_lock(s, name);
  if (!l) return {0, 0};
  return {(*l)["holder"]["session"].get<std::uint64_t>(), (*l)["waiters"][0]["session"].get<std::uint64_t>()};
}

bool has_member(const json& s, const std::string& id) {
  for (const auto& m : s["members"]) {
    if (m["id"] == id && m["status"] == "alive") return true;
  }
  return false;
}

}  // namespace

TEST_CASE("status.json names the leader, members and a lock's holder and waiter; the event stream pushes changes") {
  status_cluster sc;
  auto leader = sc.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, sc.c->logs());
  auto holder = sc.hold_lock("deploy", "holder.log");
  REQUIRE(sc.status_until(1, [](const json& s) { return find_lock(s, "deploy") != nullptr; }).is_object());
  sc.hold_lock("deploy", "waiter.log");
  auto [held_by, waiting] = holder_and_waiter(sc, 1, "deploy");
  REQUIRE(held_by != 0);

  // A follower's snapshot: its own view, every master asked for its positions.
  std::uint64_t follower = *leader == 1 ? 2 : 1;
  auto s = sc.status_until(follower, [&](const json& j) {
    return j["leader_id"] == *leader && has_member(j, "master-1") && has_member(j, "master-2") &&
           has_member(j, "master-3") && held_with_waiter(j, "deploy");
  });
  CHECK(s["self"] == follower);
  REQUIRE(s["masters"].size() == 3);
  for (const auto& m : s["masters"]) {
    CHECK(m["self"] == (m["id"] == follower));
    REQUIRE_MESSAGE(m.contains("status"), m.dump());
    CHECK(m["status"]["role"] == (m["id"] == *leader ? "leader" : "follower"));
    CHECK(m["status"]["disk"] == "ok");
    CHECK(m["status"]["applied_index"].get<std::uint64_t>() > 0);
  }
  const auto& changes = s["leader_changes"];
  REQUIRE(!changes.empty());
  CHECK(changes.back()["leader_id"] == *leader);
  auto* l = find_lock(s, "deploy");
  REQUIRE(l);
  CHECK((*l)["holder"]["session"] == held_by);
  CHECK((*l)["holder"]["owner"] == "conclavectl");
  CHECK((*l)["waiters"][0]["session"] == waiting);

  // One request to the event stream; the holder ends; the stream brings the
  // snapshot where the waiter holds the lock.
  std::mutex m;
  std::string received;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    httplib::Client cli("127.0.0.1", sc.http.at(follower));
    cli.set_read_timeout(30, 0);
    int requests = 0;
    while (!done) {
      ++requests;
      cli.Get("/status/events", [&](const char* data, std::size_t n) {
        std::lock_guard<std::mutex> guard(m);
        received.append(data, n);
        return !done.load();
      });
      if (!done) {
        std::lock_guard<std::mutex> guard(m);
        received += "\n[the stream ended: request " + std::to_string(requests) + "]\n";
      }
    }
  });
  auto snapshots = [&] {
    std::vector<json> out;
    std::lock_guard<std::mutex> guard(m);
    std::istringstream lines(received);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("data: ", 0) == 0) out.push_back(json::parse(line.substr(6), nullptr, false));
    }
    return out;
  };
  auto wait_for_snapshot = [&](auto&& ok) {
    for (auto until = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < until;) {
      for (const auto& j : snapshots()) {
        if (j.is_object() && ok(j)) return true;
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  };
  CHECK(wait_for_snapshot([&](const json& j) { return held_with_waiter(j, "deploy"); }));
  ::kill(holder, SIGTERM);
  CHECK(sc.c->wait_exit(holder, 20s));
  bool pushed = wait_for_snapshot([&](const json& j) {
    auto* lock = find_lock(j, "deploy");
    return lock && !(*lock)["holder"].is_null() && (*lock)["holder"]["session"] == waiting;
  });
  done = true;
  reader.join();
  std::lock_guard<std::mutex> guard(m);
  CHECK_MESSAGE(pushed, received);
  CHECK_MESSAGE(received.find("[the stream ended") == std::string::npos, received);
  CHECK(received.find("event: snapshot\n") == 0);
}

TEST_CASE("headless chromium renders the status page and shows a change pushed after it loaded") {
  auto chromium = headless_chromium::program();
  if (!chromium) CONCLAVE_SKIP("no chromium on PATH (Debian's chromium package)");
  status_cluster sc;
  auto leader = sc.c->wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, sc.c->logs());
  sc.worker("worker-a", "zone=a");
  sc.worker("worker-b", "zone=b,gpu=1");
  auto holder = sc.hold_lock("deploy", "holder.log");
  REQUIRE(sc.status_until(1, [](const json& s) { return find_lock(s, "deploy") != nullptr; }).is_object());
  sc.hold_lock("deploy", "waiter.log");
  auto [held_by, waiting] = holder_and_waiter(sc, 1, "deploy");
  REQUIRE(held_by != 0);
  sc.hold_lock("jobs/42", "jobs.log");
  std::uint64_t follower = *leader == 1 ? 2 : 1;
  sc.status_until(follower, [&](const json& j) {
    return has_member(j, "worker-a") && has_member(j, "worker-b") && held_with_waiter(j, "deploy") &&
           find_lock(j, "jobs/42") && !(*find_lock(j, "jobs/42"))["holder"].is_null();
  });

  headless_chromium browser(*chromium);
  REQUIRE_MESSAGE(browser.open("http://127.0.0.1:" + std::to_string(sc.http.at(follower)) + "/"), browser.why());
  // What the page shows, as the browser rendered it.
  auto shown = [&](const std::string& id) {
    auto v = browser.evaluate("document.getElementById('" + id + "').innerText");
    return v.is_string() ? v.get<std::string>() : std::string();
  };
  auto shows = [&](const std::string& id, const std::string& text) {
    for (auto until = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < until;) {
      if (shown(id).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  };
  CHECK_MESSAGE(shows("leader", "master " + std::to_string(*leader)), shown("leader") << browser.why());
  for (auto name : {"master-1", "master-2", "master-3", "worker-a", "worker-b"}) {
    CHECK_MESSAGE(shows("members", name), shown("members"));
  }
  auto holder_text = "conclavectl (session " + std::to_string(held_by) + ")";
  auto waiter_text = "conclavectl (session " + std::to_string(waiting) + ")";
  CHECK_MESSAGE(shows("locks", "deploy\t" + holder_text), shown("locks"));
  CHECK_MESSAGE(shows("locks", waiter_text), shown("locks"));
  if (const char* path = std::getenv("CONCLAVE_STATUS_SCREENSHOT")) {
    // The whole page, at the height it needs at 1280 pixels wide.
    browser.screenshot(path, 1280, 800);
    auto height = browser.evaluate("document.documentElement.scrollHeight");
    CHECK_MESSAGE(browser.screenshot(path, 1280, height.is_number() ? height.get<int>() : 1000), browser.why());
  }

  // The holder ends; the page, not loaded again (the mark stays), shows the waiter holding the lock.
  browser.evaluate("window.loadedOnce = true");
  auto updates = browser.evaluate("Number(document.body.dataset.updates)");
  REQUIRE(updates.is_number());
  ::kill(holder, SIGTERM);
  CHECK(sc.c->wait_exit(holder, 20s));
  CHECK_MESSAGE(shows("locks", "deploy\t" + waiter_text), shown("locks"));
  CHECK(browser.evaluate("window.loadedOnce === true") == true);
  CHECK(browser.evaluate("Number(document.body.dataset.updates)").get<double>() > updates.get<double>());
}
