// Recovery from losing the majority for good, with real processes: two of
// three masters and their data are gone; the third restarts with
// --force-new-cluster true, keeps every acknowledged write, and two fresh
// masters join it.
#include <doctest/doctest.h>

#include <filesystem>
#include <set>
#include <thread>

#include "roles/registry_reads.hpp"
#include "schema/registry_codec.hpp"
#include "test/process_cluster.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> master_flags() {
  return {"-r", "master", "--session-ttl-ms", "1000", "--member-heartbeat-ms", "100"};
}

// Puts keys PREFIX0.. one after another; the keys whose write was acknowledged.
std::set<std::string> write_keys(raft_client& c, const std::string& prefix, int count) {
  std::set<std::string> acked;
  for (int i = 0; i < count; ++i) {
    auto key = prefix + std::to_string(i);
    auto r = c.propose(wire::encode_command(registry::put{key, "v", 0, std::nullopt}), 5s);
    if (!r) continue;  // outcome unknown: not counted either way
    auto res = wire::decode_result(r->result);
    if (res && res->outcome.code == registry::code::ok) acked.insert(key);
  }
  return acked;
}

// The acknowledged keys a linearizable listing lacks ("?" when it cannot be read).
std::string missing(raft_client& c, const std::set<std::string>& acked) {
  auto all = ask(c, registry::list_prefix{"w/"}, 10s);
  if (!all) return "? " + all.error().message();
  std::set<std::string> have;
  for (const auto& [key, kv] : all->keys) have.insert(key);
  std::string out;
  for (const auto& k : acked) {
    if (!have.count(k)) out += k + " ";
  }
  return out;
}

}  // namespace

TEST_CASE("after losing two of three masters for good, the third recovers with force-new-cluster, keeps every "
          "acknowledged write, and takes two fresh masters back") {
  process_cluster c(3, master_flags(), conclave_binary());
  auto leader = c.wait_for_leader(20s);
  REQUIRE_MESSAGE(leader, c.logs());
  // The survivor is in every majority by construction: one follower is
  // stopped first, so the leader commits only what the survivor has.
  std::uint64_t survivor = *leader % 3 + 1;
  std::uint64_t lost_first = survivor % 3 + 1;
  REQUIRE(lost_first != *leader);
  auto acked = write_keys(c.client(), "w/a", 20);
  c.signal(lost_first, SIGKILL);
  auto acked_two = write_keys(c.client(), "w/b", 20);
  // At least one write acknowledged by {leader, survivor}: by log matching the
  // survivor has every earlier entry too.
  REQUIRE_MESSAGE(!acked_two.empty(), c.logs());
  acked.insert(acked_two.begin(), acked_two.end());
  auto lost_second = 6 - survivor - lost_first;
  c.signal(lost_second, SIGKILL);
  c.signal(survivor, SIGKILL);
  for (auto id : {lost_first, lost_second}) std::filesystem::remove_all(c.at(id).data_dir);

  c.set_member_flags(survivor, {"--force-new-cluster", "true"});
  c.start(survivor);
  REQUIRE_MESSAGE(c.wait_for_leader(20s) == survivor, c.logs());
  CHECK(c.log_of(survivor).find("forced a new cluster of this master alone") != std::string::npos);
  auto alone = c.status(survivor);
  REQUIRE(alone.has_value());
  REQUIRE(alone->members.size() == 1);
  CHECK(alone->members[0].id == survivor);
  CHECK_MESSAGE(missing(c.client(), acked).empty(), missing(c.client(), acked));

  // Fresh masters join as a master added at run time does.
  for (auto id : {lost_first, lost_second}) {
    c.set_member_flags(id, {"--join", "true"});
    c.start(id);
    auto ctl = c.spawn({conclavectl_binary(), "--endpoints", c.at(survivor).address.text(), "--cluster-id",
                        c.cluster_id, "add-master", std::to_string(id), c.at(id).address.text()},
                       "add-" + std::to_string(id) + ".log");
    auto status = c.wait_exit(ctl, 90s);
    REQUIRE(status.has_value());
    REQUIRE_MESSAGE(WEXITSTATUS(*status) == 0, file_text(c.path("add-" + std::to_string(id) + ".log")) << c.logs());
  }
  auto st = c.status(survivor);
  REQUIRE(st.has_value());
  CHECK(st->members.size() == 3);
  auto more = write_keys(c.client(), "w/c", 5);
  acked.insert(more.begin(), more.end());

  // The new masters hold everything: without the survivor they elect a
  // leader between them and answer every acknowledged write.
  c.signal(survivor, SIGKILL);
  REQUIRE_MESSAGE(c.wait_for_leader(30s), c.logs());
  CHECK_MESSAGE(missing(c.client(), acked).empty(), missing(c.client(), acked) << "\n" << c.logs());
}
