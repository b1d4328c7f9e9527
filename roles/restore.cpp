#include "roles/restore.hpp"

#include <cstdio>
#include <filesystem>

#include "roles/config.hpp"
#include "schema/backup_file.hpp"
#include "schema/registry_codec.hpp"
#include "storage/lmdb_log.hpp"
#include "storage/snapshot_store.hpp"

namespace conclave {

namespace {

namespace fs = std::filesystem;

error bad(const std::string& what) { return make_error(errc::invalid_argument, what); }

// The same on every master restored from the same file with the same peers.
std::string derived_cluster_id(const backup::header& h, const std::map<raft::node_id, raft::endpoint>& peers) {
  std::uint64_t x = 14695981039346656037ull;
  auto mix = [&x](const std::string& s) {
    for (unsigned char c : s + '\n') x = (x ^ c) * 1099511628211ull;
  };
  mix(h.cluster_id);
  mix(std::to_string(h.rev) + "/" + std::to_string(h.raft_index));
  for (const auto& [id, ep] : peers) mix(std::to_string(id.value) + "=" + ep.text());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(x));
  return h.cluster_id + "-restored-" + std::string(hex, 8);
}

}  // namespace

expected<std::string> restore_data_dir(const restore_request& r) {
  if (!r.peers.count(raft::node_id{r.id})) return bad("id: " + std::to_string(r.id) + " is not in peers");
  std::error_code ec;
  if (fs::exists(r.data_dir, ec) && !fs::is_empty(r.data_dir, ec)) {
    return bad("data dir " + r.data_dir + " already holds data; restore seeds only a missing or empty directory");
  }
  auto saved = backup::read_file(r.from);
  if (!saved) return saved.error();
  auto cluster = r.cluster_id.empty() ? derived_cluster_id(saved->header, r.peers) : r.cluster_id;

  // Built beside the target, renamed into place once complete.
  auto building = r.data_dir + ".restoring";
  fs::remove_all(building, ec);
  if (!fs::create_directories(building, ec) && ec) {
    return make_error(errc::io_error, building + ": cannot create: " + ec.message());
  }
  if (auto ok = check_identity(building, cluster, r.id); !ok) return ok.error();
  // Log index and term of the snapshot: the saved index (at least 1: index 0
  // means no snapshot) in term 1, the new cluster's first.
  raft::snapshot_meta meta;
  meta.last_index = raft::index_t{std::max<std::uint64_t>(saved->state.applied, 1)};
  meta.last_term = raft::term_t{1};
  for (const auto& [id, ep] : r.peers) meta.config.servers.push_back({id, ep.text(), raft::suffrage::voter});
  {
    auto snapshots = storage::snapshot_store::open(building + "/snapshots");
    if (!snapshots) return snapshots.error();
    if (auto ok = snapshots->save(meta, wire::encode_registry_snapshot(saved->state)); !ok) return ok.error();
    auto log = storage::lmdb_log::open(building + "/log");
    if (!log) return log.error();
    // The log starts after the snapshot, everything up to it committed.
    if (auto ok = (*log)->compact(meta.last_index, meta.last_term); !ok) return ok.error();
    if (auto ok = (*log)->save_state({meta.last_term, raft::no_node, meta.last_index}); !ok) return ok.error();
  }
  if (fs::exists(r.data_dir, ec)) fs::remove(r.data_dir, ec);  // empty, checked above
  fs::rename(building, r.data_dir, ec);
  if (ec) return make_error(errc::io_error, "rename " + building + " to " + r.data_dir + ": " + ec.message());
  return cluster;
}

int restore_main(int argc, char** argv) {
  auto usage = [](const std::string& what) {
    std::fprintf(stderr,
                 "conclave restore: %s\nusage: conclave restore --from FILE --data-dir D --id N --peers "
                 "ID=HOST:PORT,... [--cluster-id X]\n",
                 what.c_str());
    return exit_bad_config;
  };
  settings given;
  std::string from;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return usage("'" + flag + "' needs a value");
    std::string value = argv[i + 1];
    if (flag == "--from") from = value;
    else if (flag == "--data-dir" || flag == "--id" || flag == "--peers" || flag == "--cluster-id") given[flag.substr(2)] = value;
    else return usage("unexpected argument '" + flag + "'");
  }
  if (from.empty()) return usage("--from FILE is required");
  if (!given.count("data-dir") || given["data-dir"].empty()) return usage("--data-dir is required");
  restore_request r;
  r.from = from;
  r.data_dir = given["data-dir"];
  r.cluster_id = given.count("cluster-id") ? given["cluster-id"] : std::string();
  // The id and peers are checked as a master's settings are.
  given["role"] = "master";
  if (r.cluster_id.empty()) given["cluster-id"] = "restore";
  auto cfg = parse_settings(given);
  if (!cfg) return usage(cfg.error().detail);
  r.id = cfg->raft.raft.id.value;
  r.peers = cfg->raft.members;
  auto cluster = restore_data_dir(r);
  if (!cluster) {
    std::fprintf(stderr, "conclave restore: %s\n", cluster.error().message().c_str());
    bool io = cluster.error().code == errc::io_error || cluster.error().code == errc::disk_full;
    return io ? exit_failure : exit_bad_config;
  }
  std::printf("restored %s into %s: master %llu of cluster '%s'; start every master with --cluster-id %s\n",
              r.from.c_str(), r.data_dir.c_str(), static_cast<unsigned long long>(r.id), cluster->c_str(),
              cluster->c_str());
  return 0;
}

}  // namespace conclave
