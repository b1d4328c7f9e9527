#include "actors/registry/registry_machine.hpp"

#include <cstdio>

#include "actors/registry/queries.hpp"
#include "schema/registry_codec.hpp"

namespace conclave::registry {

std::string registry_machine::apply(const raft::log_entry& entry) {
  auto cmd = wire::decode_command(entry.payload);
  wire::registry_result result;
  if (!cmd) {
    result.outcome.code = code::invalid;
    result.outcome.detail = "undecodable command: " + cmd.error().message();
  } else {
    result.outcome = reg_.apply(*cmd, entry.index.value, &result.grants);
    if (on_applied) on_applied(*cmd, result.outcome, result.grants);
  }
  return wire::encode_result(result);
}

std::string registry_machine::query(std::string_view bytes) const {
  auto q = wire::decode_query(bytes);
  if (!q) return wire::encode_query_result(query_error{"undecodable registry query: " + q.error().message()});
  return wire::encode_query_result(answer(reg_, *q));
}

std::string registry_machine::snapshot() const { return wire::encode_registry_snapshot(reg_.state()); }

void registry_machine::restore(std::string_view bytes) {
  auto st = wire::decode_registry_snapshot(bytes);
  // Snapshots are checksummed on disk and in transit; one that does not
  // decode is a bug, not an input to tolerate.
  if (!st) {
    std::fprintf(stderr, "registry snapshot does not decode: %s\n", st.error().message().c_str());
    std::abort();
  }
  reg_ = registry_t(std::move(*st), limits_);
  if (on_restored) on_restored();
}

std::string registry_machine::digest() const {
  char buf[40];
  std::snprintf(buf, sizeof buf, "rev=%llu digest=%016llx", static_cast<unsigned long long>(reg_.current_revision()),
                static_cast<unsigned long long>(reg_.digest()));
  return buf;
}

}  // namespace conclave::registry

namespace conclave::registry {

std::vector<metrics::gauge_sample> registry_machine::gauges() const {
  const auto& st = reg_.state();
  std::vector<metrics::gauge_sample> out;
  const member_status statuses[] = {member_status::alive, member_status::suspect, member_status::dead,
                                    member_status::left};
  for (auto status : statuses) {
    double n = 0;
    for (const auto& [id, m] : st.members) n += m.status == status ? 1 : 0;
    out.push_back({"members", "Members in the registry by status, as this master applied it.", "status",
                   to_string(status), n});
  }
  double held = 0, waiters = 0;
  for (const auto& [name, l] : st.locks) {
    held += l.holder != 0 ? 1 : 0;
    waiters += static_cast<double>(l.waiters.size());
  }
  out.push_back({"sessions", "Open sessions (member registrations and etcd leases).", "", "",
                 static_cast<double>(st.sessions.size())});
  out.push_back({"keys", "Keys in the registry.", "", "", static_cast<double>(st.keys.size())});
  out.push_back({"locks_held", "Locks that have a holder.", "", "", held});
  out.push_back({"lock_waiters", "Sessions waiting for a lock, over all locks.", "", "", waiters});
  out.push_back({"events_undelivered", "Published events not yet acknowledged by every recipient.", "", "",
                 static_cast<double>(st.events.size())});
  out.push_back({"revision", "The registry's revision (key changes and lock grants so far).", "", "",
                 static_cast<double>(st.rev)});
  return out;
}

}  // namespace conclave::registry
