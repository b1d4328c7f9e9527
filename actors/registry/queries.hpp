// Read-only questions to the registry, answered as JSON (for conclavectl,
// scripts and tests). A query is one line: a verb and its arguments.
//
//   revision                      {"revision":N}
//   members [STATUS]              [{"id":...,"role":...,"status":...,"usage":{...}},...]
//   get KEY                       {"key":...,"value":...,"version":N,...} or null
//   list PREFIX                   [{"key":...},...]
//   lock NAME                     {"name":...,"holder":N,"token":N,"waiters":[...]} or null
//   session ID                    {"id":N,"owner":...,"ttl_ms":N,"remaining_ms":N} or null
//   events MEMBER                 [{"seq":N,"from":...,"payload":...},...]
//   changes REVISION PREFIX       {"compacted":false,"revision":N,"changes":[...]}
//   digest                        {"revision":N,"digest":"..."}
#pragma once

#include <string>
#include <string_view>

#include "actors/registry/registry.hpp"

namespace conclave::registry {

std::string answer(const registry& reg, std::string_view query);

// The same queries prefixed "bin:" answer a registry snapshot (schema
// registry.capnp) holding just what was asked: the members, the key(s), the
// lock, the events, or the changes (in `history`, with `rev` the current
// revision and `historyFloor` above the asked revision if compacted), for
// typed clients such as the embedding API.
std::string answer_binary(const registry& reg, std::string_view query);

// JSON string literal for arbitrary bytes (control and non-ASCII bytes as \u00XX).
std::string json_string(std::string_view s);
// A key as `get` and `list` answer it, and a change as `changes` does.
std::string to_json(const std::string& key, const key_value& kv);
std::string to_json(const change& c);

}  // namespace conclave::registry
