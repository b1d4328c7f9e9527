#include "actors/registry/watch_cursor.hpp"

namespace conclave::registry {

bool watch_cursor::take(const push& p, const std::function<void(const change&)>& on_change,
                        const std::function<void(const watch_listing&)>& on_listing) {
  // A master behind what was delivered would repeat or rewind.
  bool ahead = !at_ || p.state.rev > *at_;
  bool delivered = false;
  if (p.kind == push_kind::changes) {
    for (const auto& c : p.state.history) {
      if (at_ && c.rev <= *at_) continue;
      on_change(c);
      delivered = true;
    }
  } else if (p.kind == push_kind::compacted && ahead) {
    watch_listing l;
    l.after = at_.value_or(0);
    l.rev = p.state.rev;
    l.keys.assign(p.state.keys.begin(), p.state.keys.end());
    on_listing(l);
    delivered = true;
  }
  if (ahead && (p.kind == push_kind::changes || p.kind == push_kind::compacted || p.kind == push_kind::progress)) {
    at_ = p.state.rev;
  }
  return delivered;
}

}  // namespace conclave::registry
