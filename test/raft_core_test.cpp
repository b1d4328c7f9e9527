// The Raft core, one behaviour per case, named after the rule it checks.
// Cases either drive a single core through step/tick/take_ready, or run a
// small fault-free simulated cluster (test/sim/cluster.hpp), which also checks
// the safety properties after every unit of time.
#include <doctest/doctest.h>

#include <algorithm>

#include "actors/raft/core.hpp"
#include "actors/raft/quorum.hpp"
#include "actors/raft/transitions.hpp"
#include "test/sim/cluster.hpp"

using namespace conclave;
using namespace conclave::raft;
using conclave::sim::cluster;
using conclave::sim::cluster_options;

namespace {

node_id n(std::uint64_t v) { return node_id{v}; }

raft::config config_of(std::uint64_t id) {
  raft::config c;
  c.id = n(id);
  c.seed = id;
  c.heartbeat_interval_ticks = 2;
  c.election_timeout_min_ticks = 10;
  c.election_timeout_max_ticks = 20;
  return c;
}

configuration voters(std::uint64_t count, std::uint64_t learners = 0) {
  configuration c;
  for (std::uint64_t i = 1; i <= count + learners; ++i) {
    c.servers.push_back({n(i), "node" + std::to_string(i), i <= count ? suffrage::voter : suffrage::learner});
  }
  return c;
}

// Everything a ready asks to send, in order (now, then after persisting).
std::vector<message> sent(const ready& r) {
  auto all = r.messages;
  all.insert(all.end(), r.messages_after_persist.begin(), r.messages_after_persist.end());
  return all;
}

// Takes every ready, reports it durable at once, and returns all messages:
// a stand-in that isolates the core in these rule-by-rule cases. The ready
// loop itself (persistence, apply, reads) is the driver's, tested through
// the simulated cluster below and in raft_sim_test.
std::vector<message> flush(core& c, std::vector<ready>* out = nullptr) {
  std::vector<message> msgs;
  while (c.has_ready()) {
    auto r = c.take_ready();
    auto m = sent(r);
    msgs.insert(msgs.end(), m.begin(), m.end());
    if (r.persist_id) c.persisted(r.persist_id);
    if (out) out->push_back(std::move(r));
  }
  return msgs;
}

template <class T>
std::vector<std::pair<node_id, T>> bodies(const std::vector<message>& msgs) {
  std::vector<std::pair<node_id, T>> out;
  for (const auto& m : msgs) {
    if (auto* b = std::get_if<T>(&m.body)) out.emplace_back(m.to, *b);
  }
  return out;
}

// Makes `c` leader with the votes of `granters`.
void elect(core& c, const std::vector<std::uint64_t>& granters) {
  for (int i = 0; i < 100 && c.role() == role::follower; ++i) c.tick();
  REQUIRE(c.role() == role::pre_candidate);
  flush(c);
  for (auto g : granters) c.step({n(g), c.id(), vote_reply{term_t{c.term().value + 1}, true, true}});
  REQUIRE(c.role() == role::candidate);
  flush(c);
  for (auto g : granters) c.step({n(g), c.id(), vote_reply{c.term(), true, false}});
  REQUIRE(c.role() == role::leader);
  flush(c);
}

// The `followers` of leader `c` acknowledge its whole log: they pipeline
// (replicate mode) from there.
void followers_caught_up(core& c, const std::vector<std::uint64_t>& followers) {
  for (auto f : followers) c.step({n(f), c.id(), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, 1}});
  flush(c);
}

log_entry entry(std::uint64_t index, std::uint64_t term, std::string payload = "x") {
  return log_entry{term_t{term}, index_t{index}, entry_kind::command, std::move(payload)};
}

// A disk holding the configuration as a snapshot at 0 and entries of the given terms.
persistent_state disk_with_terms(const configuration& config, const std::vector<std::uint64_t>& terms,
                                 std::uint64_t current_term) {
  persistent_state ps;
  ps.snapshot = snapshot_data{snapshot_meta{index_t{0}, term_t{0}, config}, std::make_shared<const std::string>("0 0 ")};
  for (std::size_t i = 0; i < terms.size(); ++i) {
    ps.entries.push_back(entry(i + 1, terms[i], "t" + std::to_string(terms[i]) + "i" + std::to_string(i + 1)));
  }
  ps.state.term = term_t{current_term};
  return ps;
}

cluster_options quiet_cluster(int voter_count, std::uint64_t seed = 7) {
  cluster_options o;
  o.seed = seed;
  o.voters = voter_count;
  o.base = config_of(1);
  return o;
}

bool same_log(const raft_log& a, const raft_log& b) {
  if (a.last_index() != b.last_index()) return false;
  auto from = std::max(a.first_index(), b.first_index());
  for (auto i = from; i <= a.last_index(); i = index_t{i.value + 1}) {
    if (!(a.at(i) == b.at(i))) return false;
  }
  return true;
}

}  // namespace

// --- configuration ---------------------------------------------------------------

TEST_CASE("config validation names the field and the bound it broke") {
  auto c = config_of(1);
  CHECK(c.validate().has_value());
  c.election_timeout_max_ticks = c.election_timeout_min_ticks;
  auto err = c.validate();
  REQUIRE_FALSE(err.has_value());
  CHECK(err.error().message().find("election_timeout_max_ticks") != std::string::npos);
  c = config_of(1);
  c.id = no_node;
  CHECK(c.validate().error().message().find("raft.id") != std::string::npos);
}

// --- elections (§5.2, thesis 9.6) --------------------------------------------------

TEST_CASE("§5.2: a follower that hears nothing for an election timeout pre-votes without changing its term") {
  core c(config_of(1), {}, voters(3));
  flush(c);
  auto term = c.term();
  int ticks = 0;
  while (c.role() == role::follower && ticks < 100) {
    c.tick();
    ++ticks;
  }
  CHECK(ticks >= 10);  // not before the minimum election timeout
  CHECK(ticks < 20);   // nor after the maximum
  CHECK(c.role() == role::pre_candidate);
  CHECK(c.term() == term);
  auto requests = bodies<vote_request>(flush(c));
  REQUIRE(requests.size() == 2);
  for (const auto& [to, r] : requests) {
    CHECK(r.pre_vote);
    CHECK(r.term == term_t{term.value + 1});
  }
}

