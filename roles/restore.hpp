// conclave restore: seeds the data directory of one master of a new cluster
// from a backup file (schema/backup_file.hpp), run once per master with the
// new cluster's peers:
//
//   conclave restore --from FILE --data-dir D --id N --peers ID=HOST:PORT,... [--cluster-id X]
//
// The directory gets a Raft snapshot of the saved registry at the log index
// it was saved at (so session ids, which are log indexes, stay unique),
// whose configuration is `peers`, all voters; the log starts after it, and
// IDENTITY names the new cluster. Every master restored from the same file
// with the same peers gets the same snapshot, so they start as one cluster.
// Without --cluster-id the new cluster's id is derived from the file and the
// peers (the same on every master): "<saved id>-restored-<hex>".
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "actors/raft/node_options.hpp"
#include "schema/error.hpp"

namespace conclave {

struct restore_request {
  std::string from;        // the backup file
  std::string data_dir;    // must be missing or empty
  std::uint64_t id = 0;    // this master, one of `peers`
  std::map<raft::node_id, raft::endpoint> peers;
  std::string cluster_id;  // empty: derived (above)
};

// Seeds `data_dir`; returns the new cluster's id. The directory is built
// beside it and renamed into place, so it holds all of it or nothing.
// Errors: corrupt, unsupported_version, not_found (the file), invalid_argument
// (a data directory that holds data, an id not in peers), io_error, disk_full.
expected<std::string> restore_data_dir(const restore_request& r);

// The `conclave restore ...` command line (argv[0] is "restore"): 0 done,
// 2 refused (bad arguments, a corrupt file, a data directory in use),
// 1 an I/O failure.
int restore_main(int argc, char** argv);

}  // namespace conclave
