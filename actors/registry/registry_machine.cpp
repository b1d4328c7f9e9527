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