TEST_CASE("§5.2: a pre-candidate with a quorum of pre-votes campaigns; its requests go out while its vote is written") {
  core c(config_of(1), {}, voters(3));
  flush(c);
  while (c.role() == role::follower) c.tick();
  flush(c);
  c.step({n(2), n(1), vote_reply{term_t{2}, true, true}});
  CHECK(c.role() == role::candidate);
  CHECK(c.term() == term_t{2});
  CHECK(c.voted_for() == n(1));
  auto r = c.take_ready();
  REQUIRE(r.state.has_value());
  CHECK(r.state->term == term_t{2});
  CHECK(r.state->voted_for == n(1));
  CHECK(bodies<vote_request>(r.messages).size() == 2);
  CHECK(bodies<vote_request>(r.messages_after_persist).empty());
  // Its own vote counts only once durable: a granted vote is not enough yet
  // (had it won and crashed before the write, it could come back without
  // the vote and grant it to another candidate of the same term).
  c.step({n(2), n(1), vote_reply{term_t{2}, true, false}});
  CHECK(c.role() == role::candidate);
  c.persisted(r.persist_id);
  CHECK(c.role() == role::leader);
  CHECK(c.term() == term_t{2});
}

TEST_CASE("a server whose storage cannot write neither leads nor campaigns: no pre-vote, no transfer to it, a campaign or a lead dropped") {
  core c(config_of(1), {}, voters(3));
  flush(c);
  c.set_storage_unwritable(true);
  for (int i = 0; i < 100; ++i) c.tick();
  CHECK(c.role() == role::follower);
  CHECK(bodies<vote_request>(flush(c)).empty());
  // A leader's TimeoutNow does not make it campaign either.
  c.step({n(2), n(1), append_entries{term_t{1}, index_t{0}, term_t{0}, {}, index_t{0}, 1}});
  flush(c);
  c.step({n(2), n(1), timeout_now{term_t{1}}});
  CHECK(c.role() == role::follower);
  CHECK(bodies<vote_request>(flush(c)).empty());
  c.set_storage_unwritable(false);
  while (c.role() == role::follower) c.tick();
  CHECK(c.role() == role::pre_candidate);
  // Unwritable again mid-campaign: it drops the campaign.
  c.set_storage_unwritable(true);
  CHECK(c.role() == role::follower);
}

TEST_CASE("a leader whose storage cannot write steps down, handing over to a caught-up voter") {
  core c(config_of(1), {}, voters(3));
  elect(c, {2, 3});
  REQUIRE(c.role() == role::leader);
  c.step({n(2), n(1), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, 1}});
  flush(c);
  c.set_storage_unwritable(true);
  CHECK(c.role() == role::follower);
  auto handover = bodies<timeout_now>(flush(c));
  REQUIRE(handover.size() == 1);
  CHECK(handover[0].first == n(2));
}

TEST_CASE("§5.2: a candidate whose own vote is durable first wins with the next granted vote") {
  core c(config_of(1), {}, voters(3));
  flush(c);
  while (c.role() == role::follower) c.tick();
  flush(c);
  c.step({n(2), n(1), vote_reply{term_t{2}, true, true}});
  REQUIRE(c.role() == role::candidate);
  flush(c);  // its vote is on disk
  CHECK(c.role() == role::candidate);
  c.step({n(3), n(1), vote_reply{term_t{2}, true, false}});
  CHECK(c.role() == role::leader);
}

TEST_CASE("§5.2: a candidate that wins a majority becomes leader and appends a no-op of its term (thesis 6.4)") {
  core c(config_of(1), {}, voters(5));
  elect(c, {2, 3});
  CHECK(c.role() == role::leader);
  CHECK(c.leader() == n(1));
  const auto& last = c.log().at(c.log().last_index());
  CHECK(last.kind == entry_kind::noop);
  CHECK(last.term == c.term());
}

TEST_CASE("§5.2: a server votes for at most one candidate per term") {
  core c(config_of(1), {}, voters(3));
  flush(c);
  c.step({n(2), n(1), vote_request{term_t{5}, index_t{1}, term_t{1}, false, false}});
  auto first = bodies<vote_reply>(flush(c));
  REQUIRE(first.size() == 1);
  CHECK(first[0].second.granted);
  c.step({n(3), n(1), vote_request{term_t{5}, index_t{1}, term_t{1}, false, false}});
  auto second = bodies<vote_reply>(flush(c));
  REQUIRE(second.size() == 1);
  CHECK_FALSE(second[0].second.granted);
  // The same candidate asking again (a retransmission) gets the same answer.
  c.step({n(2), n(1), vote_request{term_t{5}, index_t{1}, term_t{1}, false, false}});
  CHECK(bodies<vote_reply>(flush(c))[0].second.granted);
}

TEST_CASE("§5.4.1: a server refuses its vote to a candidate whose log is less up to date") {
  auto ps = disk_with_terms(voters(3), {1, 1, 2}, 2);
  core c(config_of(1), ps);
  // Shorter log with the same last term.
  c.step({n(2), n(1), vote_request{term_t{3}, index_t{2}, term_t{2}, false, false}});
  CHECK_FALSE(bodies<vote_reply>(flush(c))[0].second.granted);
  // Longer log but an older last term.
  c.step({n(3), n(1), vote_request{term_t{4}, index_t{10}, term_t{1}, false, false}});
  CHECK_FALSE(bodies<vote_reply>(flush(c))[0].second.granted);
  // Higher last term wins even when shorter.
  c.step({n(2), n(1), vote_request{term_t{5}, index_t{1}, term_t{3}, false, false}});
  CHECK(bodies<vote_reply>(flush(c))[0].second.granted);
}

TEST_CASE("pre-vote: a server that hears from a live leader refuses pre-votes and keeps its term (thesis 4.2.3)") {
  core c(config_of(2), {}, voters(3));
  flush(c);
  c.step({n(1), n(2), append_entries{term_t{2}, index_t{1}, term_t{1}, {}, index_t{1}, 1}});
  flush(c);
  REQUIRE(c.leader() == n(1));
  // A pre-vote and even a real vote at a higher term are refused and change nothing.
  c.step({n(3), n(2), vote_request{term_t{3}, index_t{5}, term_t{2}, true, false}});
  c.step({n(3), n(2), vote_request{term_t{3}, index_t{5}, term_t{2}, false, false}});
  auto replies = bodies<vote_reply>(flush(c));
  REQUIRE(replies.size() == 2);
  CHECK_FALSE(replies[0].second.granted);
  CHECK_FALSE(replies[1].second.granted);
  CHECK(c.term() == term_t{2});
  CHECK(c.leader() == n(1));
  // After an election timeout of silence the same pre-vote is granted.
  for (int i = 0; i < 10; ++i) c.tick();
  c.step({n(3), n(2), vote_request{term_t{3}, index_t{5}, term_t{2}, true, false}});
  auto later = bodies<vote_reply>(flush(c));
  REQUIRE_FALSE(later.empty());
  CHECK(later.back().second.granted);
  CHECK(c.term() == term_t{2});  // a pre-vote changes nobody's term
}

