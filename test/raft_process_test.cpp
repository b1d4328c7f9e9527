// The Raft runtime as real processes on loopback: election, replication,
// crash and restart, catch-up by snapshot, frozen and partitioned leaders,
// graceful handover and a stalled disk. Each case starts its own cluster
// on free ports and kills every process it started.
#include <doctest/doctest.h>

#include <future>
#include <set>

#include "actors/atoms.hpp"
#include "schema/client_codec.hpp"
#include "schema/codec.hpp"
#include "test/process_cluster.hpp"
#include "test/skip.hpp"
#include "test/small_disk.hpp"

using namespace conclave;
using namespace conclave::test;
using namespace std::chrono_literals;

namespace {

// Waits until every running server has applied the same commands.
bool converged(process_cluster& c, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    std::set<std::string> digests;
    std::set<std::uint64_t> applied;
    for (const auto& m : c.members()) {
      if (m.pid <= 0) continue;
      auto s = c.status(m.id);
      if (!s) {
        digests.insert("unreachable");
        continue;
      }
      digests.insert(s->digest);
      applied.insert(s->applied_index);
    }
    if (digests.size() == 1 && applied.size() == 1) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<client::committed> propose_many(process_cluster& c, int count, const std::string& prefix) {
  std::vector<client::committed> acked;
  for (int i = 0; i < count; ++i) {
    auto r = c.client().propose(prefix + std::to_string(i));
    // A proposal whose connection broke under it may or may not have been
    // applied; sending it again is fine here (these tests look up commands
    // by name, and a duplicate changes nothing they check).
    for (int retry = 0; !r && r.error().code == errc::outcome_unknown && retry < 3; ++retry) {
      r = c.client().propose(prefix + std::to_string(i));
    }
    if (r) acked.push_back(*r);
  }
  return acked;
}

// Every acknowledged command is applied, by a linearizable read.
void check_acked_survive(process_cluster& c, const std::string& prefix, int count, std::size_t acked) {
  std::size_t found = 0;
  for (int i = 0; i < count; ++i) {
    auto r = c.client().read("index " + prefix + std::to_string(i));
    if (r && r->result != "none") ++found;
  }
  CHECK(found >= acked);
}

}  // namespace

TEST_CASE("three processes elect exactly one leader") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader.has_value());
  std::this_thread::sleep_for(300ms);
  int leaders = 0;
  for (const auto& m : c.members()) {
    auto s = c.status(m.id);
    REQUIRE(s.has_value());
    leaders += s->role == "leader";
    CHECK(s->leader_id == *leader);
  }
  CHECK(leaders == 1);
}

TEST_CASE("a client's mailbox stays small however many calls it makes (a long-lived member heartbeats forever)") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  caf::actor_system sys{client_config()};
  raft_client own(sys, c.cluster_id, {c.at(*leader).address});
  // Every call answered in time, each with a timeout that fires later.
  for (int i = 0; i < 200; ++i) REQUIRE(own.call(c.at(*leader).address, client::status_request{}, 300ms).has_value());
  std::this_thread::sleep_for(1s);  // every timeout has fired
  REQUIRE(own.call(c.at(*leader).address, client::status_request{}, 300ms).has_value());
  CHECK(own.queued_messages() < 40);
}

TEST_CASE("1,000 proposals commit and every server applies the same log") {
  process_cluster c(3);
  REQUIRE(c.wait_for_leader(10s));
  auto acked = propose_many(c, 1000, "p");
  CHECK(acked.size() == 1000);
  REQUIRE(converged(c, 10s));
  auto s = c.status(1);
  REQUIRE(s.has_value());
  CHECK(s->digest.find("count=1000 ") == 0);
}

TEST_CASE("kill -9 of the leader: a new leader, no acknowledged proposal lost, the killed server catches up") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  auto before = propose_many(c, 200, "a");
  REQUIRE(before.size() == 200);
  int status = c.signal(*leader, SIGKILL);
  CHECK(WIFSIGNALED(status));
  auto next = c.wait_for_leader(5s, *leader);
  REQUIRE(next);
  CHECK(*next != *leader);
  auto after = propose_many(c, 200, "b");
  CHECK(after.size() == 200);
  check_acked_survive(c, "a", 200, before.size());
  // The killed server restarts from its LMDB log and catches up.
  c.start(*leader);
  REQUIRE(converged(c, 15s));
  CHECK(c.log_of(*leader).find("starting: cluster") != std::string::npos);
}

