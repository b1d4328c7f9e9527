#include "roles/etcd_queue.hpp"

#include <algorithm>
#include <cstdio>

namespace conclave::etcd::detail {

namespace {

// How often a waiting request asks gRPC whether its client went away (the
// synchronous API does not tell by itself).
constexpr auto cancel_check = std::chrono::milliseconds(200);

// etcd's session TTL for a request that names no lease.
constexpr std::uint64_t default_session_ttl_ms = 60000;

}  // namespace

std::string queue_key(const std::string& name, std::int64_t lease) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(lease));
  return name + "/" + hex;
}

registry::key_range prefix_range(const std::string& prefix) {
  // The prefix with its last byte below 0xff raised by one, the 0xff bytes
  // after it dropped; all 0xff (or empty): every key from `prefix` on.
  std::string end = prefix;
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return registry::key_range{prefix, std::string(1, '\0')};
  end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
  return registry::key_range{prefix, end};
}

expected<std::int64_t> lease_or_new(api& a, std::int64_t lease, steady::time_point until) {
  if (lease != 0) return lease;
  registry::open_session open;
  open.owner = lease_owner;
  open.ttl_ms = default_session_ttl_ms;
  auto done = a.run(open, until);
  if (!done) return done.error();
  if (done->first.code != registry::code::ok) return make_error(errc::invalid_argument, done->first.detail);
  return static_cast<std::int64_t>(done->first.value);
}

grpc::Status as_passed_on(const grpc::Status& s) {
  return s.ok() ? s : grpc::Status(grpc::StatusCode::UNKNOWN, s.error_message());
}

registry::compare created_at(const std::string& key, registry::revision created) {
  registry::compare c;
  c.range = registry::key_range{key, {}};
  c.target = registry::compare_target::created;
  c.op = registry::compare_op::equal;
  c.number = created;
  return c;
}

grpc::Status claim(api& a, const std::string& name, std::int64_t lease, const std::string& value,
                   steady::time_point until, place& out) {
  out.key = queue_key(name, lease);
  registry::txn t;
  t.compares = {created_at(out.key, 0)};
  registry::txn_op put;
  put.kind = registry::op_kind::put;
  put.range = registry::key_range{out.key, {}};
  put.value = value;
  put.session = static_cast<registry::session_id>(lease);
  registry::txn_op get;
  get.kind = registry::op_kind::range;
  get.range = registry::key_range{out.key, {}};
  registry::txn_op line;
  line.kind = registry::op_kind::range;
  line.range = prefix_range(name + "/");
  t.success = {put, line};
  t.failure = {get, line};
  auto done = a.run(t, until);
  if (!done) return status_of(done.error());
  auto& [o, term] = *done;
  if (o.code == registry::code::no_session) return as_passed_on(lease_not_found);
  if (o.code != registry::code::ok) {
    return {grpc::StatusCode::UNKNOWN, std::string("conclave: ") + registry::to_string(o.code) + ": " + o.detail};
  }
  out.rev = o.value;
  out.term = term;
  out.created = o.succeeded;
  out.keys = keys_map(o.ops.at(1).keys.begin(), o.ops.at(1).keys.end());
  auto mine = out.keys.find(out.key);
  if (mine == out.keys.end()) return {grpc::StatusCode::INTERNAL, "conclave: the claimed key is not in its range"};
  out.kv = mine->second;
  return grpc::Status::OK;
}

const keys_map::value_type* first_created(const keys_map& keys) {
  const keys_map::value_type* out = nullptr;
  for (const auto& kv : keys) {
    if (!out || kv.second.created < out->second.created) out = &kv;
  }
  return out;
}

const keys_map::value_type* last_before(const keys_map& keys, registry::revision created) {
  const keys_map::value_type* out = nullptr;
  for (const auto& kv : keys) {
    if (kv.second.created < created && (!out || kv.second.created > out->second.created)) out = &kv;
  }
  return out;
}

key_queue::key_queue(api& a, std::string prefix, registry::revision rev, keys_map keys)
    : a_(a), rev_(rev), keys_(std::move(keys)), inbox_(std::make_shared<inbox>()) {
  inbox_->at = rev;
  std::weak_ptr<inbox> weak = inbox_;
  subscription_ = a_.b.subscribe(
      [weak, prefix] {
        auto in = weak.lock();
        if (!in) return registry::subscription{registry::watch_subscription{prefix, std::nullopt}};
        std::lock_guard<std::mutex> guard(in->m);
        return registry::subscription{registry::watch_subscription{prefix, in->at}};
      },
      [weak](const registry::push& p) {
        if (auto in = weak.lock()) on_push(*in, p);
      });
}

key_queue::~key_queue() { a_.b.unsubscribe(subscription_); }

void key_queue::on_push(inbox& in, const registry::push& p) {
  std::lock_guard<std::mutex> guard(in.m);
  switch (p.kind) {
    case registry::push_kind::changes:
      for (const auto& c : p.state.history) {
        if (c.rev > in.at) in.changes.push_back(c);
      }
      break;
    case registry::push_kind::compacted: {
      // The history no longer reaches back: the keys as they are now replace
      // what was missed.
      in.changes.clear();
      keys_map now(p.state.keys.begin(), p.state.keys.end());
      in.listing.emplace(p.state.rev, std::move(now));
      break;
    }
    case registry::push_kind::progress: break;
    default: return;
  }
  in.at = std::max(in.at, p.state.rev);
  in.changed.notify_all();
}

grpc::Status key_queue::advance(grpc::ServerContext* ctx, std::chrono::system_clock::time_point deadline) {
  static const grpc::Status cancelled{grpc::StatusCode::CANCELLED, "context canceled"};
  static const grpc::Status expired{grpc::StatusCode::DEADLINE_EXCEEDED, "context deadline exceeded"};
  std::unique_lock<std::mutex> lock(inbox_->m);
  auto& in = *inbox_;
  while (in.changes.empty() && !in.listing) {
    if (ctx->IsCancelled()) return cancelled;
    auto now = std::chrono::system_clock::now();
    if (now >= deadline) return expired;
    in.changed.wait_until(lock, std::min(deadline, now + cancel_check));
  }
  if (in.listing) {
    std::tie(rev_, keys_) = std::move(*in.listing);
    in.listing.reset();
    return grpc::Status::OK;
  }
  // Every change of the next revision (a txn makes several at one).
  rev_ = in.changes.front().rev;
  while (!in.changes.empty() && in.changes.front().rev == rev_) {
    auto c = std::move(in.changes.front());
    in.changes.pop_front();
    if (c.deleted) {
      keys_.erase(c.key);
    } else {
      keys_[c.key] = registry::key_value{std::move(c.value), c.created, c.rev, c.version, c.session};
    }
  }
  return grpc::Status::OK;
}

grpc::Status key_queue::wait_turn(grpc::ServerContext* ctx, std::chrono::system_clock::time_point deadline,
                                  const std::string& key, registry::revision created, bool& lost) {
  for (;;) {
    auto mine = keys_.find(key);
    lost = mine == keys_.end() || mine->second.created != created;
    if (lost || !last_before(keys_, created)) return grpc::Status::OK;
    if (auto s = advance(ctx, deadline); !s.ok()) return s;
  }
}

}  // namespace conclave::etcd::detail
