#include "actors/registry/liveness.hpp"

#include <algorithm>

namespace conclave::registry {

namespace {

std::string member_of(const registry_state& st, session_id id, const session& s) {
  auto it = st.members.find(s.owner);
  return it != st.members.end() && it->second.session == id ? s.owner : std::string();
}

bool is_live(member_status s) { return s == member_status::alive || s == member_status::suspect; }

}  // namespace

void liveness_monitor::become_leader(const registry_state& st, std::uint64_t now_ms) {
  leading_ = true;
  sessions_.clear();
  usage_.clear();
  checkpoint_proposed_.reset();
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
    if (!t.member.empty()) t.status = st.members.at(t.member).status;
    sessions_[id] = t;
  }
}

void liveness_monitor::step_down() {
  leading_ = false;
  sessions_.clear();
  usage_.clear();
  checkpoint_proposed_.reset();
}

void liveness_monitor::sync(const registry_state& st, std::uint64_t now_ms) {
  if (!leading_) return;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = st.sessions.count(it->first) ? std::next(it) : sessions_.erase(it);
  }
  for (const auto& [id, s] : st.sessions) {
    auto [it, fresh] = sessions_.try_emplace(id);
    auto& t = it->second;
    if (fresh) {
      t.ttl_ms = s.ttl_ms;
      t.deadline_ms = now_ms + s.ttl_ms;
      t.last_seen_ms = now_ms;
      t.member = member_of(st, id, s);
    }
    if (auto m = st.members.find(t.member); !t.member.empty() && m != st.members.end()) t.status = m->second.status;
  }
  if (checkpoint_proposed_) {
    // Held once the registry has every remaining TTL it carried (the same
    // state as if it committed, whichever command wrote it).
    bool held = std::all_of(checkpoint_proposed_->remaining_ms.begin(), checkpoint_proposed_->remaining_ms.end(),
                            [&](const auto& r) {
                              auto s = st.sessions.find(r.first);
                              return s == st.sessions.end() || s->second.remaining_ms == std::min(r.second, s->second.ttl_ms);
                            });
    if (held) {
      last_checkpoint_ms_ = checkpoint_proposed_ms_;
      checkpoint_proposed_.reset();
    }
  }
  for (auto it = usage_.begin(); it != usage_.end();) {
    auto m = st.members.find(it->first);
    it = m == st.members.end() || m->second.usage == it->second ? usage_.erase(it) : std::next(it);
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
  t.heard = true;
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

liveness_monitor::transition liveness_monitor::wanted(const tracked& t, std::uint64_t now_ms) const {
  // A tracked session is one the registry still holds (sync drops the rest).
  if (t.expiring) return transition::expire;
  if (t.member.empty() || !is_live(t.status)) return transition::none;
  if (now_ms - t.last_seen_ms >= cfg_.suspect_after_ms) {
    return t.status == member_status::suspect ? transition::none : transition::suspect;
  }
  // Alive again only once heard from: a member the registry holds suspect
  // stays so through a new leader's first suspect_after_ms of silence.
  return t.status == member_status::suspect && t.heard ? transition::alive : transition::none;
}

std::vector<command> liveness_monitor::tick(std::uint64_t now_ms) {
  std::vector<command> out;
  if (!leading_) return out;
  auto lag = now_ms > last_tick_ms_ ? now_ms - last_tick_ms_ : 0;
  last_tick_ms_ = now_ms;
  if (lag > cfg_.max_loop_lag_ms) {
    // Overloaded: heartbeats may be queued unread. Expire nothing now and
    // give everybody back the time the leader lost, for expiry and for
    // suspicion alike (their silence was the leader's).
    for (auto& [id, t] : sessions_) {
      t.deadline_ms += lag;
      t.last_seen_ms = std::min(now_ms, t.last_seen_ms + lag);
    }
    return out;
  }
  for (auto& [id, t] : sessions_) {
    if (now_ms >= t.deadline_ms) t.expiring = true;
    auto want = wanted(t, now_ms);
    if (want == transition::none) {
      t.proposed = transition::none;
      continue;
    }
    // Not repeated within the retry interval: it may be on its way to commit.
    if (want == t.proposed && now_ms - t.proposed_ms < cfg_.retry_interval_ms) continue;
    if (want == transition::expire) {
      out.push_back(close_session{id, true});
    } else {
      out.push_back(set_member_status{t.member, want == transition::suspect ? member_status::suspect : member_status::alive});
    }
    t.proposed = want;
    t.proposed_ms = now_ms;
  }
  checkpoint(now_ms, out);
  if (!usage_.empty() && now_ms - last_usage_ms_ >= cfg_.usage_interval_ms) {
    // Every report the registry lacks; sync drops those it holds.
    last_usage_ms_ = now_ms;
    report_usage r;
    for (auto& [id, u] : usage_) r.reports.emplace_back(id, u);
    out.push_back(std::move(r));
  }
  return out;
}

void liveness_monitor::checkpoint(std::uint64_t now_ms, std::vector<command>& out) {
  // Due checkpoint_interval_ms after the one the registry holds; one not
  // held retry_interval_ms after it was proposed is taken again, afresh.
  if (checkpoint_proposed_ && now_ms - checkpoint_proposed_ms_ < cfg_.retry_interval_ms) return;
  if (now_ms - last_checkpoint_ms_ < cfg_.checkpoint_interval_ms) return;
  checkpoint_sessions c;
  for (const auto& [id, t] : sessions_) {
    if (!t.expiring) c.remaining_ms.emplace_back(id, t.deadline_ms > now_ms ? t.deadline_ms - now_ms : 0);
  }
  if (c.remaining_ms.empty()) {
    last_checkpoint_ms_ = now_ms;  // nothing to hold
    checkpoint_proposed_.reset();
    return;
  }
  checkpoint_proposed_ = c;
  checkpoint_proposed_ms_ = now_ms;
  out.push_back(std::move(c));
}

std::optional<std::uint64_t> liveness_monitor::deadline(session_id session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.deadline_ms;
}

}  // namespace conclave::registry
