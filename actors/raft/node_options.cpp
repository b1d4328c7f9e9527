#include "actors/raft/node_options.hpp"

#include <cstdlib>

namespace conclave::raft {

expected<endpoint> parse_endpoint(const std::string& text, const std::string& what) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return make_error(errc::invalid_argument, what + ": '" + text + "' is not host:port");
  }
  char* end = nullptr;
  auto port = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port == 0 || port > 65535) {
    return make_error(errc::invalid_argument, what + ": '" + text + "' has no valid port (1-65535)");
  }
  return endpoint{text.substr(0, colon), static_cast<std::uint16_t>(port)};
}

expected<void> node_options::validate() const {
  auto bad = [](std::string what) { return make_error(errc::invalid_argument, std::move(what)); };
  if (auto ok = raft.validate(); !ok) return ok;
  if (cluster_id.empty()) return bad("cluster id: must not be empty");
  if (cluster_id.size() > 128) return bad("cluster id: at most 128 bytes");
  if (data_dir.empty()) return bad("data dir: must be set");
  if (members.count(raft.id) == 0) {
    return bad("peers: must include this server's own id " + std::to_string(raft.id.value));
  }
  if (tick_ms < 1 || tick_ms > 1000) return bad("tick ms: must be in [1, 1000]");
  if (snapshot_every_entries < 1) return bad("snapshot every: must be >= 1");
  if (snapshots_kept < 1) return bad("snapshots kept: must be >= 1");
  if (reconnect_min_ms < 1 || reconnect_max_ms < reconnect_min_ms) {
    return bad("reconnect backoff: need 1 <= min <= max");
  }
  return {};
}

}  // namespace conclave::raft