TEST_CASE("pre-vote: a node cut off for many election timeouts rejoins without disrupting the leader") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto leader = *c.leader();
  auto term = c.at(leader).raft->term();
  auto follower = leader == n(3) ? n(2) : n(3);
  c.isolate(follower);
  c.run_ticks(200);
  CHECK(c.at(follower).raft->term() == term);  // pre-vote kept it from bumping its term
  c.heal();
  c.run_ticks(50);
  CHECK(c.leader() == leader);
  CHECK(c.at(leader).raft->term() == term);
}

TEST_CASE("check-quorum: a leader that hears from no quorum steps down within an election timeout (thesis 6.2)") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto leader = *c.leader();
  c.isolate(leader);
  c.run_ticks(2 * 10 + 2);  // at most two check-quorum rounds
  CHECK(c.at(leader).raft->role() == role::follower);
}

TEST_CASE("§5.1: a partitioned old leader cannot commit, and its entries give way to the new leader's") {
  cluster c(quiet_cluster(5));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto old_leader = *c.leader();
  c.isolate(old_leader);
  auto stale = c.propose(old_leader);
  REQUIRE(stale.has_value());
  REQUIRE(c.run_until([&] { return c.leader() && *c.leader() != old_leader; }, 200));
  auto fresh = c.propose();
  REQUIRE(fresh.has_value());
  REQUIRE(c.run_until([&] { return c.proposals()[*fresh].acked; }, 100));
  c.run_ticks(20);
  CHECK_FALSE(c.proposals()[*stale].acked);
  c.heal();
  c.run_ticks(50);
  CHECK_FALSE(c.proposals()[*stale].acked);
  CHECK(c.at(old_leader).raft->role() == role::follower);
  auto where = c.proposals()[*stale].where;
  // The old leader's uncommitted entry was replaced on its own log.
  CHECK(c.at(old_leader).raft->log().term_at(where.index) != where.term);
}

// --- replication (§5.3) ----------------------------------------------------------------