TEST_CASE("a restarted server whose log was compacted away catches up by InstallSnapshot") {
  process_cluster c(3, {"--snapshot-every", "50", "--snapshot-trailing", "10"});
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  auto follower = *leader == 1 ? 2u : 1u;
  c.signal(follower, SIGKILL);
  auto acked = propose_many(c, 400, "s");
  CHECK(acked.size() == 400);
  c.start(follower);
  REQUIRE(converged(c, 15s));
  CHECK(c.log_of(follower).find("installed a snapshot") != std::string::npos);
}

TEST_CASE("SIGSTOP of the leader: a new leader by timeout; resumed, the old leader steps down without committing") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  REQUIRE(propose_many(c, 20, "f").size() == 20);
  auto old_term = c.status(*leader)->term;
  c.signal(*leader, SIGSTOP);
  auto next = c.wait_for_leader(5s, *leader);
  REQUIRE(next);
  // A proposal sent to the frozen leader waits in its mailbox.
  caf::actor_system sys{client_config()};
  raft_client direct(sys, c.cluster_id, {c.at(*leader).address});
  std::optional<expected<client::response>> frozen_reply;
  std::thread sender([&] { frozen_reply = direct.call(c.at(*leader).address, client::propose{"frozen"}, 5000ms); });
  std::this_thread::sleep_for(300ms);
  c.signal(*leader, SIGCONT);
  sender.join();
  REQUIRE(frozen_reply.has_value());
  // The old leader either appended it while it still thought it led (then it
  // is lost, never committed), or, having stepped down, passed it on to the
  // new leader, which committed it in its own, later term.
  bool committed = *frozen_reply && std::holds_alternative<client::committed>(**frozen_reply);
  if (committed) CHECK(std::get<client::committed>(**frozen_reply).term > old_term);
  std::this_thread::sleep_for(500ms);
  auto s = c.status(*leader);
  REQUIRE(s.has_value());
  CHECK(s->role == "follower");
  CHECK(s->term > old_term);
  auto r = c.client().read("index frozen");
  REQUIRE(r.has_value());
  CHECK((r->result != "none") == committed);
  REQUIRE(converged(c, 10s));
}

TEST_CASE("a partition through the fault channel isolates the leader; the majority elects a new one") {
  process_cluster c(3, {"--fault-injection", "true"});
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  auto r = c.isolate(*leader);
  REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
  auto next = c.wait_for_leader(5s, *leader);
  REQUIRE(next);
  CHECK(*next != *leader);
  // The old leader, unable to reach a quorum, stops leading (check-quorum).
  std::this_thread::sleep_for(1200ms);
  CHECK(c.status(*leader)->role != "leader");
  CHECK(propose_many(c, 10, "q").size() == 10);
  // Healed, it rejoins and catches up.
  REQUIRE(c.heal(*leader).has_value());
  REQUIRE(converged(c, 10s));
}

TEST_CASE("the fault channel is closed unless the server was started for tests (fault-injection = true)") {
  process_cluster c(1);
  REQUIRE(c.wait_for_leader(10s));
  auto refused = c.set_faults(1, {2}, {2});
  REQUIRE_FALSE(refused.has_value());
  CHECK_MESSAGE(refused.error().detail.find("fault injection is off") != std::string::npos, refused.error().message());
  REQUIRE_FALSE(c.stall_storage(1, 4000).has_value());
  CHECK(c.log_of(1).find("refusing fault injection") != std::string::npos);
}

