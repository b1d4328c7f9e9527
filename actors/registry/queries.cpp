#include "actors/registry/queries.hpp"

#include <cstdio>

namespace conclave::registry {

namespace {

struct answerer {
  const registry& reg;

  query_result operator()(const get_key& q) const {
    auto* kv = reg.get(q.key);
    return key_result{kv ? std::optional<key_value>(*kv) : std::nullopt, reg.current_revision()};
  }
  query_result operator()(const list_prefix& q) const { return keys_result{reg.current_revision(), reg.list(q.prefix)}; }
  query_result operator()(const members_query& q) const { return members_result{reg.members(q.only)}; }
  query_result operator()(const lock_query& q) const {
    auto* l = reg.find_lock(q.name);
    return lock_result{l ? std::optional<lock>(*l) : std::nullopt};
  }
  query_result operator()(const session_query& q) const {
    auto* s = reg.find_session(q.id);
    session_result out{s ? std::optional<session>(*s) : std::nullopt, {}};
    if (s && q.with_keys) {
      for (const auto& [key, kv] : reg.state().keys) {
        if (kv.session == q.id) out.keys.push_back(key);
      }
    }
    return out;
  }
  query_result operator()(const sessions_query&) const {
    sessions_result out;
    for (const auto& [id, s] : reg.state().sessions) out.sessions.push_back(s);
    return out;
  }
  query_result operator()(const range_query& q) const { return reg.range(q.range, q.at); }
  query_result operator()(const state_query& q) const {
    if (!q.summary) return state_result{std::make_shared<const registry_state>(reg.state())};
    const auto& st = reg.state();
    auto out = std::make_shared<registry_state>();
    out->rev = st.rev;
    out->applied = st.applied;
    out->members = st.members;
    out->sessions = st.sessions;
    out->locks = st.locks;
    return state_result{std::move(out)};
  }
  query_result operator()(const events_query& q) const { return events_result{reg.pending_events(q.member)}; }
  query_result operator()(const changes_query& q) const {
    auto changes = reg.changes_since(q.after, q.prefix);
    if (!changes) return changes_result{reg.current_revision(), true, {}};
    return changes_result{reg.current_revision(), false, std::move(*changes)};
  }
  query_result operator()(const revision_query&) const { return revision_result{reg.current_revision()}; }
  query_result operator()(const digest_query&) const { return digest_result{reg.current_revision(), reg.digest()}; }
};

std::string number(std::uint64_t v) { return std::to_string(v); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

template <class T, class F>
std::string array(const T& items, F&& one) {
  std::string out = "[";
  for (const auto& x : items) out += (out.size() > 1 ? "," : "") + one(x);
  return out + "]";
}

}  // namespace

query_result answer(const registry& reg, const query& q) { return std::visit(answerer{reg}, q); }

std::string to_json(const member& m) {
  std::string labels = "{";
  for (const auto& [k, v] : m.labels) labels += (labels.size() > 1 ? "," : "") + json_string(k) + ":" + json_string(v);
  labels += "}";
  return "{\"id\":" + json_string(m.id) + ",\"role\":\"" + to_string(m.role) + "\",\"host\":" + json_string(m.host) +
         ",\"port\":" + number(static_cast<std::uint64_t>(m.port)) + ",\"status\":\"" + to_string(m.status) +
         "\",\"session\":" + number(m.session) + ",\"start_time_ms\":" + number(m.start_time_ms) +
         ",\"labels\":" + labels + ",\"usage\":{\"cpu_percent\":" + number(m.usage.cpu_percent) +
         ",\"load_average\":" + number(m.usage.load_average) +
         ",\"memory_used_bytes\":" + number(m.usage.memory_used_bytes) +
         ",\"memory_available_bytes\":" + number(m.usage.memory_available_bytes) +
         ",\"disk_available_bytes\":" + number(m.usage.disk_available_bytes) + "}}";
}

std::string to_json(const std::string& key, const key_value& kv) {
  return "{\"key\":" + json_string(key) + ",\"value\":" + json_string(kv.value) + ",\"version\":" +
         number(kv.version) + ",\"created\":" + number(kv.created) + ",\"modified\":" + number(kv.modified) +
         ",\"session\":" + number(kv.session) + "}";
}

std::string to_json(const change& c) {
  return "{\"revision\":" + number(c.rev) + ",\"type\":\"" + (c.deleted ? "delete" : "put") +
         "\",\"key\":" + json_string(c.key) + ",\"value\":" + json_string(c.value) + "}";
}

std::string to_json(const members_result& r) {
  return array(r.members, [](const member& m) { return to_json(m); });
}

std::string to_json(const keys_result& r) {
  return array(r.keys, [](const auto& p) { return to_json(p.first, p.second); });
}

}  // namespace conclave::registry
