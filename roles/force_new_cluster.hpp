// Recovery from losing the majority for good (etcd's --force-new-cluster):
// before a surviving master starts, its data directory is rewritten so that
// it is the only voter, with everything it had committed, and more.
//
// Which entries survive: every entry in its log, also those past the commit
// index it knew. A write acknowledged to a client was on a majority, so a
// survivor of that majority has it in its log but may not yet have heard that
// it committed; keeping the whole log (as etcd does) keeps every such write.
// The price: entries that never committed (their clients got no answer, or
// outcome_unknown) commit now. Entries the survivor never received are lost.
//
// How: a configuration entry naming this server alone is appended in a new
// term (above every term this server has seen) and the commit index is set
// to it; the server then elects itself and applies the whole log. Lost masters must
// never come back with their old data; new ones join (--join true,
// conclavectl add-master).
#pragma once

#include <string>

#include "actors/raft/node_options.hpp"
#include "schema/error.hpp"

namespace conclave {

// Rewrites the data directory of `opts` (log and snapshots as start_server
// opens them). Returns what it did, for the log. Errors: those of the log
// and snapshot store (io_error, corrupt, disk_full, map_full).
expected<std::string> force_new_cluster(const raft::node_options& opts);

}  // namespace conclave
