#include "roles/force_new_cluster.hpp"

#include <algorithm>

#include "storage/lmdb_log.hpp"
#include "storage/snapshot_store.hpp"

namespace conclave {

using namespace conclave::raft;

expected<std::string> force_new_cluster(const node_options& opts) {
  storage::lmdb_options lmdb;
  lmdb.max_map_bytes = static_cast<std::size_t>(opts.log_max_bytes);
  lmdb.initial_map_bytes = std::min(lmdb.initial_map_bytes, lmdb.max_map_bytes);
  auto log = storage::lmdb_log::open(opts.data_dir + "/log", lmdb);
  if (!log) return log.error();
  auto snapshots = storage::snapshot_store::open(opts.data_dir + "/snapshots", opts.snapshots_kept);
  if (!snapshots) return snapshots.error();
  auto loaded = snapshots->load_latest();
  if (!loaded) return loaded.error();
  // A snapshot ahead of the log (it covers entries this disk had not written)
  // is where the log goes on, as the core would make it at start.
  if (loaded->latest && loaded->latest->meta.last_index > (*log)->last_index()) {
    if (auto ok = (*log)->compact(loaded->latest->meta.last_index, loaded->latest->meta.last_term); !ok) return ok.error();
  }
  auto last = (*log)->last_index();
  auto last_term = (*log)->term(last);
  if (!last_term) return last_term.error();
  auto before = (*log)->state();
  // A term above every term this server has seen, voted for by itself alone.
  term_t term{std::max(before.term, *last_term).value + 1};
  index_t at{last.value + 1};
  configuration alone;
  alone.servers.push_back({opts.raft.id, opts.self().text(), suffrage::voter});
  storage::write_batch batch;
  batch.entries.push_back(log_entry{term, at, entry_kind::configuration, {}, alone});
  batch.state = hard_state{term, opts.raft.id, at};
  if (auto ok = (*log)->write(batch); !ok) return ok.error();
  return "forced a new cluster of this master alone: kept the log up to " + std::to_string(last.value) +
         " (the commit index was " + std::to_string(before.commit_index.value) + "), configuration at " +
         std::to_string(at.value) + " in term " + std::to_string(term.value);
}

}  // namespace conclave
