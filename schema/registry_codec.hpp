// Registry commands, outcomes, queries, query results and snapshots to bytes
// and back (decoding as in schema/codec.hpp: bounded, never throwing, errors
// as values).
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

std::string encode_query(const registry::query& q);
expected<registry::query> decode_query(std::string_view bytes);
std::string encode_query_result(const registry::query_result& r);
expected<registry::query_result> decode_query_result(std::string_view bytes);

// The result a query of type Q asks for, from the bytes a server answered
// it with. The server's query_error is an invalid_argument error; a result
// of another kind, or bytes that do not decode, a malformed one.
template <class Q>
expected<typename Q::result> decode_answer(std::string_view bytes) {
  auto r = decode_query_result(bytes);
  if (!r) return r.error();
  if (auto* wanted = std::get_if<typename Q::result>(&*r)) return std::move(*wanted);
  if (auto* e = std::get_if<registry::query_error>(&*r)) return make_error(errc::invalid_argument, e->message);
  return make_error(errc::malformed, "the answer is not the kind of result the query asks for");
}

std::string encode_registry_snapshot(const registry::registry_state& s);
expected<registry::registry_state> decode_registry_snapshot(std::string_view bytes);

}  // namespace conclave::wire
