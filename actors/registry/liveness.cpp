#include "actors/registry/liveness.hpp"

#include <algorithm>

namespace conclave::registry {

namespace {

std::string member_of(const registry_state& st, session_id id, const session& s) {
  auto it = st.members.find(s.owner);
  return it != st.members.end() && it->second.session == id ? s.owner : std::string();
}

}  // namespace

void liveness_monitor::become_leader(const registry_state& st, std::uint64_t now_ms) {
  leading_ = true;
  sessions_.clear();
  usage_.clear();
  last_tick_ms_ = last_checkpoint_ms_ = last_usage_ms_ = now_ms;
  for (const auto& [id, s] : st.sessions) {
    tracked t;
    t.ttl_ms = s.ttl_ms;
    // The checkpointed remaining TTL, not a fresh one (no TTL restarts from
    // full on every failover), but never less than the grace clients need to
    // find the new leader (no expiry storm).
    t.deadline_ms = now_ms + std::max(s.remaining_ms, cfg_.failover_grace_ms);
    t.last_seen_ms = now_ms;
    t.member = member_of(st, id, s);
    sessions_[id] = t;
  }
}

void liveness_monitor::step_down() {
  leading_ = false;
  sessions_.clear();
  usage_.clear();
}

void liveness_monitor::sync(const registry_state& st, std::uint64_t now_ms) {
  if (!leading_) return;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = st.sessions.count(it->first) ? std::next(it) : sessions_.erase(it);
  }
  for (const auto& [id, s] : st.sessions) {
    if (sessions_.count(id)) continue;
    tracked t;
    t.ttl_ms = s.ttl_ms;
    t.deadline_ms = now_ms + s.ttl_ms;
    t.last_seen_ms = now_ms;
    t.member = member_of(st, id, s);
    sessions_[id] = t;
  }
}

void liveness_monitor::keepalive(session_id session, std::uint64_t now_ms,
                                 const std::optional<std::pair<std::string, resources>>& usage) {
  if (!leading_) return;
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.expiring) return;
  auto& t = it->second;
  t.deadline_ms = std::max(t.deadline_ms, now_ms + t.ttl_ms);
  t.last_seen_ms = now_ms;
  if (t.suspect) t.back = true;
  if (usage) usage_[usage->first] = usage->second;
}

void liveness_monitor::connection_lost(session_id session, std::uint64_t now_ms) {
  if (!leading_) return;
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  // A process that died is detected by its broken connection plus a short
  // grace (in case it reconnects), not by its full TTL.
  it->second.deadline_ms = std::min(it->second.deadline_ms, now_ms + cfg_.crash_grace_ms);
}

std::vector<command> liveness_monitor::tick(std::uint64_t now_ms) {
  std::vector<command> out;
  if (!leading_) return out;
  auto lag = now_ms > last_tick_ms_ ? now_ms - last_tick_ms_ : 0;
  last_tick_ms_ = now_ms;
  if (lag > cfg_.max_loop_lag_ms) {
    // Overloaded: heartbeats may be queued unread. Expire nothing now and
    // give everybody back the time the leader lost.
    for (auto& [id, t] : sessions_) t.deadline_ms += lag;
    return out;
  }
  for (auto& [id, t] : sessions_) {
    if (t.expiring) continue;
    if (now_ms >= t.deadline_ms) {
      out.push_back(close_session{id, true});
      t.expiring = true;
      continue;
    }
    if (t.member.empty()) continue;
    if (t.back) {
      out.push_back(set_member_status{t.member, member_status::alive});
      t.suspect = t.back = false;
    } else if (!t.suspect && now_ms - t.last_seen_ms >= cfg_.suspect_after_ms) {
      out.push_back(set_member_status{t.member, member_status::suspect});
      t.suspect = true;
    }
  }
  if (now_ms - last_checkpoint_ms_ >= cfg_.checkpoint_interval_ms) {
    last_checkpoint_ms_ = now_ms;
    checkpoint_sessions c;
    for (const auto& [id, t] : sessions_) {
      if (!t.expiring) c.remaining_ms.emplace_back(id, t.deadline_ms > now_ms ? t.deadline_ms - now_ms : 0);
    }
    if (!c.remaining_ms.empty()) out.push_back(std::move(c));
  }
  if (!usage_.empty() && now_ms - last_usage_ms_ >= cfg_.usage_interval_ms) {
    last_usage_ms_ = now_ms;
    report_usage r;
    for (auto& [id, u] : usage_) r.reports.emplace_back(id, u);
    usage_.clear();
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<std::uint64_t> liveness_monitor::deadline(session_id session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.deadline_ms;
}

}  // namespace conclave::registry
