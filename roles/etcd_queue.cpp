#include "roles/etcd_queue.hpp"

#include <algorithm>
#include <cstdio>

namespace conclave::etcd::detail {

namespace {

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

void lease_or_new(api& a, std::int64_t lease, steady::time_point until,
                  std::function<void(expected<std::int64_t>)> done) {
  if (lease != 0) return done(lease);
  registry::open_session open;
  open.owner = lease_owner;
  open.ttl_ms = default_session_ttl_ms;
  a.run_async(open, until, [done = std::move(done)](api::ran got) {
    if (!got) return done(got.error());
    if (got->first.code != registry::code::ok) return done(make_error(errc::invalid_argument, got->first.detail));
    done(static_cast<std::int64_t>(got->first.value));
  });
}

void end_lease(api& a, std::int64_t lease) {
  a.run_async(registry::close_session{static_cast<registry::session_id>(lease), false},
              steady::now() + std::chrono::seconds(5), [](api::ran) {});
}

grpc::Status as_passed_on(const grpc::Status& s) {
  return s.ok() ? s : grpc::Status(grpc::StatusCode::UNKNOWN, s.error_message());
}

grpc::Status recipe_refusal(const registry::outcome& o) {
  if (o.code == registry::code::no_session) return as_passed_on(lease_not_found);
  return {grpc::StatusCode::UNKNOWN, std::string("conclave: ") + registry::to_string(o.code) + ": " + o.detail};
}

grpc::Status cancel_status(std::chrono::system_clock::time_point deadline) {
  if (std::chrono::system_clock::now() >= deadline) {
    return {grpc::StatusCode::DEADLINE_EXCEEDED, "context deadline exceeded"};
  }
  return {grpc::StatusCode::CANCELLED, "context canceled"};
}

registry::compare created_at(const std::string& key, registry::revision created) {
  registry::compare c;
  c.range = registry::key_range{key, {}};
  c.target = registry::compare_target::created;
  c.op = registry::compare_op::equal;
  c.number = created;
  return c;
}

void claim(api& a, const std::string& name, std::int64_t lease, const std::string& value, steady::time_point until,
           std::function<void(grpc::Status, place)> done) {
  place out;
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
  a.run_async(t, until, [out = std::move(out), done = std::move(done)](api::ran got) mutable {
    if (!got) return done(status_of(got.error()), std::move(out));
    auto& [o, term] = *got;
    if (o.code != registry::code::ok) return done(recipe_refusal(o), std::move(out));
    out.rev = o.value;
    out.term = term;
    out.created = o.succeeded;
    if (o.ops.size() < 2) return done({grpc::StatusCode::INTERNAL, "conclave: a claim answered no range"}, std::move(out));
    out.keys = keys_map(o.ops[1].keys.begin(), o.ops[1].keys.end());
    auto mine = out.keys.find(out.key);
    if (mine == out.keys.end()) {
      return done({grpc::StatusCode::INTERNAL, "conclave: the claimed key is not in its range"}, std::move(out));
    }
    out.kv = mine->second;
    done(grpc::Status::OK, std::move(out));
  });
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

key_line::key_line(api& a, const std::string& prefix, registry::revision rev, keys_map keys, on_change changed)
    : a_(a) {
  auto f = std::make_shared<follower>();
  f->at = rev;
  f->keys = std::move(keys);
  f->changed = std::move(changed);
  std::weak_ptr<follower> weak = f;
  subscription_ = a_.b.subscribe(
      // (push_client calls this under its own lock: it reads only the atomic.)
      [weak, prefix] {
        auto from = weak.lock();
        return registry::subscription{
            registry::watch_subscription{prefix, from ? std::optional<registry::revision>(from->at.load()) : std::nullopt}};
      },
      [f](const registry::push& p) { on_push(*f, p); });
}

key_line::~key_line() { a_.b.unsubscribe(subscription_); }

void key_line::on_push(follower& f, const registry::push& p) {
  switch (p.kind) {
    case registry::push_kind::changes: {
      // One revision at a time (a txn makes several changes at one): each
      // state of the line is seen, as etcd's watchers see each event.
      const auto& history = p.state.history;
      for (std::size_t i = 0; i < history.size();) {
        auto rev = history[i].rev;
        bool fresh = rev > f.at.load();
        for (; i < history.size() && history[i].rev == rev; ++i) {
          if (!fresh) continue;
          const auto& c = history[i];
          if (c.deleted) {
            f.keys.erase(c.key);
          } else {
            f.keys[c.key] = registry::key_value{c.value, c.created, c.rev, c.version, c.session};
          }
        }
        if (!fresh) continue;
        f.at = rev;
        f.changed(f.keys, rev);
      }
      f.at = std::max(f.at.load(), p.state.rev);  // (no change under the prefix up to there)
      break;
    }
    case registry::push_kind::compacted:
      // The history no longer reaches back: the keys as they are now
      // replace what was missed.
      f.keys = keys_map(p.state.keys.begin(), p.state.keys.end());
      f.at = std::max(f.at.load(), p.state.rev);
      f.changed(f.keys, p.state.rev);
      break;
    case registry::push_kind::progress:
      f.at = std::max(f.at.load(), p.state.rev);
      break;
    default: break;
  }
}

// --- a call waiting in line --------------------------------------------------------

struct line_call::reactor final : grpc::ServerUnaryReactor {
  std::shared_ptr<line_call> call;
  void OnCancel() override { call->cancelled(); }
  void OnDone() override { delete this; }
};

std::pair<grpc::ServerUnaryReactor*, std::shared_ptr<line_call>> line_call::start(
    api& a, std::chrono::system_clock::time_point deadline) {
  auto* r = new reactor;
  r->call = std::shared_ptr<line_call>(new line_call(a, deadline));
  r->call->reactor_ = r;
  return {r, r->call};
}

std::function<void()> line_call::close() {
  over_ = true;
  line_.reset();
  return std::exchange(leave_, nullptr);
}

void line_call::answer(const std::function<grpc::Status()>& fill) {
  std::lock_guard<std::mutex> guard(m);
  if (over_) return;
  close();
  reactor_->Finish(filled(fill));
}

void line_call::join(const std::string& name, std::int64_t lease, const std::string& value, steady::time_point until,
                     std::function<void(std::int64_t, place)> then) {
  lease_or_new(a, lease, until,
               [self = shared_from_this(), name, asked = lease, value, until, then = std::move(then)](
                   expected<std::int64_t> got) mutable {
                 if (!got) return self->answer(status_of(got.error()));
                 if (self->over()) {  // the client left before anything was put
                   if (asked == 0) end_lease(self->a, *got);
                   return;
                 }
                 claim(self->a, name, *got, value, until,
                       [self, lease = *got, then = std::move(then)](grpc::Status s, place p) {
                         if (!s.ok()) return self->answer(s);
                         then(lease, std::move(p));
                       });
               });
}

bool line_call::over() {
  std::lock_guard<std::mutex> guard(m);
  return over_;
}

void line_call::cancelled() {
  std::function<void()> leave;
  {
    std::lock_guard<std::mutex> guard(m);
    if (over_) return;
    leave = close();
    reactor_->Finish(cancel_status(deadline_));
  }
  // As etcd's: a caller that gives up leaves the line (if that fails, its
  // lease's end removes the key). Outside the lock: the backend may answer
  // before it returns.
  if (leave) leave();
}

bool line_call::entered(std::function<void()> leave) {
  {
    std::lock_guard<std::mutex> guard(m);
    if (!over_) {
      leave_ = std::move(leave);
      return true;
    }
  }
  if (leave) leave();
  return false;
}

void line_call::wait(const std::string& prefix, const std::string& key, registry::revision created,
                     registry::revision rev, keys_map keys, std::function<grpc::Status(registry::revision)> turn,
                     grpc::Status lost) {
  std::weak_ptr<line_call> weak = shared_from_this();
  auto changed = [weak, key, created, turn = std::move(turn), lost = std::move(lost)](const keys_map& now,
                                                                                     registry::revision at) {
    auto self = weak.lock();
    if (!self) return;
    auto mine = now.find(key);
    if (mine == now.end() || mine->second.created != created) return self->answer(lost);
    if (!last_before(now, created)) self->answer([&] { return turn(at); });
  };
  std::lock_guard<std::mutex> guard(m);
  if (over_) return;
  // (The line's first push may come before this returns: it waits for m.)
  line_ = std::make_unique<key_line>(a, prefix, rev, std::move(keys), std::move(changed));
}

}  // namespace conclave::etcd::detail
