#include "actors/registry/subscriptions.hpp"

#include <algorithm>

namespace conclave::registry {

namespace {

template <class T>
bool is(const command& c) {
  return std::holds_alternative<T>(c);
}

}  // namespace

std::vector<push> subscriptions::add(key k, subscription s) {
  std::vector<push> out;
  std::visit(
      [&](auto& sub) {
        using T = std::decay_t<decltype(sub)>;
        if constexpr (std::is_same_v<T, watch_subscription>) {
          auto& w = watches_[k] = watch_state{sub.prefix, sub.after.value_or(reg_->current_revision())};
          if (auto p = due(w)) out.push_back(std::move(*p));
        } else if constexpr (std::is_same_v<T, lock_subscription>) {
          if (auto p = due(k, sub)) {
            out.push_back(std::move(*p));
          } else {
            locks_[k] = sub;
          }
        } else if constexpr (std::is_same_v<T, events_subscription>) {
          auto& e = events_[k] = events_state{sub.member, sub.after};
          if (auto p = due(e)) out.push_back(std::move(*p));
        } else {
          auto& m = members_[k];
          if (auto p = due(m)) out.push_back(std::move(*p));
        }
      },
      s);
  return out;
}

void subscriptions::remove(key k) {
  watches_.erase(k);
  locks_.erase(k);
  events_.erase(k);
  members_.erase(k);
}

void subscriptions::on_command(const command& c, const std::vector<lock_grant>& grants) {
  // Which commands can change what each kind of subscription sees.
  if (!grants.empty() || is<acquire_lock>(c) || is<release_lock>(c) || is<cancel_lock_wait>(c) ||
      is<close_session>(c)) {
    locks_dirty_ = true;
  }
  if (is<publish_event>(c) || is<ack_events>(c) || is<register_member>(c) || is<set_member_status>(c) ||
      is<close_session>(c)) {
    events_dirty_ = true;
  }
  if (is<register_member>(c) || is<set_member_status>(c) || is<close_session>(c)) members_dirty_ = true;
}

void subscriptions::on_restore() { locks_dirty_ = events_dirty_ = members_dirty_ = true; }

std::vector<std::pair<subscriptions::key, push>> subscriptions::collect() {
  std::vector<std::pair<key, push>> out;
  // Watches compare revisions: cheap when nothing changed.
  for (auto& [k, w] : watches_) {
    if (auto p = due(w)) out.emplace_back(k, std::move(*p));
  }
  if (locks_dirty_) {
    for (auto it = locks_.begin(); it != locks_.end();) {
      if (auto p = due(it->first, it->second)) {
        out.emplace_back(it->first, std::move(*p));
        it = locks_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (events_dirty_) {
    for (auto& [k, e] : events_) {
      if (auto p = due(e)) out.emplace_back(k, std::move(*p));
    }
  }
  if (members_dirty_) {
    for (auto& [k, m] : members_) {
      if (auto p = due(m)) out.emplace_back(k, std::move(*p));
    }
  }
  locks_dirty_ = events_dirty_ = members_dirty_ = false;
  return out;
}

push subscriptions::progress() const {
  push p;
  p.kind = push_kind::progress;
  p.state.rev = reg_->current_revision();
  return p;
}

// A watch is due the changes after its revision under its prefix, or a
// listing when the history no longer reaches back that far.
std::optional<push> subscriptions::due(watch_state& w) const {
  auto now = reg_->current_revision();
  if (w.at >= now) return std::nullopt;
  auto changes = reg_->changes_since(w.at, w.prefix);
  push p;
  p.state.rev = now;
  if (!changes) {
    p.kind = push_kind::compacted;
    for (auto& [key, kv] : reg_->list(w.prefix)) p.state.keys.emplace(key, kv);
    // Where the history starts now: a watch may start at floor + 1.
    p.state.history_floor = reg_->state().history_floor;
    p.state.compacted = reg_->state().compacted;
  } else {
    p.kind = push_kind::changes;
    p.state.history.assign(changes->begin(), changes->end());
  }
  w.at = now;
  if (p.kind == push_kind::changes && p.state.history.empty()) return std::nullopt;  // nothing under its prefix
  return p;
}

// A lock waiter is told once: granted (with the token) or no longer waiting.
std::optional<push> subscriptions::due(key, const lock_subscription& l) const {
  if (reg_->applied_index() < l.after) return std::nullopt;  // this master has not applied the wait yet
  const auto* lk = reg_->find_lock(l.name);
  push p;
  p.state.rev = reg_->current_revision();
  if (lk && lk->holder == l.session) {
    p.kind = push_kind::granted;
    p.state.locks[l.name] = *lk;
    return p;
  }
  bool waiting = lk && std::find(lk->waiters.begin(), lk->waiters.end(), l.session) != lk->waiters.end();
  if (waiting) return std::nullopt;
  p.kind = push_kind::gone;
  return p;
}

std::optional<push> subscriptions::due(events_state& e) const {
  push p;
  p.kind = push_kind::events;
  p.state.rev = reg_->current_revision();
  for (auto& ev : reg_->pending_events(e.member)) {
    if (ev.seq > e.after) p.state.events.push_back(std::move(ev));
  }
  if (p.state.events.empty()) return std::nullopt;
  e.after = p.state.events.back().seq;
  return p;
}

std::optional<push> subscriptions::due(members_state& m) const {
  std::map<std::string, std::pair<member_status, member_role>> now;
  for (const auto& [id, mem] : reg_->state().members) now[id] = {mem.status, mem.role};
  if (m.pushed && now == m.last) return std::nullopt;
  m.last = std::move(now);
  m.pushed = true;
  push p;
  p.kind = push_kind::members;
  p.state.rev = reg_->current_revision();
  p.state.members = reg_->state().members;
  return p;
}

}  // namespace conclave::registry
