// The backup file (schema/backup_file), `conclave restore`'s data directory
// (roles/restore) and force-new-cluster's rewrite (roles/force_new_cluster),
// on files in a temporary directory; no processes.
#include <doctest/doctest.h>
#include <openssl/sha.h>

#include <filesystem>
#include <fstream>

#include "roles/force_new_cluster.hpp"
#include "roles/restore.hpp"
#include "schema/backup_file.hpp"
#include "storage/lmdb_log.hpp"
#include "storage/snapshot_store.hpp"
#include "test/temp_dir.hpp"

using namespace conclave;
using namespace conclave::raft;

namespace {

registry::registry_state a_state() {
  registry::registry_state st;
  st.rev = 7;
  st.applied = 42;
  st.last_session = 40;
  st.sessions[40] = registry::session{40, "client", 5000, 4000};
  st.keys["a"] = registry::key_value{"1", 2, 7, 3, 0};
  st.keys["b"] = registry::key_value{"2", 5, 5, 1, 40};
  st.locks["l"] = registry::lock{40, 6, {}};
  return st;
}

std::map<node_id, endpoint> three_peers() {
  return {{node_id{1}, {"127.0.0.1", 7001}}, {node_id{2}, {"127.0.0.1", 7002}}, {node_id{3}, {"127.0.0.1", 7003}}};
}

}  // namespace

TEST_CASE("a backup file round-trips the registry and its header") {
  auto bytes = backup::encode("prod", a_state());
  CHECK((bytes.size() - 32) % 512 == 0);
  auto c = backup::decode(bytes);
  REQUIRE_MESSAGE(c.has_value(), c.error().message());
  CHECK(c->header.cluster_id == "prod");
  CHECK(c->header.rev == 7);
  CHECK(c->header.raft_index == 42);
  CHECK(c->header.keys == 2);
  CHECK(c->state.keys.at("b").session == 40);
  CHECK(c->state.sessions.at(40).remaining_ms == 4000);
}

TEST_CASE("a damaged, cut, foreign or newer backup file is refused, saying why") {
  auto bytes = backup::encode("prod", a_state());
  auto reason = [](std::string b) {
    auto c = backup::decode(b);
    return c ? std::string("accepted") : c.error().message();
  };
  auto flipped = bytes;
  flipped[100] ^= 1;
  CHECK(reason(flipped).find("SHA-256 mismatch") != std::string::npos);
  CHECK(reason(bytes.substr(0, bytes.size() - 1)).find("truncated") != std::string::npos);
  CHECK(reason(bytes.substr(0, 512)).find("truncated") != std::string::npos);
  CHECK(reason(std::string(1024, 'x')).find("does not start with CNCLBKUP") != std::string::npos);
  CHECK(reason("").find("does not start with CNCLBKUP") != std::string::npos);
  // A later format version, with its checksum right.
  auto newer = bytes.substr(0, bytes.size() - SHA256_DIGEST_LENGTH);
  newer[8] = 2;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(newer.data()), newer.size(), digest);
  auto c = backup::decode(newer + std::string(reinterpret_cast<const char*>(digest), sizeof digest));
  REQUIRE_FALSE(c.has_value());
  CHECK(c.error().code == errc::unsupported_version);
}

TEST_CASE("write_file leaves the whole file or nothing under its name") {
  test::temp_dir dir;
  auto path = dir / "b.backup";
  REQUIRE(backup::write_file(path, backup::encode("prod", a_state())).has_value());
  CHECK(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(path + ".part"));
  CHECK(backup::read_file(path).has_value());
  auto missing = backup::write_file(dir / "no/such/dir/b.backup", "x");
  CHECK_FALSE(missing.has_value());
  CHECK_FALSE(std::filesystem::exists(dir / "no"));
}

TEST_CASE("restore seeds a data directory with a snapshot at the saved raft index, the peers as voters, the log "
          "after it, and the new cluster's identity") {
  test::temp_dir dir;
  REQUIRE(backup::write_file(dir / "b.backup", backup::encode("prod", a_state())).has_value());
  restore_request r{dir / "b.backup", dir / "m2", 2, three_peers(), ""};
  auto cluster = restore_data_dir(r);
  REQUIRE_MESSAGE(cluster.has_value(), cluster.error().message());
  CHECK(cluster->rfind("prod-restored-", 0) == 0);
  CHECK_FALSE(std::filesystem::exists(dir / "m2.restoring"));
  auto snapshots = storage::snapshot_store::open(dir / "m2/snapshots");
  REQUIRE(snapshots.has_value());
  auto loaded = snapshots->load_latest();
  REQUIRE(loaded.has_value());
  REQUIRE(loaded->latest);
  CHECK(loaded->latest->meta.last_index == index_t{42});
  CHECK(loaded->latest->meta.config.servers.size() == 3);
  auto log = storage::lmdb_log::open(dir / "m2/log");
  REQUIRE(log.has_value());
  CHECK((*log)->start_index() == index_t{42});
  CHECK((*log)->state().commit_index == index_t{42});
  CHECK((*log)->state().term == (*log)->start_term());
  (*log).reset();
  // The same file and peers give the other masters the same cluster id.
  r.id = 3;
  r.data_dir = dir / "m3";
  CHECK(restore_data_dir(r).value() == *cluster);
  // A directory that holds data, and an id not among the peers, are refused.
  auto again = restore_data_dir(r);
  REQUIRE_FALSE(again.has_value());
  CHECK(again.error().detail.find("already holds data") != std::string::npos);
  r.id = 4;
  r.data_dir = dir / "m4";
  CHECK_FALSE(restore_data_dir(r).has_value());
}

TEST_CASE("force-new-cluster keeps the whole log, past the commit index, and commits a configuration of this "
          "master alone in a new term") {
  test::temp_dir dir;
  node_options opts;
  opts.raft.id = node_id{3};
  opts.members = three_peers();
  opts.data_dir = dir.path();
  {
    auto log = storage::lmdb_log::open(dir / "log");
    REQUIRE(log.has_value());
    configuration three;
    for (const auto& [id, ep] : opts.members) three.servers.push_back({id, ep.text(), suffrage::voter});
    std::vector<log_entry> entries{{term_t{1}, index_t{1}, entry_kind::configuration, {}, three}};
    for (std::uint64_t i = 2; i <= 5; ++i) entries.push_back({term_t{4}, index_t{i}, entry_kind::command, "c", std::nullopt});
    REQUIRE((*log)->append(entries).has_value());
    REQUIRE((*log)->save_state({term_t{5}, node_id{1}, index_t{3}}).has_value());
  }
  auto done = force_new_cluster(opts);
  REQUIRE_MESSAGE(done.has_value(), done.error().message());
  auto log = storage::lmdb_log::open(dir / "log");
  REQUIRE(log.has_value());
  REQUIRE((*log)->last_index() == index_t{6});
  for (std::uint64_t i = 4; i <= 5; ++i) CHECK((*log)->entry(index_t{i})->payload == "c");
  auto e = (*log)->entry(index_t{6});
  REQUIRE(e.has_value());
  CHECK(e->term == term_t{6});
  REQUIRE(e->config.has_value());
  REQUIRE(e->config->servers.size() == 1);
  CHECK(e->config->servers[0].id == node_id{3});
  CHECK((*log)->state().commit_index == index_t{6});
  CHECK((*log)->state().term == term_t{6});
}
