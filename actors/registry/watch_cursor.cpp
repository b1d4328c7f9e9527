#include "actors/registry/watch_cursor.hpp"

namespace conclave::registry {

watch_cursor::watch_cursor(std::string prefix, std::optional<revision> after)
    : prefix_(std::move(prefix)), rev_(after.value_or(0)), phase_(after ? phase::follow : phase::start) {}

query watch_cursor::next_query() const {
  switch (phase_) {
    case phase::start: return revision_query{};
    case phase::relist: return list_prefix{prefix_};
    case phase::follow: break;
  }
  return changes_query{rev_, prefix_};
}

bool watch_cursor::take(const query_result& answer, const std::function<void(const change&)>& on_change,
                        const std::function<void(const watch_listing&)>& on_listing) {
  revision at = 0;
  switch (phase_) {
    case phase::start: {
      auto* r = std::get_if<revision_result>(&answer);
      if (!r) return false;
      at = r->rev;
      break;
    }
    case phase::relist: {
      auto* r = std::get_if<keys_result>(&answer);
      // A server behind what was delivered would repeat or rewind (#12).
      if (!r || r->rev < rev_) return false;
      on_listing(watch_listing{compacted_after_, r->rev, r->keys});
      at = r->rev;
      break;
    }
    case phase::follow: {
      auto* r = std::get_if<changes_result>(&answer);
      if (!r || r->rev < rev_) return false;
      // The history no longer reaches the position: re-list instead of
      // skipping changes.
      if (r->compacted) {
        compacted_after_ = rev_;
        phase_ = phase::relist;
        return true;
      }
      for (const auto& c : r->changes) {
        if (c.rev > rev_ && c.rev <= r->rev) on_change(c);
      }
      at = r->rev;
      break;
    }
  }
  rev_ = at;
  phase_ = phase::follow;
  return true;
}

}  // namespace conclave::registry
