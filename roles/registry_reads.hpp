// Typed registry reads over a raft_client: a registry::query goes out as the
// bytes of a client read, its registry::query_result comes back
// (schema/registry_codec.hpp). Used by the embedding API, conclavectl, the
// benchmarks and the tests.
#pragma once

#include <chrono>

#include "roles/raft_client.hpp"
#include "schema/registry_codec.hpp"

namespace conclave {

// The raw answer to `q`. A linearizable read goes through the leader until
// `deadline`; a stale one (`stale`) is answered by the first endpoint that
// answers, from what it has applied (possibly behind the leader), each
// endpoint asked for up to 2 s within `deadline`.
expected<client::read_result> read_query(raft_client& c, const registry::query& q, bool stale,
                                         std::chrono::milliseconds deadline);

// As read_query, from one endpoint only (no leader search, no retry): a
// linearizable read there is passed on to the leader by a follower.
expected<client::read_result> read_query_at(raft_client& c, const raft::endpoint& at, const registry::query& q,
                                            bool stale, std::chrono::milliseconds timeout);

// The decoded result, whatever its kind (for the watch cursor).
inline expected<registry::query_result> read_registry(raft_client& c, const registry::query& q, bool stale,
                                                      std::chrono::milliseconds deadline) {
  auto r = read_query(c, q, stale, deadline);
  if (!r) return r.error();
  return wire::decode_query_result(r->result);
}

// The result a query of type Q asks for (Q::result); the server's
// query_error is an error.
template <class Q>
expected<typename Q::result> ask(raft_client& c, const Q& q, std::chrono::milliseconds deadline, bool stale = false) {
  auto r = read_query(c, q, stale, deadline);
  if (!r) return r.error();
  return wire::decode_answer<Q>(r->result);
}

template <class Q>
expected<typename Q::result> ask_at(raft_client& c, const raft::endpoint& at, const Q& q, bool stale,
                                    std::chrono::milliseconds timeout) {
  auto r = read_query_at(c, at, q, stale, timeout);
  if (!r) return r.error();
  return wire::decode_answer<Q>(r->result);
}

}  // namespace conclave
