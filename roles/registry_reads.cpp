#include "roles/registry_reads.hpp"

#include <algorithm>

namespace conclave {

expected<client::read_result> read_query_at(raft_client& c, const raft::endpoint& at, const registry::query& q,
                                            bool stale, std::chrono::milliseconds timeout) {
  auto bytes = wire::encode_query(q);
  auto r = stale ? c.call(at, client::stale_read{std::move(bytes)}, timeout)
                 : c.call(at, client::read{std::move(bytes)}, timeout);
  if (!r) return r.error();
  if (auto* ok = std::get_if<client::read_result>(&*r)) return *ok;
  if (auto* f = std::get_if<client::failure>(&*r)) return error_of(*f);
  return make_error(errc::malformed, "unexpected reply to a read from " + at.text());
}

expected<client::read_result> read_query(raft_client& c, const registry::query& q, bool stale,
                                         std::chrono::milliseconds deadline) {
  if (!stale) return c.read(wire::encode_query(q), deadline);
  auto until = std::chrono::steady_clock::now() + deadline;
  error last = make_error(errc::unavailable, "no endpoint answered");
  for (const auto& ep : c.endpoints()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto r = read_query_at(c, ep, q, true, std::min(left, std::chrono::milliseconds(2000)));
    if (r) return r;
    last = r.error();
  }
  return last;
}

}  // namespace conclave
