// A watch's position in the registry's key changes, shared by node::watch and
// `conclavectl watch`. Watches poll: the cursor names the next query and
// takes its result, which carries the answering server's revision. It
// delivers every change under its prefix once, in order, and never goes
// backwards: an answer from a server behind what was already delivered (a
// stale read) is ignored.
//
// When the history no longer reaches the cursor's revision (more than
// `limits::history` changes behind), it asks for a listing of the prefix and
// hands that over instead; changes then continue after the listing's revision.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/registry/registry.hpp"

namespace conclave::registry {

// The keys under a watch's prefix at revision `rev`, given after the history
// was compacted past `after`, the last revision delivered before. A watcher
// rebuilds what it derived from the changes from these keys.
struct watch_listing {
  revision after = 0;
  revision rev = 0;
  std::vector<std::pair<std::string, key_value>> keys;
};

class watch_cursor {
 public:
  // Changes after revision `after`, or from the current revision on.
  watch_cursor(std::string prefix, std::optional<revision> after);

  // The next query: revision_query to start from now, list_prefix after a
  // compaction, otherwise changes_query after the position.
  query next_query() const;

  // Takes the result of next_query(): calls on_change for each new change, in
  // order, or on_listing with a listing after a compaction. Returns false if
  // the result was ignored: its server is behind what was delivered, or it
  // is not the kind next_query() asks for (a query_error).
  bool take(const query_result& answer, const std::function<void(const change&)>& on_change,
            const std::function<void(const watch_listing&)>& on_listing);

  // Every change up to this revision has been delivered (or listed).
  revision position() const { return rev_; }

 private:
  enum class phase { start, follow, relist };
  std::string prefix_;
  revision rev_ = 0;
  revision compacted_after_ = 0;  // phase relist: the position when the history fell short
  phase phase_;
};

}  // namespace conclave::registry