TEST_CASE("graceful SIGTERM of the leader hands leadership over and exits 0") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  REQUIRE(propose_many(c, 10, "g").size() == 10);
  int status = c.signal(*leader, SIGTERM);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  auto next = c.wait_for_leader(5s, *leader);
  REQUIRE(next);
  // Handed over, not merely gone: it stopped as a follower, before its deadline.
  CHECK(c.log_of(*leader).find("handing leadership to node") != std::string::npos);
  CHECK(c.log_of(*leader).find("stopped (not leading)") != std::string::npos);
  CHECK(propose_many(c, 10, "h").size() == 10);
}

// A leader counts itself towards a commit only once its own write is
// durable, so while both followers write, a stalled leader disk holds
// nothing back; stepping down would only start an election (the rule and why:
// actors/raft/driver.cpp, tick()).
TEST_CASE("a leader whose disk stalls keeps leading and commits on its followers' disks") {
  process_cluster c(3, {"--fault-injection", "true"});
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  REQUIRE(propose_many(c, 10, "d").size() == 10);
  auto before = c.status(*leader);
  REQUIRE(before);
  // Long enough to outlast the checks; ended below (0: resume).
  REQUIRE(c.stall_storage(*leader, 60000).has_value());
  // Every write commits while the leader's disk is stalled.
  CHECK(propose_many(c, 20, "e").size() == 20);
  auto during = c.status(*leader);
  REQUIRE(during);
  CHECK(during->role == "leader");
  CHECK(during->term == before->term);
  CHECK(during->commit_index >= before->commit_index + 20);
  // The stalled write shows in its log, and no election happened.
  auto until = std::chrono::steady_clock::now() + 3s;
  while (c.log_of(*leader).find("storage has not finished a write") == std::string::npos &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(50ms);
  }
  CHECK(c.log_of(*leader).find("still leading: entries commit on the others' disks") != std::string::npos);
  CHECK(c.log_of(*leader).find("stepping down") == std::string::npos);
  REQUIRE(c.stall_storage(*leader, 0).has_value());
  REQUIRE(converged(c, 15s));
  auto after = c.status(*leader);
  REQUIRE(after);
  CHECK(after->term == before->term);
}