TEST_CASE("Figure 7: a new leader brings followers with missing, extra and conflicting entries into line") {
  // The leader's log and those of followers (a)-(f) of the Raft paper's figure 7.
  auto config = voters(7);
  cluster_options o = quiet_cluster(7, 11);
  o.initial[1] = disk_with_terms(config, {1, 1, 1, 4, 4, 5, 5, 6, 6, 6}, 7);
  o.initial[2] = disk_with_terms(config, {1, 1, 1, 4, 4, 5, 5, 6, 6}, 7);           // (a) missing one
  o.initial[3] = disk_with_terms(config, {1, 1, 1, 4}, 7);                           // (b) missing many
  o.initial[4] = disk_with_terms(config, {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 7);     // (c) one extra
  o.initial[5] = disk_with_terms(config, {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 7);  // (d) extra of term 7
  o.initial[6] = disk_with_terms(config, {1, 1, 1, 4, 4, 4, 4}, 7);                 // (e) conflicting term 4
  o.initial[7] = disk_with_terms(config, {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 7);     // (f) terms 2 and 3
  cluster c(o);
  // Node 1 campaigns first; (c) and (d) refuse it, the others elect it.
  auto& leader = *c.at(n(1)).raft;
  while (leader.role() == role::follower) leader.tick();
  c.process(c.at(n(1)));
  REQUIRE(c.run_until([&] { return c.leader() == n(1); }, 50));
  CHECK(leader.term() == term_t{8});
  REQUIRE(c.run_until(
      [&] {
        for (auto id : c.ids()) {
          if (!same_log(c.at(id).raft->log(), leader.log())) return false;
        }
        return true;
      },
      100));
  CHECK(leader.log().last_index() == index_t{11});  // the ten entries plus its no-op
  CHECK(leader.log().commit_index() == index_t{11});
}

TEST_CASE("Figure 8 / §5.4.2: a leader never commits an entry of an earlier term by counting replicas") {
  // Node 1 holds entry 2 of term 2 and leads term 4 (figure 8, (c)).
  auto ps = disk_with_terms(voters(5), {1, 2}, 3);
  core c(config_of(1), ps);
  elect(c, {2, 3});
  REQUIRE(c.term() == term_t{4});
  REQUIRE(c.log().last_index() == index_t{3});  // its no-op
  // Entry 2 reaches a majority (1, 2, 3) but is of term 2: no commit.
  c.step({n(2), n(1), append_entries_reply{term_t{4}, true, index_t{2}, {}, {}, 1}});
  c.step({n(3), n(1), append_entries_reply{term_t{4}, true, index_t{2}, {}, {}, 2}});
  flush(c);
  CHECK(c.log().commit_index() < index_t{2});
  // Once the no-op of term 4 reaches a majority, it commits, and entry 2 with it.
  c.step({n(2), n(1), append_entries_reply{term_t{4}, true, index_t{3}, {}, {}, 3}});
  flush(c);
  CHECK(c.log().commit_index() < index_t{2});  // two of five
  c.step({n(3), n(1), append_entries_reply{term_t{4}, true, index_t{3}, {}, {}, 4}});
  flush(c);
  CHECK(c.log().commit_index() == index_t{3});
}

TEST_CASE("§5.4: an entry committed in a term is in the log of every later leader") {
  cluster c(quiet_cluster(5, 3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto first = *c.leader();
  // Node lagging: it receives nothing, so its log falls behind.
  auto lagging = first == n(5) ? n(4) : n(5);
  c.isolate(lagging);
  std::vector<std::size_t> committed;
  for (int i = 0; i < 5; ++i) {
    auto p = c.propose();
    REQUIRE(p.has_value());
    committed.push_back(*p);
  }
  REQUIRE(c.run_until([&] { return c.proposals()[committed.back()].acked; }, 100));
  c.crash(first);
  c.heal();
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 200));
  auto second = *c.leader();
  CHECK(second != lagging);  // §5.4.1 keeps the lagging node from winning
  for (auto p : committed) {
    auto where = c.proposals()[p].where;
    CHECK(c.at(second).raft->log().term_at(where.index) == where.term);
  }
}

TEST_CASE("a follower acknowledges entries only once they are durable") {
  core c(config_of(2), {}, voters(3));
  flush(c);
  append_entries ae{term_t{2}, index_t{1}, term_t{1}, {entry(2, 2)}, index_t{1}, 7};
  c.step({n(1), n(2), ae});
  auto r = c.take_ready();
  CHECK(r.entries.size() == 1);
  CHECK(bodies<append_entries_reply>(r.messages).empty());
  auto acks = bodies<append_entries_reply>(r.messages_after_persist);
  REQUIRE(acks.size() == 1);
  CHECK(acks[0].second.success);
  CHECK(acks[0].second.match_index == index_t{2});
  CHECK(acks[0].second.sequence == 7);
}

TEST_CASE("the leader replicates in parallel with its own write, which counts only once durable") {
  core c(config_of(1), {}, voters(3));
  elect(c, {2});
  followers_caught_up(c, {2, 3});
  auto p = c.propose("a");
  REQUIRE(p.has_value());
  auto r = c.take_ready();  // not reported durable
  // AppendEntries go out at once, before the leader's own write finishes.
  CHECK(bodies<append_entries>(r.messages).size() == 2);
  CHECK(r.entries.size() == 1);
  // One follower is not a quorum of three while the leader's copy is not durable.
  c.step({n(2), n(1), append_entries_reply{c.term(), true, p->index, {}, {}, 10}});
  CHECK(c.log().commit_index() < p->index);
  // The second follower makes two durable copies of three: committed without the leader's.
  c.step({n(3), n(1), append_entries_reply{c.term(), true, p->index, {}, {}, 11}});
  CHECK(c.log().commit_index() == p->index);
}

TEST_CASE("the leader's own durable write counts toward the quorum") {
  core c(config_of(1), {}, voters(3));
  elect(c, {2});
  auto p = c.propose("a");
  auto r = c.take_ready();
  c.step({n(2), n(1), append_entries_reply{c.term(), true, p->index, {}, {}, 10}});
  CHECK(c.log().commit_index() < p->index);
  c.persisted(r.persist_id);
  CHECK(c.log().commit_index() == p->index);
}

TEST_CASE("a follower whose ack comes after the commit learns the commit at once, not at the next heartbeat") {
  core c(config_of(1), {}, voters(3));
  elect(c, {2});
  followers_caught_up(c, {2, 3});
  auto p = c.propose("a");
  REQUIRE(p.has_value());
  flush(c);  // the leader's copy is durable
  // Follower 2 makes the quorum: the entry commits, and 2 is told.
  c.step({n(2), n(1), append_entries_reply{c.term(), true, p->index, {}, {}, 10}});
  REQUIRE(c.log().commit_index() == p->index);
  auto told = bodies<append_entries>(flush(c));
  auto reach = [&](node_id to) {
    index_t best{0};
    for (const auto& [dest, ae] : told) {
      if (dest != to) continue;
      auto last = index_t{ae.prev_log_index.value + ae.entries.size()};
      best = std::max(best, std::min(ae.leader_commit, last));  // what it may commit (§5.3)
    }
    return best;
  };
  CHECK(reach(n(2)) == p->index);
  // Follower 3's ack comes later; nothing else happens (no tick): it must be
  // sent a message that lets it commit the entry it holds.
  c.step({n(3), n(1), append_entries_reply{c.term(), true, p->index, {}, {}, 11}});
  told = bodies<append_entries>(flush(c));
  CHECK(reach(n(3)) == p->index);
  // Told once: a second ack of the same entry sends nothing more.
  c.step({n(3), n(1), append_entries_reply{c.term(), true, p->index, {}, {}, 12}});
  CHECK(bodies<append_entries>(flush(c)).empty());
}

TEST_CASE("pipelining: several AppendEntries are in flight before the first is acknowledged, up to the window") {
  auto cfg = config_of(1);
  cfg.max_inflight_messages = 3;
  core c(cfg, {}, voters(2));
  elect(c, {2});
  // Acknowledge the no-op so node 2 is in the replicate state.
  c.step({n(2), n(1), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, 100}});
  flush(c);
  std::size_t to_two = 0;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(c.propose("e" + std::to_string(i)).has_value());
    for (const auto& [to, ae] : bodies<append_entries>(flush(c))) {
      if (to == n(2) && !ae.entries.empty()) ++to_two;
    }
  }
  CHECK(to_two == 3);  // the window, not one at a time and not unbounded
  // An acknowledgement opens the window again.
  c.step({n(2), n(1), append_entries_reply{c.term(), true, index_t{c.log().last_index().value - 2}, {}, {}, 200}});
  auto more = bodies<append_entries>(flush(c));
  REQUIRE_FALSE(more.empty());
  CHECK(more.back().second.entries.size() == 2);
}

TEST_CASE("batching: proposals between two readies travel in one AppendEntries") {
  core c(config_of(1), {}, voters(2));
  elect(c, {2});
  c.step({n(2), n(1), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, 100}});
  flush(c);
  for (int i = 0; i < 10; ++i) REQUIRE(c.propose("e").has_value());
  auto aes = bodies<append_entries>(flush(c));
  REQUIRE(aes.size() == 1);
  CHECK(aes[0].second.entries.size() == 10);
}

TEST_CASE("fast backtracking: a follower with a long conflicting suffix catches up in a few round trips (thesis 5.3)") {
  auto config = voters(3);
  cluster_options o = quiet_cluster(3, 5);
  std::vector<std::uint64_t> leader_terms(30, 1), stale_terms(30, 1);
  for (int i = 0; i < 60; ++i) leader_terms.push_back(3);
  for (int i = 0; i < 200; ++i) stale_terms.push_back(2);  // 200 entries of a term nobody else has
  o.initial[1] = disk_with_terms(config, leader_terms, 3);
  o.initial[2] = disk_with_terms(config, leader_terms, 3);
  o.initial[3] = disk_with_terms(config, stale_terms, 3);
  cluster c(o);
  int rejections = 0;
  c.on_deliver = [&](const message& m) {
    if (auto* r = std::get_if<append_entries_reply>(&m.body); r && !r->success && m.from == n(3)) ++rejections;
  };
  auto& one = *c.at(n(1)).raft;
  while (one.role() == role::follower) one.tick();
  c.process(c.at(n(1)));
  REQUIRE(c.run_until([&] { return c.leader() == n(1); }, 50));
  REQUIRE(c.run_until([&] { return same_log(c.at(n(3)).raft->log(), one.log()); }, 100));
  CHECK(rejections <= 3);  // one per conflicting term, not one per entry
}

