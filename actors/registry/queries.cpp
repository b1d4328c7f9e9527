#include "actors/registry/queries.hpp"

#include <cstdio>
#include <sstream>

#include "schema/registry_codec.hpp"

namespace conclave::registry {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

namespace {

std::string number(std::uint64_t v) { return std::to_string(v); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// "REVISION PREFIX" of the changes query.
std::pair<revision, std::string> changes_args(const std::string& arg) {
  std::istringstream a(arg);
  revision after = 0;
  std::string prefix;
  a >> after;
  std::getline(a >> std::ws, prefix);
  return {after, prefix};
}

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

template <class T, class F>
std::string array(const T& items, F&& one) {
  std::string out = "[";
  for (const auto& x : items) out += (out.size() > 1 ? "," : "") + one(x);
  return out + "]";
}

}  // namespace

std::string to_json(const std::string& key, const key_value& kv) {
  return "{\"key\":" + json_string(key) + ",\"value\":" + json_string(kv.value) + ",\"version\":" +
         number(kv.version) + ",\"created\":" + number(kv.created) + ",\"modified\":" + number(kv.modified) +
         ",\"session\":" + number(kv.session) + "}";
}

std::string to_json(const change& c) {
  return "{\"revision\":" + number(c.rev) + ",\"type\":\"" + (c.deleted ? "delete" : "put") +
         "\",\"key\":" + json_string(c.key) + ",\"value\":" + json_string(c.value) + "}";
}

std::string answer(const registry& reg, std::string_view query) {
  std::istringstream in{std::string(query)};
  std::string verb;
  in >> verb;
  std::string arg;
  std::getline(in >> std::ws, arg);
  if (verb == "revision") return "{\"revision\":" + number(reg.current_revision()) + "}";
  if (verb == "digest") {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(reg.digest()));
    return "{\"revision\":" + number(reg.current_revision()) + ",\"digest\":\"" + buf + "\"}";
  }
  if (verb == "members") {
    std::optional<member_status> only;
    for (auto s : {member_status::alive, member_status::suspect, member_status::dead, member_status::left}) {
      if (arg == to_string(s)) only = s;
    }
    return array(reg.members(only), [](const member& m) { return to_json(m); });
  }
  if (verb == "get") {
    auto* kv = reg.get(arg);
    return kv ? to_json(arg, *kv) : "null";
  }
  if (verb == "list") {
    return array(reg.list(arg), [](const auto& p) { return to_json(p.first, p.second); });
  }
  if (verb == "lock") {
    auto* l = reg.find_lock(arg);
    if (!l) return "null";
    return "{\"name\":" + json_string(arg) + ",\"holder\":" + number(l->holder) + ",\"token\":" + number(l->token) +
           ",\"waiters\":" + array(l->waiters, [](session_id s) { return number(s); }) + "}";
  }
  if (verb == "session") {
    auto* s = reg.find_session(std::strtoull(arg.c_str(), nullptr, 10));
    if (!s) return "null";
    return "{\"id\":" + number(s->id) + ",\"owner\":" + json_string(s->owner) + ",\"ttl_ms\":" + number(s->ttl_ms) +
           ",\"remaining_ms\":" + number(s->remaining_ms) + "}";
  }
  if (verb == "events") {
    return array(reg.pending_events(arg), [](const event& e) {
      return "{\"seq\":" + number(e.seq) + ",\"from\":" + json_string(e.from) + ",\"to\":" + json_string(e.to) +
             ",\"payload\":" + json_string(e.payload) + "}";
    });
  }
  if (verb == "changes") {
    auto [after, prefix] = changes_args(arg);
    auto changes = reg.changes_since(after, prefix);
    if (!changes) return "{\"compacted\":true,\"revision\":" + number(reg.current_revision()) + ",\"changes\":[]}";
    return "{\"compacted\":false,\"revision\":" + number(reg.current_revision()) + ",\"changes\":" +
           array(*changes, [](const change& c) { return to_json(c); }) +
           "}";
  }
  return "{\"error\":" + json_string("unknown query '" + verb + "'") + "}";
}

}  // namespace conclave::registry

namespace conclave::registry {

std::string answer_binary(const registry& reg, std::string_view query) {
  std::istringstream in{std::string(query)};
  std::string verb, arg;
  in >> verb;
  std::getline(in >> std::ws, arg);
  registry_state out;
  out.rev = reg.current_revision();
  const auto& st = reg.state();
  if (verb == "members") {
    for (const auto& m : reg.members()) {
      if (arg.empty() || arg == to_string(m.status)) out.members[m.id] = m;
    }
  } else if (verb == "get") {
    if (auto* kv = reg.get(arg)) out.keys[arg] = *kv;
  } else if (verb == "list") {
    for (auto& [k, kv] : reg.list(arg)) out.keys[k] = kv;
  } else if (verb == "lock") {
    if (auto* l = reg.find_lock(arg)) out.locks[arg] = *l;
  } else if (verb == "events") {
    for (auto& e : reg.pending_events(arg)) out.events.push_back(e);
    if (auto it = st.events_acked.find(arg); it != st.events_acked.end()) out.events_acked[arg] = it->second;
  } else if (verb == "changes") {
    auto [after, prefix] = changes_args(arg);
    auto changes = reg.changes_since(after, prefix);
    if (!changes) {
      out.history_floor = after + 1;  // compacted
    } else {
      out.history.assign(changes->begin(), changes->end());
    }
  } else if (verb == "session") {
    if (auto* s = reg.find_session(std::strtoull(arg.c_str(), nullptr, 10))) out.sessions[s->id] = *s;
  }
  return wire::encode_registry_snapshot(out);
}

}  // namespace conclave::registry
