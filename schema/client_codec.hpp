// Client requests and responses to bytes and back (see schema/codec.hpp for
// the decoding rules: bounded, never throwing, errors as values).
#pragma once

#include <string>
#include <string_view>

#include "schema/client_protocol.hpp"
#include "schema/error.hpp"

namespace conclave::wire {

std::string encode_request(const client::request& r, std::string_view cluster_id);
// Errors: too_large, malformed, foreign_cluster, unsupported_version.
expected<client::request> decode_request(std::string_view bytes, std::string_view cluster_id);

std::string encode_response(const client::response& r);
expected<client::response> decode_response(std::string_view bytes);
// Only a response's failure code: "" for an answer that is not a failure
// (the code "malformed" for bytes that do not decode).
std::string response_code(std::string_view bytes);

}  // namespace conclave::wire
