// The status page's data (roles/status_page.hpp): snapshots of this master's
// view (roles/status_snapshot.hpp), rebuilt when something changes and
// handed to every open stream. A snapshot is rebuilt when woken by a push
// from the registry this master applies (poke), by a change of role or
// leader (on_role), or after a second without either (other masters'
// positions and session deadlines move without a push); it is handed on
// only if it differs from the last. Nothing is built while no stream is open.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "actors/raft/node_options.hpp"
#include "roles/status_snapshot.hpp"
#include "schema/error.hpp"

namespace conclave {

class status_feed {
 public:
  // Where snapshots come from; called on the feed's thread or a request's.
  struct sources {
    std::uint64_t self = 0;
    // A master's status: this one's in-process, the others' over the network.
    std::function<expected<client::status>(const raft::endpoint&)> status_of;
    raft::endpoint self_at;
    // The registry as this master applied it (a serializable read here).
    std::function<expected<registry::state_result>()> registry;
    std::function<bool()> failed;  // this master's Raft server stopped
  };
  static constexpr std::size_t kept_leader_changes = 20;

  explicit status_feed(sources s);
  // stop(), then the thread ends.
  ~status_feed();

  // The registry changed here (a push this master sent): rebuild soon.
  void poke();
  // This master's role listener: records a change of leader (the last
  // kept_leader_changes), and rebuilds soon.
  void on_role(std::uint64_t term, std::uint64_t leader);

  // A snapshot built now (for /status.json).
  std::string now();

  // A stream's view: while one lives, the feed builds snapshots.
  class viewer {
   public:
    explicit viewer(status_feed& f);
    ~viewer();
    viewer(const viewer&) = delete;
    viewer& operator=(const viewer&) = delete;
    // The next snapshot this viewer has not had (the current one at first),
    // or nothing after `timeout` or once the feed stops.
    std::optional<std::string> next(std::chrono::milliseconds timeout);

   private:
    status_feed& feed_;
    std::uint64_t seen_ = 0;
  };

  // Ends every viewer's wait (their streams end) and stops building.
  void stop();
  bool stopped() const { return stopping_; }

 private:
  void run();
  std::string build();

  sources src_;
  std::mutex mutex_;
  std::condition_variable wake_;     // the feed's thread: poked, or stopping
  std::condition_variable updated_;  // viewers: a new snapshot, or stopping
  bool poked_ = false;
  std::atomic<bool> stopping_{false};
  std::size_t viewers_ = 0;
  std::uint64_t seq_ = 0;  // the current snapshot's number (0: none yet)
  std::string current_;
  std::deque<leader_change> changes_;
  std::optional<std::uint64_t> last_leader_;
  std::thread thread_;
};

}  // namespace conclave
