// The peer actor's side of push subscriptions: who subscribed to what (a
// client actor and its own subscription id), and sending what the push
// service (push_service.hpp) says is due. It lives in the actor that
// applies, so the service reads the state machine on the thread that
// changes it. A subscriber's connection is monitored: when it goes, its
// subscriptions go.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/raft/push_service.hpp"

namespace conclave::raft {

class push_hub {
 public:
  // How the owner monitors a subscriber, and sends it one push for some of
  // its subscriptions (their ids, the push's kind and bytes).
  struct hooks {
    std::function<void(const caf::actor&)> monitor;
    std::function<void(const caf::actor&)> demonitor;
    std::function<void(const caf::actor&, const std::vector<std::uint64_t>&, std::uint8_t, const std::string&)> send;
  };
  push_hub(hooks h, std::shared_ptr<push_service> service) : hooks_(std::move(h)), service_(std::move(service)) {}

  bool enabled() const { return service_ != nullptr; }
  // A subscription from `client` under its id `id`; returns an error text,
  // empty when accepted (what is due at once is sent first).
  std::string subscribe(const caf::actor& client, std::uint64_t id, const std::string& request);
  void unsubscribe(const caf::actor_addr& client, std::uint64_t id);
  // A monitored actor went down; true if it was a subscriber.
  bool on_down(const caf::actor_addr& who);
  // After entries were applied (or a snapshot restored): sends what is due.
  void after_apply();
  // Periodically, while this master knows a leader: progress to every
  // subscriber, so that it can tell a live master from a silent one.
  void progress();
  std::size_t subscribers() const { return clients_.size(); }

 private:
  struct client {
    caf::actor handle;
    std::map<std::uint64_t, push_service::key> subs;  // its id -> ours
  };
  // Sends them in order, one message per client for subscriptions due the
  // same push (watches of one prefix): a write costs a message per client,
  // not per watch.
  void send(const std::vector<push_service::out>& outs);

  hooks hooks_;
  std::shared_ptr<push_service> service_;
  std::map<caf::actor_addr, client> clients_;
  std::map<push_service::key, std::pair<caf::actor_addr, std::uint64_t>> owners_;  // ours -> (client, its id)
  push_service::key next_key_ = 1;
};

}  // namespace conclave::raft
