// A watch's position in the registry's key changes, shared by node::watch and
// `conclavectl watch`. It takes the pushes of the master the watch is
// subscribed at (subscriptions.hpp) and delivers every change under its
// prefix once, in order, and never goes backwards: after a move to another
// master it subscribes from position(), and whatever that master pushes at
// or below it (it may be behind) is skipped.
//
// When the history no longer reaches the position, the master pushes a
// listing of the prefix instead; the cursor hands it over and changes
// continue after the listing's revision.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "schema/push_types.hpp"

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
  // Changes after revision `after`, or from the subscribing master's revision on.
  watch_cursor(std::string prefix, std::optional<revision> after) : prefix_(std::move(prefix)), at_(after) {}

  // The subscription that resumes from here.
  watch_subscription subscription() const { return watch_subscription{prefix_, at_}; }

  // Takes a push for this watch: calls on_change for each new change, in
  // order, or on_listing with a listing after a compaction. Returns whether
  // anything was delivered.
  bool take(const push& p, const std::function<void(const change&)>& on_change,
            const std::function<void(const watch_listing&)>& on_listing);

  // Every change up to this revision has been delivered (or listed); none
  // before the first push of a watch "from now".
  std::optional<revision> position() const { return at_; }

 private:
  std::string prefix_;
  std::optional<revision> at_;
};

}  // namespace conclave::registry
