#include "roles/status_snapshot.hpp"

#include <nlohmann/json.hpp>

#include "schema/error.hpp"

namespace conclave {

namespace {

using json = nlohmann::json;

bool starts_with(const std::string& s, std::string_view prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

json status_of(const client::status& s, bool failed) {
  return {{"role", s.role},
          {"term", s.term},
          {"leader_id", s.leader_id},
          {"commit_index", s.commit_index},
          {"applied_index", s.applied_index},
          {"last_index", s.last_index},
          {"disk", disk_state(s, failed)},
          {"storage_error", s.storage_error}};
}

json member_of(const registry::member& m) {
  return {{"id", m.id},
          {"role", registry::to_string(m.role)},
          {"status", registry::to_string(m.status)},
          {"host", m.host},
          {"port", m.port},
          {"session", m.session},
          {"start_time_ms", m.start_time_ms},
          {"labels", m.labels},
          {"usage",
           {{"cpu_percent", m.usage.cpu_percent},
            {"load_average", m.usage.load_average},
            {"memory_used_bytes", m.usage.memory_used_bytes},
            {"memory_available_bytes", m.usage.memory_available_bytes},
            {"disk_available_bytes", m.usage.disk_available_bytes}}}};
}

// A session as the page names it: its id and its owner (a member or a client).
json session_ref(const registry::registry_state& st, registry::session_id id) {
  auto s = st.sessions.find(id);
  return {{"session", id}, {"owner", s != st.sessions.end() ? s->second.owner : std::string()}};
}

}  // namespace

std::string disk_state(const client::status& s, bool failed) {
  if (starts_with(s.storage_error, to_string(errc::disk_full)) || starts_with(s.storage_error, to_string(errc::map_full))) {
    return "full";
  }
  return failed || !s.storage_error.empty() ? "failed" : "ok";
}

std::string status_json(const status_inputs& in) {
  json out;
  out["self"] = in.self;
  json masters = json::array();
  std::uint64_t leader = 0, term = 0;
  for (const auto& m : in.masters) {
    json one{{"id", m.config.id}, {"address", m.config.address}, {"learner", m.config.learner},
             {"self", m.config.id == in.self}};
    if (m.status) {
      one["status"] = status_of(*m.status, m.config.id == in.self && in.failed);
      // The newest term any master reports names the leader.
      if (m.status->term >= term && (m.status->leader_id != 0 || m.status->term > term)) {
        term = m.status->term;
        leader = m.status->leader_id;
      }
    } else {
      one["error"] = m.error;
      if (m.config.id == in.self && in.failed) one["status"] = {{"disk", "failed"}};
    }
    masters.push_back(std::move(one));
  }
  out["masters"] = std::move(masters);
  out["leader_id"] = leader;
  out["term"] = term;
  json changes = json::array();
  for (const auto& c : in.leader_changes) {
    changes.push_back({{"time_ms", c.time_ms}, {"term", c.term}, {"leader_id", c.leader}});
  }
  out["leader_changes"] = std::move(changes);
  json members = json::array(), sessions = json::array(), locks = json::array();
  if (in.registry) {
    const auto& st = *in.registry;
    out["revision"] = st.rev;
    for (const auto& [id, m] : st.members) members.push_back(member_of(m));
    for (const auto& [id, s] : st.sessions) {
      sessions.push_back({{"id", id}, {"owner", s.owner}, {"ttl_ms", s.ttl_ms}, {"remaining_ms", s.remaining_ms}});
    }
    for (const auto& [name, l] : st.locks) {
      json waiters = json::array();
      for (auto w : l.waiters) waiters.push_back(session_ref(st, w));
      locks.push_back({{"name", name},
                       {"holder", l.holder ? session_ref(st, l.holder) : json(nullptr)},
                       {"token", l.token},
                       {"waiters", std::move(waiters)}});
    }
  } else {
    out["registry_error"] = in.registry_error;
  }
  out["members"] = std::move(members);
  out["sessions"] = std::move(sessions);
  out["locks"] = std::move(locks);
  // Keys and labels are bytes: anything that is not UTF-8 shows as U+FFFD.
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace conclave