TEST_CASE("a follower that restarts from its disk catches up") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto leader = *c.leader();
  auto follower = leader == n(1) ? n(2) : n(1);
  c.crash(follower);
  for (int i = 0; i < 20; ++i) REQUIRE(c.propose().has_value());
  c.run_ticks(20);
  c.restart(follower);
  REQUIRE(c.run_until([&] { return c.at(follower).applied >= c.at(leader).applied; }, 100));
  CHECK(c.at(follower).restarts == 1);
}

TEST_CASE("flow control: proposals beyond max_uncommitted_bytes are refused as busy") {
  auto cfg = config_of(1);
  cfg.max_uncommitted_bytes = 100;
  core c(cfg, {}, voters(3));
  elect(c, {2});
  flush(c);
  REQUIRE(c.propose(std::string(80, 'a')).has_value());
  auto refused = c.propose(std::string(80, 'b'));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == errc::busy);
}

TEST_CASE("§5.1: a request from a stale term is refused with the current term, and a stale leader steps down") {
  core follower(config_of(2), {}, voters(3));
  flush(follower);
  follower.step({n(3), n(2), append_entries{term_t{5}, index_t{1}, term_t{1}, {}, index_t{1}, 1}});
  flush(follower);
  follower.step({n(1), n(2), append_entries{term_t{3}, index_t{1}, term_t{1}, {entry(2, 3)}, index_t{1}, 2}});
  auto replies = bodies<append_entries_reply>(flush(follower));
  REQUIRE(replies.size() == 1);
  CHECK_FALSE(replies[0].second.success);
  CHECK(replies[0].second.term == term_t{5});
  CHECK(follower.log().last_index() == index_t{1});

  core leader(config_of(1), {}, voters(3));
  elect(leader, {2});
  leader.step({n(2), n(1), replies[0].second});
  CHECK(leader.role() == role::follower);
  CHECK(leader.term() == term_t{5});
}

// --- reads (thesis 6.4) ------------------------------------------------------------------

TEST_CASE("ReadIndex: a read is released at the commit index only after a quorum confirms leadership") {
  core c(config_of(1), {}, voters(3));
  elect(c, {2});
  c.step({n(2), n(1), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, 1}});
  flush(c);
  auto commit = c.log().commit_index();
  REQUIRE(c.read_index(42).has_value());
  std::vector<ready> rs;
  auto msgs = flush(c, &rs);
  for (const auto& r : rs) CHECK(r.reads.empty());
  auto heartbeats = bodies<append_entries>(msgs);
  REQUIRE(heartbeats.size() == 2);  // one round, to both followers
  // A reply to a message sent before the read does not confirm it.
  c.step({n(2), n(1), append_entries_reply{c.term(), true, commit, {}, {}, 1}});
  CHECK(c.take_ready().reads.empty());
  c.step({n(3), n(1), append_entries_reply{c.term(), true, commit, {}, {}, heartbeats[1].second.sequence}});
  auto r = c.take_ready();
  REQUIRE(r.reads.size() == 1);
  CHECK(r.reads[0].id == 42);
  CHECK(r.reads[0].index == commit);
}

TEST_CASE("ReadIndex: a new leader serves reads only after committing an entry of its term") {
  core c(config_of(1), {}, voters(3));
  elect(c, {2});
  REQUIRE(c.read_index(7).has_value());
  auto seq = c.followers().at(n(2)).acked_sequence;
  // Leadership confirmed, but the no-op is not committed yet.
  for (std::uint64_t s = 1; s <= 20; ++s) c.step({n(2), n(1), append_entries_reply{c.term(), true, index_t{1}, {}, {}, seq + s}});
  CHECK(c.take_ready().reads.empty());
  c.step({n(2), n(1), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, seq + 30}});
  std::vector<ready> rs;
  auto msgs = flush(c, &rs);
  for (const auto& [to, ae] : bodies<append_entries>(msgs)) {
    if (to == n(2)) c.step({n(2), n(1), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, ae.sequence}});
  }
  flush(c, &rs);
  bool released = false;
  for (const auto& r : rs) {
    for (const auto& read : r.reads) released |= read.id == 7 && read.index == c.log().commit_index();
  }
  CHECK(released);
}

TEST_CASE("ReadIndex: a leader that steps down fails its pending reads; a follower refuses reads") {
  core c(config_of(1), {}, voters(3));
  elect(c, {2});
  REQUIRE(c.read_index(9).has_value());
  flush(c);
  c.step({n(2), n(1), append_entries{term_t{c.term().value + 1}, index_t{0}, term_t{0}, {}, index_t{0}, 1}});
  auto r = c.take_ready();
  REQUIRE(r.failed_reads.size() == 1);
  CHECK(r.failed_reads[0] == 9);
  auto refused = c.read_index(10);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == errc::not_leader);
  CHECK(refused.error().message().find("leader is 2") != std::string::npos);
}

// --- leadership transfer and preferred leader (thesis 3.10) ----------------------------------

TEST_CASE("transfer: the target gets TimeoutNow once caught up and wins without a pre-vote; proposals wait") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto from = *c.leader();
  auto to = from == n(3) ? n(2) : n(3);
  auto term = c.at(from).raft->term();
  REQUIRE(c.at(from).raft->transfer_leadership(to).has_value());
  auto refused = c.at(from).raft->propose("x");
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == errc::transferring);
  c.process(c.at(from));
  REQUIRE(c.run_until([&] { return c.leader() == to; }, 10));  // well within an election timeout
  CHECK(c.at(to).raft->term() == term_t{term.value + 1});
}