// Makes `id` the leader by a transfer (retried: the target must be caught up).
bool make_leader(process_cluster& c, std::uint64_t id, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    auto s = c.status(id);
    if (s && s->role == "leader") return true;
    if (auto leader = c.wait_for_leader(2s)) {
      (void)c.client().call(c.at(*leader).address, client::transfer_leadership{id}, 500ms);
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST_CASE("a leader whose disk fills steps down, refuses writes, loses nothing and resumes in place when space returns") {
  small_disks disks(3, 16 << 20);
  if (!disks.mounted()) {
    CONCLAVE_SKIP(disks.why_not());
  }
  process_cluster c(3, {}, {}, {disks.data_dirs(), {}, {}});
  REQUIRE(c.wait_for_leader(10s));
  REQUIRE(make_leader(c, 1, 15s));
  auto pid = c.at(1).pid;
  // Commands of 4 KiB, so that each needs fresh pages on disk.
  std::string pad(4096, 'p');
  auto put = [&](const std::string& name) {
    auto r = c.client().propose(name + pad);
    // One in the write that failed may or may not have been applied; sending
    // it again is fine here (commands are looked up by name).
    for (int retry = 0; !r && r.error().code == errc::outcome_unknown && retry < 3; ++retry) {
      r = c.client().propose(name + pad);
    }
    return r.has_value();
  };
  for (int i = 0; i < 10; ++i) REQUIRE(put("a" + std::to_string(i)));

  disks[1].fill();
  int acked = 0;
  for (int i = 0; i < 40; ++i) acked += put("b" + std::to_string(i)) ? 1 : 0;
  // The other two carried on without node 1: every write was acknowledged.
  CHECK(acked == 40);
  auto next = c.wait_for_leader(5s, 1);
  REQUIRE(next);
  auto full = c.status(1);
  REQUIRE(full);
  CHECK(full->role != "leader");
  CHECK_MESSAGE(full->storage_error.find("disk/map full") != std::string::npos, full->storage_error);
  CHECK(c.log_of(1).find("stepping down: cannot write to disk") != std::string::npos);
  // Node 1 itself refuses new entries with the reason, whoever leads.
  auto refused = c.client().call(c.at(1).address, client::propose{"direct" + pad}, 2s);
  REQUIRE(refused.has_value());
  auto* f = std::get_if<client::failure>(&*refused);
  REQUIRE(f);
  CHECK(f->code == "disk_full");
  CHECK(f->message.find("cannot write to its disk") != std::string::npos);
  // It is still the same process, not restarted.
  int status = 0;
  CHECK(::waitpid(pid, &status, WNOHANG) == 0);

  disks[1].free_filler();
  // The retried write lands, node 1 catches up in place and may lead again.
  auto until = std::chrono::steady_clock::now() + 10s;
  std::optional<client::status> resumed;
  while ((!(resumed = c.status(1)) || !resumed->storage_error.empty()) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(resumed);
  CHECK(resumed->storage_error.empty());
  REQUIRE(converged(c, 20s));
  CHECK(c.log_of(1).find("storage is writing again") != std::string::npos);
  CHECK(c.at(1).pid == pid);
  CHECK(::waitpid(pid, &status, WNOHANG) == 0);
  REQUIRE(make_leader(c, 1, 15s));
  for (int i = 0; i < 10; ++i) CHECK(put("c" + std::to_string(i)));
  // Nothing acknowledged was lost.
  int found = 0;
  for (const auto* prefix : {"a", "b", "c"}) {
    for (int i = 0; i < (prefix[0] == 'b' ? 40 : 10); ++i) {
      auto r = c.client().read("index " + std::string(prefix) + std::to_string(i) + pad);
      found += r && r->result != "none" ? 1 : 0;
    }
  }
  CHECK(found == 60);
  REQUIRE(converged(c, 15s));
}

TEST_CASE("a follower whose disk is full reports it, still stops on SIGTERM, and restarts with nothing lost") {
  small_disks disks(3, 16 << 20);
  if (!disks.mounted()) {
    CONCLAVE_SKIP(disks.why_not());
  }
  process_cluster c(3, {}, {}, {disks.data_dirs(), {}, {}});
  REQUIRE(c.wait_for_leader(10s));
  REQUIRE(make_leader(c, 1, 15s));
  std::string pad(4096, 'p');
  REQUIRE(propose_many(c, 5, "f").size() == 5);
  disks[3].fill();
  int acked = 0;
  for (int i = 0; i < 30; ++i) acked += c.client().propose("g" + std::to_string(i) + pad).has_value() ? 1 : 0;
  CHECK(acked == 30);
  auto until = std::chrono::steady_clock::now() + 10s;
  std::optional<client::status> full;
  while ((!(full = c.status(3)) || full->storage_error.empty()) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(full);
  CHECK_MESSAGE(full->storage_error.find("disk/map full") != std::string::npos, c.log_of(3));
  // Its failed write holds nothing anybody was promised: it stops at once.
  auto pid = c.at(3).pid;
  ::kill(pid, SIGTERM);
  auto exited = c.wait_exit(pid, 5s);
  REQUIRE(exited);
  CHECK(WIFEXITED(*exited));
  CHECK(WEXITSTATUS(*exited) == 0);
  disks[3].free_filler();
  c.start(3);
  REQUIRE(converged(c, 20s));
  int found = 0;
  for (int i = 0; i < 30; ++i) {
    auto r = c.client().read("index g" + std::to_string(i) + pad);
    found += r && r->result != "none" ? 1 : 0;
  }
  CHECK(found == 30);
}

TEST_CASE("a follower whose log reaches its cap (log-max-mib) refuses writes as if full; restarted with room it catches up") {
  process_cluster c(3);
  REQUIRE(c.wait_for_leader(10s));
  REQUIRE(make_leader(c, 1, 15s));
  c.set_member_flags(3, {"--log-max-mib", "1"});
  REQUIRE(WIFEXITED(c.signal(3, SIGTERM)));
  c.start(3);
  std::string pad(4096, 'p');
  int acked = 0;
  for (int i = 0; i < 400; ++i) acked += c.client().propose("m" + std::to_string(i) + pad).has_value() ? 1 : 0;
  CHECK(acked == 400);
  auto until = std::chrono::steady_clock::now() + 10s;
  std::optional<client::status> capped;
  while ((!(capped = c.status(3)) || capped->storage_error.empty()) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(capped);
  CHECK_MESSAGE(capped->storage_error.find("size cap") != std::string::npos, capped->storage_error);
  auto refused = c.client().call(c.at(3).address, client::propose{"direct"}, 2s);
  REQUIRE(refused.has_value());
  REQUIRE(std::holds_alternative<client::failure>(*refused));
  CHECK(std::get<client::failure>(*refused).code == "map_full");
  c.set_member_flags(3, {"--log-max-mib", "64"});
  auto stopped = c.signal(3, SIGTERM);
  CHECK(WIFEXITED(stopped));
  CHECK(WEXITSTATUS(stopped) == 0);
  c.start(3);
  REQUIRE(converged(c, 20s));
  auto s3 = c.status(3);
  REQUIRE(s3);
  CHECK(s3->storage_error.empty());
}

TEST_CASE("with every master's disk full, writes fail with disk_full, stale reads still answer, and all resume together") {
  small_disks disks(3, 16 << 20);
  if (!disks.mounted()) {
    CONCLAVE_SKIP(disks.why_not());
  }
  process_cluster c(3, {}, {}, {disks.data_dirs(), {}, {}});
  REQUIRE(c.wait_for_leader(10s));
  REQUIRE(propose_many(c, 5, "h").size() == 5);
  disks.fill_all();
  std::string pad(4096, 'p');
  // The first write fills a disk somewhere; soon every master refuses, and
  // the client says why.
  expected<client::committed> r = make_error(errc::unavailable, "not tried");
  auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    r = c.client().propose("full" + pad, 3s);
    if (!r && r.error().code == errc::disk_full) break;
  }
  REQUIRE_FALSE(r.has_value());
  CHECK_MESSAGE(r.error().code == errc::disk_full, r.error().message());
  CHECK(r.error().message().find("cannot write to its disk") != std::string::npos);
  // What was committed before stays readable from any master.
  for (const auto& m : c.members()) {
    auto s = c.client().call(m.address, client::stale_read{"index h0"}, 2s);
    REQUIRE(s.has_value());
    auto* read = std::get_if<client::read_result>(&*s);
    REQUIRE(read);
    CHECK(read->result != "none");
  }
  disks.free_all();
  expected<client::committed> resumed = make_error(errc::unavailable, "not tried");
  until = std::chrono::steady_clock::now() + 20s;
  while (!resumed && std::chrono::steady_clock::now() < until) resumed = c.client().propose("after" + pad, 3s);
  CHECK_MESSAGE(resumed.has_value(), resumed.error().message());
  REQUIRE(converged(c, 20s));
  check_acked_survive(c, "h", 5, 5);
}

TEST_CASE("a request a follower passed on fails as soon as the leader's connection breaks, not at the client's timeout") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  REQUIRE(propose_many(c, 5, "p").size() == 5);
  auto follower = *leader % 3 + 1;
  // The leader freezes with its connections open; the follower passes a
  // read and a write on to it, and they wait there until it is killed.
  c.signal(*leader, SIGSTOP);
  caf::actor_system sys{client_config()};
  auto ask = [&](client::request r) {
    raft_client own(sys, c.cluster_id, {c.at(follower).address});
    return own.call(c.at(follower).address, r, 30s);
  };
  auto read = std::async(std::launch::async, ask, client::read{"index p0"});
  auto write = std::async(std::launch::async, ask, client::propose{"q0"});
  std::this_thread::sleep_for(100ms);
  c.signal(*leader, SIGKILL);
  for (auto* pending : {&read, &write}) {
    auto r = pending->get();
    // An answer from the follower, not the client's timeout.
    REQUIRE_MESSAGE(r.has_value(), (r ? std::string() : r.error().message()));
    auto* f = std::get_if<client::failure>(&*r);
    if (!f) continue;  // the follower already knew the next leader: answered
    CHECK(f->message.find("while it had the request") != std::string::npos);
    CHECK(f->code == (pending == &read ? "unavailable" : "outcome_unknown"));
  }
}

TEST_CASE("a write is not sent on a connection its master has not answered on: the client commits it through another") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  auto follower = *leader % 3 + 1;
  caf::actor_system sys{client_config()};
  // This actor system's connection to the follower exists (another client
  // made it): a new client's first request there goes out on it at once,
  // while the follower answers nothing (frozen; a deaf connection, which
  // CAF 0.17 can make, looks the same to the client).
  raft_client first(sys, c.cluster_id, {c.at(follower).address});
  REQUIRE(first.status(c.at(follower).address).has_value());
  std::vector<raft::endpoint> follower_first{c.at(follower).address};
  for (const auto& m : c.members()) {
    if (m.id != follower) follower_first.push_back(m.address);
  }
  raft_client writer(sys, c.cluster_id, follower_first);
  REQUIRE(freeze(c.at(follower).pid));
  auto written = writer.propose("unanswered", 5s);
  c.signal(follower, SIGCONT);
  REQUIRE_MESSAGE(written.has_value(), written.error().message());
  // The follower never had it: resumed, it passes nothing on, and the write
  // stays applied once.
  std::this_thread::sleep_for(500ms);
  auto next = c.client().propose("after", 5s);
  REQUIRE_MESSAGE(next.has_value(), next.error().message());
  CHECK(std::stoull(next->result) == std::stoull(written->result) + 1);
}

TEST_CASE("foreign, garbled and truncated messages on a live port are refused without harm") {
  process_cluster c(3);
  auto leader = c.wait_for_leader(10s);
  REQUIRE(leader);
  caf::actor_system sys{client_config()};
  auto target = c.at(*leader).address;
  auto handle = sys.middleman().remote_actor(target.host, target.port);
  REQUIRE(handle);
  caf::scoped_actor self{sys};
  raft::message vote{raft::node_id{2}, raft::node_id{*leader},
                     raft::vote_request{raft::term_t{1000}, raft::index_t{1000}, raft::term_t{1000}, false, false}};
  // (Without a cluster secret, peer messages carry an empty tag.)
  self->send(*handle, peer_atom::value, wire::encode(vote, "another-cluster"), std::string());
  self->send(*handle, peer_atom::value, std::string("definitely not cap'n proto"), std::string());
  auto valid = wire::encode(vote, c.cluster_id);
  self->send(*handle, peer_atom::value, valid.substr(0, valid.size() / 2), std::string());
  // A message of a shape no actor expects is dropped, too.
  self->send(*handle, peer_atom::value, std::string("no tag"));
  // Control messages meant for the process itself (stop, timer ticks) are
  // refused from the network: a stranger cannot stop a master or speed up
  // its election clock.
  caf::error stop_refused;
  self->request(*handle, 2s, stop_atom::value).receive([] {}, [&](caf::error& e) { stop_refused = e; });
  CHECK(stop_refused);
  for (int i = 0; i < 200; ++i) self->send(*handle, tick_atom::value);
  // A client request for another cluster gets a clear refusal.
  std::string reply;
  self->request(*handle, 2s, client_atom::value, wire::encode_request(client::status_request{}, "another-cluster"))
      .receive([&](const std::string& bytes) { reply = bytes; }, [](caf::error&) {});
  auto decoded = wire::decode_response(reply);
  REQUIRE(decoded.has_value());
  REQUIRE(std::holds_alternative<client::failure>(*decoded));
  CHECK(std::get<client::failure>(*decoded).code == "foreign_cluster");
  std::this_thread::sleep_for(300ms);
  // Nothing changed: same leader, same term, still committing.
  auto s = c.status(*leader);
  REQUIRE(s.has_value());
  CHECK(s->role == "leader");
  CHECK(s->term < 1000);
  CHECK(c.running(*leader));
  CHECK(c.log_of(*leader).find("shutting down") == std::string::npos);
  CHECK(propose_many(c, 10, "ok").size() == 10);
  auto log = c.log_of(*leader);
  CHECK(log.find("ignoring (message from another cluster") != std::string::npos);
  CHECK(log.find("ignoring (malformed message") != std::string::npos);
}
