#include "actors/registry/watch_cursor.hpp"

namespace conclave::registry {

watch_cursor::watch_cursor(std::string prefix, std::optional<revision> after)
    : prefix_(std::move(prefix)), rev_(after.value_or(0)), phase_(after ? phase::follow : phase::start) {}

std::string watch_cursor::query() const {
  switch (phase_) {
    case phase::start: return "revision";
    case phase::relist: return "list " + prefix_;
    case phase::follow: break;
  }
  return "changes " + std::to_string(rev_) + " " + prefix_;
}

bool watch_cursor::take(const registry_state& answer, const std::function<void(const change&)>& on_change,
                        const std::function<void(const watch_listing&)>& on_listing) {
  // A server behind what was delivered would repeat or rewind (#12).
  if (phase_ != phase::start && answer.rev < rev_) return false;
  switch (phase_) {
    case phase::start:
      break;
    case phase::relist:
      on_listing(watch_listing{compacted_after_, answer.rev, {answer.keys.begin(), answer.keys.end()}});
      break;
    case phase::follow:
      // The answer's floor is above the asked revision when the history no
      // longer reaches it (queries.hpp): re-list instead of skipping changes.
      if (answer.history_floor > rev_) {
        compacted_after_ = rev_;
        phase_ = phase::relist;
        return true;
      }
      for (const auto& c : answer.history) {
        if (c.rev > rev_ && c.rev <= answer.rev) on_change(c);
      }
      break;
  }
  rev_ = answer.rev;
  phase_ = phase::follow;
  return true;
}

}  // namespace conclave::registry