TEST_CASE("transfer: a transfer that does not finish within an election timeout is abandoned") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto from = *c.leader();
  auto to = from == n(3) ? n(2) : n(3);
  c.crash(to, false);
  REQUIRE(c.at(from).raft->transfer_leadership(to).has_value());
  c.process(c.at(from));
  c.run_ticks(12);
  CHECK(c.leader() == from);
  CHECK_FALSE(c.at(from).raft->transfer_target().has_value());
  CHECK(c.propose(from).has_value());
}

TEST_CASE("preferred leader: leadership returns to it once it is healthy and caught up") {
  cluster_options o = quiet_cluster(3);
  o.base.preferred_leader = n(1);
  cluster c(o);
  c.isolate(n(1));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  CHECK(c.leader() != n(1));
  for (int i = 0; i < 5; ++i) c.propose();
  c.run_ticks(10);
  c.heal();
  REQUIRE(c.run_until([&] { return c.leader() == n(1); }, 100));
}

// --- membership (thesis 4.1-4.2) -----------------------------------------------------------------

TEST_CASE("learners receive the log but never vote or campaign") {
  cluster_options o = quiet_cluster(1);
  o.learners = 1;
  cluster c(o);
  REQUIRE(c.run_until([&] { return c.leader() == n(1); }, 100));
  for (int i = 0; i < 3; ++i) c.propose();
  REQUIRE(c.run_until([&] { return c.at(n(2)).applied == c.at(n(1)).applied; }, 50));
  auto term = c.at(n(2)).raft->term();
  c.crash(n(1));
  c.run_ticks(200);  // many election timeouts
  CHECK(c.at(n(2)).raft->role() == role::follower);
  CHECK(c.at(n(2)).raft->term() == term);
  CHECK_FALSE(c.leader().has_value());
}

TEST_CASE("membership: add a learner, promote it once caught up, one change at a time") {
  cluster_options o = quiet_cluster(3);
  o.spares = 1;
  o.base.promotion_lag_entries = 2;
  cluster c(o);
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  c.run_ticks(5);  // the new leader commits its first entry
  c.isolate(n(4));  // it cannot catch up yet
  auto added = c.change_membership({membership_change::kind::add_learner, {n(4), "node4", suffrage::learner}});
  REQUIRE(added.has_value());
  // The core refuses a second change before the first commits (the driver
  // holds such a change: see the cases below).
  auto second = c.at(*c.leader()).raft->propose_membership({membership_change::kind::remove, {n(3), "", suffrage::voter}});
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().code == errc::config_change_pending);
  c.run_ticks(5);
  for (int i = 0; i < 10; ++i) c.propose();
  c.run_ticks(5);
  auto early = c.at(*c.leader()).raft->propose_membership({membership_change::kind::promote, {n(4), "", suffrage::voter}});
  REQUIRE_FALSE(early.has_value());
  CHECK(early.error().code == errc::not_caught_up);
  c.heal();
  REQUIRE(c.run_until(
      [&] {
        const auto& leader = *c.at(*c.leader()).raft;
        return leader.followers().at(n(4)).match == leader.log().last_index();
      },
      100));
  auto promoted = c.change_membership({membership_change::kind::promote, {n(4), "", suffrage::voter}});
  REQUIRE_MESSAGE(promoted.has_value(), promoted.error().message());
  REQUIRE(c.run_until([&] { return c.at(n(4)).raft->is_voter(n(4)); }, 50));
  // Now a 4-voter cluster: losing two voters stops commits.
  c.run_ticks(10);
  CHECK(c.at(*c.leader()).raft->current_configuration().servers.size() == 4);
}

// --- membership changes the driver holds until the core takes them ----------------------------

namespace {

// A 3-voter cluster that has added server 4 as a learner while 4 is cut off,
// appended entries 4 lacks, then asked for 4's promotion: the core refuses
// it (not_caught_up) until 4 catches up. `answer` receives its outcome.
struct lagging_promotion {
  cluster c;
  node_id leader;
  std::optional<expected<commit>> answer;
  expected<void> asked;

  explicit lagging_promotion(int wait_ticks) : c(options(wait_ticks)) {
    REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
    c.run_ticks(5);  // the new leader commits its first entry
    leader = *c.leader();
    c.isolate(n(4));
    REQUIRE(c.change_membership({membership_change::kind::add_learner, {n(4), "node4", suffrage::learner}}).has_value());
    for (int i = 0; i < 10; ++i) c.propose();
    c.run_ticks(10);
    REQUIRE(c.at(leader).raft->current_configuration().servers.size() == 4);
    REQUIRE(c.at(leader).raft->log().commit_index() == c.at(leader).raft->log().last_index());
    asked = c.change_membership({membership_change::kind::promote, {n(4), "", suffrage::voter}},
                                [this](expected<commit> r) { answer = std::move(r); });
    c.run_ticks(10);
  }

  static cluster_options options(int wait_ticks) {
    cluster_options o = quiet_cluster(3);
    o.spares = 1;
    o.base.promotion_lag_entries = 2;
    o.membership_wait_ticks = wait_ticks;
    return o;
  }
};

}  // namespace

TEST_CASE("membership: a promotion asked while the learner lags waits at the leader and commits once it caught up") {
  lagging_promotion p(1000);
  REQUIRE_MESSAGE(p.asked.has_value(), p.asked.error().message());
  CHECK_FALSE(p.answer.has_value());
  CHECK_FALSE(p.c.at(p.leader).raft->is_voter(n(4)));
  // One change waits at a time: another is refused at once.
  auto third = p.c.change_membership({membership_change::kind::remove, {n(3), "", suffrage::voter}});
  REQUIRE_FALSE(third.has_value());
  CHECK(third.error().code == errc::config_change_pending);
  p.c.heal();
  REQUIRE(p.c.run_until([&] { return p.answer.has_value(); }, 200));
  REQUIRE_MESSAGE(p.answer->has_value(), p.answer->error().message());
  CHECK(p.c.leader() == p.leader);
  CHECK(p.c.at(p.leader).raft->is_voter(n(4)));
  CHECK(p.c.at(p.leader).raft->log().commit_index() >= (*p.answer)->index);
}

