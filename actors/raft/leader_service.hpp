// Work a state machine's owner does beside Raft on every master, acting only
// while this server leads: the registry's failure detector is one. The peer
// actor calls it; it proposes commands and never touches I/O itself.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace conclave::raft {

class leader_service {
 public:
  virtual ~leader_service() = default;
  // This server started or stopped leading.
  virtual void on_role(bool leading, std::uint64_t now_ms) = 0;
  // Committed entries were applied to the state machine.
  virtual void on_applied(std::uint64_t now_ms) = 0;
  // Called every tick; returns encoded commands to propose (leader only).
  // The shell may fail to propose some (Raft refuses them during a transfer
  // or when too much is uncommitted): the service compares the applied
  // state with what it wants and proposes what is missing again later.
  virtual std::vector<std::string> on_tick(std::uint64_t now_ms) = 0;
  // A client's heartbeat for `session`, with an opaque payload (the
  // registry's: the member's resource usage). Returns false if unknown.
  virtual bool on_keepalive(std::uint64_t session, const std::string& payload, std::uint64_t now_ms) = 0;
  // The connection that carried heartbeats for `session` broke.
  virtual void on_connection_lost(std::uint64_t session, std::uint64_t now_ms) = 0;
  // Whether the applied state still holds `session`.
  virtual bool has_session(std::uint64_t session) const = 0;
};

}  // namespace conclave::raft
