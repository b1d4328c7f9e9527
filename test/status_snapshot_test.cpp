// The status page's snapshot (roles/status_snapshot.hpp): what it says about
// the masters' disks, who leads, and who holds and waits for each lock.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "roles/status_snapshot.hpp"

using namespace conclave;
using json = nlohmann::json;

namespace {

client::status reported(std::uint64_t id, const std::string& role, std::uint64_t term, std::uint64_t leader) {
  client::status s;
  s.id = id;
  s.role = role;
  s.term = term;
  s.leader_id = leader;
  s.commit_index = 7;
  s.applied_index = 6;
  s.last_index = 8;
  return s;
}

}  // namespace

TEST_CASE("a master's disk shows as full when its storage error is a full disk or map, failed on any other") {
  client::status s;
  CHECK(disk_state(s) == "ok");
  CHECK(disk_state(s, true) == "failed");
  s.storage_error = make_error(errc::disk_full, "/data: no space").message();
  CHECK(disk_state(s) == "full");
  s.storage_error = make_error(errc::map_full, "map is 1 GiB").message();
  CHECK(disk_state(s) == "full");
  s.storage_error = make_error(errc::io_error, "fsync").message();
  CHECK(disk_state(s) == "failed");
}

TEST_CASE("the snapshot names the leader of the newest term, each master's positions, and locks by session owner") {
  status_inputs in;
  in.self = 2;
  in.masters.push_back({{1, "127.0.0.1:7001", false}, reported(1, "follower", 3, 0), {}});  // lost its leader
  in.masters.push_back({{2, "127.0.0.1:7002", false}, reported(2, "follower", 2, 3), {}});  // behind
  in.masters.push_back({{3, "127.0.0.1:7003", false}, std::nullopt, "unavailable: no answer"});
  in.masters.push_back({{4, "127.0.0.1:7004", true}, reported(4, "learner", 3, 1), {}});
  auto st = std::make_shared<registry::registry_state>();
  st->rev = 42;
  st->members["worker-a"].id = "worker-a";
  st->sessions[5] = {5, "worker-a", 2000, 1500};
  st->sessions[6] = {6, "conclavectl", 3000, 3000};
  st->locks["deploy"] = {5, 17, {6}};
  st->locks[std::string("bad\xff")] = {0, 3, {}};  // a name that is not UTF-8
  in.registry = st;
  in.leader_changes = {{1000, 1, 0}, {2000, 3, 1}};

  auto s = json::parse(status_json(in));
  CHECK(s["self"] == 2);
  CHECK(s["leader_id"] == 1);
  CHECK(s["term"] == 3);
  REQUIRE(s["masters"].size() == 4);
  CHECK(s["masters"][1]["self"] == true);
  CHECK(s["masters"][1]["status"]["applied_index"] == 6);
  CHECK(s["masters"][1]["status"]["disk"] == "ok");
  CHECK(s["masters"][2]["error"] == "unavailable: no answer");
  CHECK_FALSE(s["masters"][2].contains("status"));
  CHECK(s["masters"][3]["learner"] == true);
  CHECK(s["revision"] == 42);
  CHECK(s["members"][0]["id"] == "worker-a");
  CHECK(s["sessions"].size() == 2);
  REQUIRE(s["locks"].size() == 2);
  auto deploy = s["locks"][1];
  CHECK(deploy["name"] == "deploy");
  CHECK(deploy["holder"] == json{{"session", 5}, {"owner", "worker-a"}});
  CHECK(deploy["token"] == 17);
  CHECK(deploy["waiters"] == json::array({{{"session", 6}, {"owner", "conclavectl"}}}));
  CHECK(s["locks"][0]["holder"].is_null());
  CHECK(s["leader_changes"][1] == json{{"time_ms", 2000}, {"term", 3}, {"leader_id", 1}});
  CHECK(status_json(in).find('\n') == std::string::npos);
}