TEST_CASE("membership: a change asked before the previous one commits waits for it, then commits") {
  cluster_options o = quiet_cluster(3);
  o.spares = 1;
  o.base.promotion_lag_entries = 2;
  cluster c(o);
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  c.run_ticks(5);  // the new leader commits its first entry
  auto leader = *c.leader();
  REQUIRE(c.change_membership({membership_change::kind::add_learner, {n(4), "node4", suffrage::learner}}).has_value());
  std::optional<expected<commit>> answer;
  auto asked = c.change_membership({membership_change::kind::promote, {n(4), "", suffrage::voter}},
                                   [&](expected<commit> r) { answer = std::move(r); });
  REQUIRE_MESSAGE(asked.has_value(), asked.error().message());
  REQUIRE(c.run_until([&] { return answer.has_value(); }, 100));
  REQUIRE_MESSAGE(answer->has_value(), answer->error().message());
  CHECK(c.at(leader).raft->is_voter(n(4)));
}

TEST_CASE("membership: a change waiting at the leader fails with not_leader when the leadership ends") {
  lagging_promotion p(1000);
  REQUIRE_MESSAGE(p.asked.has_value(), p.asked.error().message());
  CHECK_FALSE(p.answer.has_value());
  p.c.isolate(p.leader);  // check-quorum: it steps down within an election timeout
  REQUIRE(p.c.run_until([&] { return p.answer.has_value(); }, 100));
  REQUIRE_FALSE(p.answer->has_value());
  CHECK(p.answer->error().code == errc::not_leader);
  CHECK(p.c.at(p.leader).raft->role() != role::leader);
}

TEST_CASE("membership: a change waiting at the leader fails with not_caught_up, saying where the learner is, when its time is up") {
  lagging_promotion p(60);
  REQUIRE_MESSAGE(p.asked.has_value(), p.asked.error().message());
  p.c.run_ticks(40);  // 50 of its 60 ticks
  CHECK_FALSE(p.answer.has_value());
  REQUIRE(p.c.run_until([&] { return p.answer.has_value(); }, 20));
  REQUIRE_FALSE(p.answer->has_value());
  CHECK(p.answer->error().code == errc::not_caught_up);
  CHECK_MESSAGE(p.answer->error().detail.find("server 4 is at 0, the log at ") == 0, p.answer->error().detail);
  CHECK(p.c.leader() == p.leader);
  CHECK_FALSE(p.c.at(p.leader).raft->is_voter(n(4)));
}

TEST_CASE("membership: a removed leader steps down once the change commits and hands over at once") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto old_leader = *c.leader();
  c.propose();
  c.run_ticks(5);
  REQUIRE(c.change_membership({membership_change::kind::remove, {old_leader, "", suffrage::voter}}).has_value());
  REQUIRE(c.run_until([&] { return c.leader() && *c.leader() != old_leader; }, 10));  // TimeoutNow, no election timeout
  c.run_ticks(100);
  CHECK(c.at(old_leader).raft->role() == role::follower);
  CHECK_FALSE(c.at(old_leader).raft->is_voter(old_leader));
  CHECK(c.propose().has_value());
}

TEST_CASE("membership: a removed leader hands over to the most caught-up connected voter, the one rule of step_down") {
  // Voter 2 is as caught up as 3 but its connection is lost: TimeoutNow to
  // it would most likely be lost too, and an election timeout would follow.
  core c(config_of(1), {}, voters(4));
  elect(c, {2, 3});
  auto ack = [&](std::uint64_t from) {
    c.step({n(from), n(1), append_entries_reply{c.term(), true, c.log().last_index(), {}, {}, 1}});
  };
  ack(2);
  ack(3);
  flush(c);
  REQUIRE(c.propose_membership({membership_change::kind::remove, {n(1), "", suffrage::voter}}).has_value());
  flush(c);
  ack(2);
  c.peer_connection_lost(n(2));
  REQUIRE(c.role() == role::leader);  // 3 and 4 of {2, 3, 4} are connected
  CHECK(c.best_transfer_target() == n(3));
  ack(3);  // commits the removal
  CHECK(c.role() == role::follower);
  auto handover = bodies<timeout_now>(flush(c));
  REQUIRE(handover.size() == 1);
  CHECK(handover[0].first == n(3));
}

// --- snapshots (§7) --------------------------------------------------------------------------------

TEST_CASE("§7: a follower too far behind catches up by InstallSnapshot, in chunks") {
  cluster_options o = quiet_cluster(3);
  o.base.snapshot_chunk_bytes = 40;
  o.base.snapshot_trailing_entries = 0;
  cluster c(o);
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto leader = *c.leader();
  auto behind = leader == n(3) ? n(2) : n(3);
  c.isolate(behind);
  for (int i = 0; i < 20; ++i) c.propose();
  REQUIRE(c.run_until([&] { return c.at(leader).applied.value >= 20; }, 100));
  c.snapshot(leader);
  REQUIRE(c.at(leader).raft->log().start_index() > c.at(behind).raft->log().last_index());
  int chunks = 0;
  c.on_deliver = [&](const message& m) { chunks += std::holds_alternative<install_snapshot>(m.body); };
  c.heal();
  REQUIRE(c.run_until([&] { return c.at(behind).applied >= c.at(leader).applied; }, 100));
  CHECK(chunks > 1);
  CHECK(c.at(behind).snapshots.latest() != nullptr);
  CHECK(c.at(behind).raft->log().start_index() == c.at(leader).raft->last_snapshot().meta.last_index);
}

TEST_CASE("§7: a snapshot keeps the log entries after it, and compaction keeps trailing entries") {
  cluster_options o = quiet_cluster(1);
  o.base.snapshot_trailing_entries = 3;
  cluster c(o);
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  for (int i = 0; i < 10; ++i) c.propose();
  c.run_ticks(5);
  auto applied = c.at(n(1)).applied;
  c.snapshot(n(1));
  const auto& log = c.at(n(1)).raft->log();
  CHECK(log.start_index() == index_t{applied.value - 3});
  for (int i = 0; i < 2; ++i) c.propose();
  c.run_ticks(5);
  CHECK(log.last_index().value == applied.value + 2);
  // A restart rebuilds the state machine from the snapshot plus the log.
  c.crash(n(1));
  c.restart(n(1));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  REQUIRE(c.run_until([&] { return c.at(n(1)).applied.value >= applied.value + 2; }, 100));
}

// --- fast failover ------------------------------------------------------------------------------------

