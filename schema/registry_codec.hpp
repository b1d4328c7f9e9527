// Registry commands, outcomes and snapshots to bytes and back (decoding as
// in schema/codec.hpp: bounded, never throwing, errors as values).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/error.hpp"
#include "schema/registry_types.hpp"

namespace conclave::wire {

std::string encode_command(const registry::command& c);
expected<registry::command> decode_command(std::string_view bytes);

struct registry_result {
  registry::outcome outcome;
  std::vector<registry::lock_grant> grants;
};
std::string encode_result(const registry_result& r);
expected<registry_result> decode_result(std::string_view bytes);

std::string encode_registry_snapshot(const registry::registry_state& s);
expected<registry::registry_state> decode_registry_snapshot(std::string_view bytes);

}  // namespace conclave::wire
