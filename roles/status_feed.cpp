#include "roles/status_feed.hpp"

#include <algorithm>

namespace conclave {

using namespace std::chrono_literals;

status_feed::status_feed(sources s) : src_(std::move(s)) {
  thread_ = std::thread([this] { run(); });
}

status_feed::~status_feed() {
  stop();
  thread_.join();
}

void status_feed::stop() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  updated_.notify_all();
}

void status_feed::poke() {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    poked_ = true;
  }
  wake_.notify_all();
}

void status_feed::on_role(std::uint64_t term, std::uint64_t leader) {
  {
    std::lock_guard<std::mutex> guard(mutex_);
    if (last_leader_ != leader) {
      last_leader_ = leader;
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch());
      changes_.push_back({static_cast<std::uint64_t>(ms.count()), term, leader});
      if (changes_.size() > kept_leader_changes) changes_.pop_front();
    }
    poked_ = true;
  }
  wake_.notify_all();
}

std::string status_feed::build() {
  status_inputs in;
  in.self = src_.self;
  in.failed = src_.failed();
  {
    std::lock_guard<std::mutex> guard(mutex_);
    in.leader_changes.assign(changes_.begin(), changes_.end());
  }
  auto local = src_.status_of(src_.self_at);
  std::vector<client::config_member> config;
  if (local) config = local->members;
  // A master not in the configuration it knows (not joined yet) still shows itself.
  if (std::none_of(config.begin(), config.end(), [&](const auto& m) { return m.id == src_.self; })) {
    config.push_back({src_.self, src_.self_at.text(), false});
  }
  for (const auto& m : config) {
    master_view v{m, std::nullopt, {}};
    auto status_at = [&](const std::string& address) -> expected<client::status> {
      auto at = raft::parse_endpoint(address, "address");
      if (!at) return at.error();
      return src_.status_of(*at);
    };
    auto s = m.id == src_.self ? local : status_at(m.address);
    if (s) {
      v.status = *s;
    } else {
      v.error = s.error().message();
    }
    in.masters.push_back(std::move(v));
  }
  auto reg = src_.registry();
  if (reg) {
    in.registry = reg->state;
  } else {
    in.registry_error = reg.error().message();
  }
  return status_json(in);
}

std::string status_feed::now() { return build(); }

void status_feed::run() {
  std::unique_lock<std::mutex> guard(mutex_);
  while (!stopping_) {
    wake_.wait_for(guard, 1s, [&] { return poked_ || stopping_; });
    if (stopping_) break;
    poked_ = false;
    if (viewers_ == 0) continue;
    guard.unlock();
    auto snapshot = build();
    guard.lock();
    if (snapshot != current_) {
      current_ = std::move(snapshot);
      ++seq_;
      updated_.notify_all();
    }
    // Pokes meanwhile are taken together: at most four builds a second
    // (each reads the registry's members, sessions and locks).
    guard.unlock();
    std::this_thread::sleep_for(250ms);
    guard.lock();
  }
}

status_feed::viewer::viewer(status_feed& f) : feed_(f) {
  {
    std::lock_guard<std::mutex> guard(feed_.mutex_);
    // The first viewer gets a snapshot built for it, not the last one kept.
    if (feed_.viewers_++ == 0) {
      feed_.current_.clear();
      seen_ = feed_.seq_;
    }
    feed_.poked_ = true;
  }
  feed_.wake_.notify_all();
}

status_feed::viewer::~viewer() {
  std::lock_guard<std::mutex> guard(feed_.mutex_);
  --feed_.viewers_;
}

std::optional<std::string> status_feed::viewer::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard(feed_.mutex_);
  if (!feed_.updated_.wait_for(guard, timeout, [&] { return feed_.seq_ > seen_ || feed_.stopping_; })) {
    return std::nullopt;
  }
  if (feed_.stopping_) return std::nullopt;
  seen_ = feed_.seq_;
  return feed_.current_;
}

}  // namespace conclave