TEST_CASE("connection lost: a crashed leader is replaced well within one election timeout") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  c.run_ticks(20);
  auto old_leader = *c.leader();
  c.crash(old_leader, true);
  auto start = c.now();
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto ticks = (c.now() - start) / 10;
  CHECK(ticks < 10);  // the minimum election timeout

  // Without the signal the same crash takes at least an election timeout.
  cluster d(quiet_cluster(3));
  REQUIRE(d.run_until([&] { return d.leader().has_value(); }, 100));
  d.run_ticks(20);
  d.crash(*d.leader(), false);
  start = d.now();
  REQUIRE(d.run_until([&] { return d.leader().has_value(); }, 100));
  CHECK((d.now() - start) / 10 >= 10);
}

TEST_CASE("connection lost: a spurious signal does not disturb a healthy leader") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto leader = *c.leader();
  auto term = c.at(leader).raft->term();
  auto follower = leader == n(1) ? n(2) : n(1);
  for (int i = 0; i < 5; ++i) {
    c.connection_lost(follower, leader);
    c.run_ticks(10);
  }
  CHECK(c.leader() == leader);
  CHECK(c.at(leader).raft->term() == term);
}

TEST_CASE("connection lost: a leader that loses its connections to a quorum steps down at once") {
  cluster c(quiet_cluster(3));
  REQUIRE(c.run_until([&] { return c.leader().has_value(); }, 100));
  auto leader = *c.leader();
  std::vector<node_id> others;
  for (auto id : c.ids()) {
    if (id != leader) others.push_back(id);
  }
  c.connection_lost(leader, others[0]);
  CHECK(c.at(leader).raft->role() == role::leader);  // one lost peer of two: still a quorum
  c.connection_lost(leader, others[1]);
  CHECK(c.at(leader).raft->role() == role::follower);
}

TEST_CASE("regression (sim seed 363): a single voter leads only once its term is durable, then sends at once") {
  // A single voter wins alone, without a round trip. Had it led and sent
  // AppendEntries before its term was durable and crashed, it could win the
  // same term again and send different entries under the same (index, term)
  // to the learner. Its own vote counts only once on disk.
  core c(config_of(1), {}, voters(1, 1));
  flush(c);
  while (c.role() == role::follower || c.role() == role::pre_candidate) c.tick();
  CHECK(c.role() == role::candidate);
  auto r = c.take_ready();
  REQUIRE(r.state.has_value());
  CHECK(r.state->term == c.term());
  CHECK(bodies<append_entries>(sent(r)).empty());
  c.persisted(r.persist_id);
  CHECK(c.role() == role::leader);
  // Its term is durable: AppendEntries go out in parallel with its writes.
  CHECK_FALSE(bodies<append_entries>(c.take_ready().messages).empty());
}

// --- building blocks: the quorum rule, progress, the transition check ------------------------------

TEST_CASE("quorum: the value a majority of voters reached is the (n/2 + 1)-th largest") {
  CHECK(majority_value<int>({}) == 0);
  CHECK(majority_value<int>({7}) == 7);
  CHECK(majority_value<int>({1, 9}) == 1);         // 2 voters: both
  CHECK(majority_value<int>({3, 1, 2}) == 2);      // 3 voters: 2 of them
  CHECK(majority_value<int>({5, 5, 1, 1}) == 1);   // 4 voters: 3 of them
  CHECK(majority_value<int>({0, 1, 1, 0, 1}) == 1);  // yes/no: 3 of 5 agree
  CHECK(majority_value<int>({1, 0, 0, 1, 0}) == 0);
}

TEST_CASE("progress: a probe that is acknowledged pipelines from match; a reset probes again and forgets the window") {
  auto pr = progress::starting_at(index_t{10}, 1);
  CHECK(pr.state == progress::mode::probe);
  CHECK(pr.may_send_append(4));
  pr.append_sent(index_t{12});
  CHECK_FALSE(pr.may_send_append(4));  // one probe at a time
  CHECK(pr.next == index_t{10});
  pr.acknowledged(index_t{12});
  pr.become_replicate();
  CHECK(pr.next == index_t{13});
  pr.append_sent(index_t{14});
  pr.append_sent(index_t{16});
  CHECK(pr.next == index_t{17});
  CHECK_FALSE(pr.may_send_append(2));  // the window is full
  pr.acknowledged(index_t{14});
  CHECK(pr.inflight.size() == 1);
  CHECK(pr.may_send_append(2));
  CHECK_FALSE(pr.heartbeat_unanswered());
  CHECK(pr.heartbeat_unanswered());  // two intervals without an answer: presumed lost
  pr.become_probe(index_t{15}, 9);
  CHECK(pr.inflight.empty());
  CHECK(pr.match == index_t{14});
  CHECK(pr.reset_sequence == 9);
}

TEST_CASE("transition check: terms, votes, leaders and commit never go back within what Raft allows") {
  observed_state before;
  before.term = term_t{3};
  before.voted_for = n(2);
  before.leader = n(2);
  before.role = role::follower;
  before.commit = index_t{10};
  before.applied = index_t{8};
  before.durable_term = term_t{3};
  auto after = before;
  CHECK_FALSE(transition_violation(before, after).has_value());
  // A new term may clear the vote and the leader; committing and applying move on.
  after.term = term_t{4};
  after.voted_for = no_node;
  after.leader = no_node;
  after.commit = index_t{12};
  after.applied = index_t{12};
  CHECK_FALSE(transition_violation(before, after).has_value());

  auto broken = [&](auto change) {
    auto bad = before;
    change(bad);
    auto why = transition_violation(before, bad);
    return why ? *why : std::string();
  };
  CHECK(broken([](observed_state& s) { s.term = term_t{2}; }).find("term went back") != std::string::npos);
  CHECK(broken([](observed_state& s) { s.voted_for = n(3); }).find("vote in term 3") != std::string::npos);
  CHECK(broken([](observed_state& s) { s.leader = n(3); }).find("leader of term 3") != std::string::npos);
  CHECK(broken([](observed_state& s) { s.role = role::leader; s.leader = no_node; }).find("without being its candidate") !=
        std::string::npos);
  CHECK(broken([](observed_state& s) { s.commit = index_t{9}; }).find("commit index went back") != std::string::npos);
  CHECK(broken([](observed_state& s) { s.applied = index_t{7}; }).find("applied index") != std::string::npos);
  CHECK(broken([](observed_state& s) { s.durable_term = term_t{2}; }).find("durable term") != std::string::npos);
  // Forgetting the leader is allowed (connection lost); the vote stays.
  CHECK(broken([](observed_state& s) { s.leader = no_node; }).empty());
}
