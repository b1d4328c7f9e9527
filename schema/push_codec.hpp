// Subscriptions and pushes to bytes and back (decoding as in schema/codec.hpp:
// bounded, never throwing, errors as values). A subscription names the
// cluster; a master refuses one for another cluster (wrong_cluster).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "schema/error.hpp"
#include "schema/push_types.hpp"

namespace conclave::wire {

std::string encode_subscription(const registry::subscription& s, const std::string& cluster_id);
expected<registry::subscription> decode_subscription(std::string_view bytes, const std::string& cluster_id);

// A push travels as its kind and the registry snapshot bytes of its state.
std::string encode_push_state(const registry::push& p);
expected<registry::push> decode_push(std::uint8_t kind, std::string_view state);

// One push for several subscriptions of one client (the same state, e.g.
// watches of one prefix) names their ids: 8 bytes each, little-endian.
std::string encode_push_ids(const std::vector<std::uint64_t>& ids);
expected<std::vector<std::uint64_t>> decode_push_ids(std::string_view bytes);

}  // namespace conclave::wire
