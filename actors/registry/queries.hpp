// Read-only questions to the registry (registry::query, schema/registry_types.hpp),
// answered from its applied state; and the JSON conclavectl prints for them.
#pragma once

#include <string>
#include <string_view>

#include "actors/registry/registry.hpp"
#include "schema/json.hpp"

namespace conclave::registry {

// The result of the kind `q` asks for (Q::result).
query_result answer(const registry& reg, const query& q);

// --- JSON, as conclavectl prints it --------------------------------------------
// (strings with json_string, schema/json.hpp)

// {"id":...,"role":...,"host":...,"port":N,"status":...,"session":N,"start_time_ms":N,"labels":{...},"usage":{...}}
std::string to_json(const member& m);
// {"key":...,"value":...,"version":N,"created":N,"modified":N,"session":N}
std::string to_json(const std::string& key, const key_value& kv);
// {"revision":N,"type":"put"|"delete","key":...,"value":...}
std::string to_json(const change& c);
// Arrays of the above: `members` and `list` print these.
std::string to_json(const members_result& r);
std::string to_json(const keys_result& r);

}  // namespace conclave::registry
