#include "actors/raft/push_hub.hpp"

#include <string_view>
#include <tuple>

#include "schema/client_codec.hpp"

namespace conclave::raft {

std::string push_hub::subscribe(const caf::actor& who, std::uint64_t id, const std::string& request) {
  if (!service_) return "unsupported: this server serves no subscriptions";
  if (!who) return "invalid_argument: no subscriber";
  auto addr = who.address();
  auto& c = clients_[addr];
  if (!c.handle) {
    c.handle = who;
    hooks_.monitor(who);
  }
  if (auto old = c.subs.find(id); old != c.subs.end()) {  // the same id again replaces it
    service_->unsubscribe(old->second);
    owners_.erase(old->second);
    c.subs.erase(old);
  }
  auto k = next_key_++;
  auto due = service_->subscribe(k, request);
  if (!due) {
    if (c.subs.empty()) {
      hooks_.demonitor(who);
      clients_.erase(addr);
    }
    return std::string(conclave::client::code_name(due.error().code)) + ": " + due.error().message();
  }
  c.subs[id] = k;
  owners_[k] = {addr, id};
  send(*due);
  // Where the subscription starts: a watch from "now" resumes from here.
  auto [kind, bytes] = service_->progress();
  hooks_.send(c.handle, {id}, kind, bytes);
  return {};
}

void push_hub::unsubscribe(const caf::actor_addr& who, std::uint64_t id) {
  auto it = clients_.find(who);
  if (it == clients_.end()) return;
  auto s = it->second.subs.find(id);
  if (s == it->second.subs.end()) return;
  service_->unsubscribe(s->second);
  owners_.erase(s->second);
  it->second.subs.erase(s);
}

bool push_hub::on_down(const caf::actor_addr& who) {
  auto it = clients_.find(who);
  if (it == clients_.end()) return false;
  for (const auto& [id, k] : it->second.subs) {
    service_->unsubscribe(k);
    owners_.erase(k);
  }
  clients_.erase(it);
  return true;
}

void push_hub::after_apply() {
  if (!service_ || clients_.empty()) return;
  send(service_->collect());
}

void push_hub::progress() {
  if (!service_ || clients_.empty()) return;
  auto [kind, bytes] = service_->progress();
  for (const auto& [addr, c] : clients_) hooks_.send(c.handle, {0}, kind, bytes);
}

void push_hub::send(const std::vector<push_service::out>& outs) {
  // Groups (client, kind, bytes) in order of first appearance. A push joins
  // an earlier group only if no later group holds an earlier push of the
  // same subscription: each subscription still gets its pushes in order.
  struct group {
    caf::actor handle;
    std::vector<std::uint64_t> ids;
    const push_service::out* out;
  };
  std::vector<group> groups;
  std::map<std::tuple<caf::actor_addr, std::uint8_t, std::string_view>, std::size_t> open;
  std::map<push_service::key, std::size_t> last_group;
  for (const auto& o : outs) {
    auto it = owners_.find(o.to);
    if (it == owners_.end()) continue;
    auto c = clients_.find(it->second.first);
    if (c == clients_.end()) continue;
    auto k = std::make_tuple(c->first, o.kind, std::string_view(o.bytes));
    auto g = open.find(k);
    auto earliest = last_group.count(o.to) ? last_group[o.to] : 0;
    std::size_t at;
    if (g != open.end() && g->second >= earliest) {
      at = g->second;
    } else {
      at = groups.size();
      groups.push_back(group{c->second.handle, {}, &o});
      open[k] = at;
    }
    groups[at].ids.push_back(it->second.second);
    last_group[o.to] = at;
  }
  for (const auto& g : groups) hooks_.send(g.handle, g.ids, g.out->kind, g.out->bytes);
}

}  // namespace conclave::raft
