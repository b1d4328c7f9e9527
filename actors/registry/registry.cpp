#include "actors/registry/registry.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <map>
#include <set>

namespace conclave::registry {

namespace {

outcome ok(std::uint64_t value = 0) {
  outcome o;
  o.value = value;
  return o;
}
outcome fail(code c, std::string detail) {
  outcome o;
  o.code = c;
  o.detail = std::move(detail);
  return o;
}

bool is_live(member_status s) { return s == member_status::alive || s == member_status::suspect; }

}  // namespace

outcome registry::apply(const command& c, std::uint64_t index, std::vector<lock_grant>* grants) {
  std::vector<lock_grant> local;
  auto& g = grants ? *grants : local;
  s_.applied = std::max(s_.applied, index);
  return std::visit([&](const auto& cmd) { return on(cmd, index, g); }, c);
}

// --- members --------------------------------------------------------------------

outcome registry::on(const register_member& c, std::uint64_t index, std::vector<lock_grant>& grants) {
  if (c.m.id.empty()) return fail(code::invalid, "member id is empty");
  if (c.ttl_ms == 0) return fail(code::invalid, "registration TTL is 0");
  if (auto it = s_.members.find(c.m.id); it != s_.members.end() && s_.sessions.count(it->second.session)) {
    // A repeat of a registration whose outcome the member did not learn: the
    // same session, so the first attempt's events and keys stay (#12).
    if (c.m.incarnation != 0 && c.m.incarnation == it->second.incarnation) return ok(it->second.session);
    // A member registering again (it restarted) ends its previous incarnation:
    // what that one held ephemerally is gone.
    end_session(it->second.session, true, grants);
  }
  auto m = c.m;
  auto id = fresh_session_id(index);
  m.status = member_status::alive;
  m.session = id;
  m.changed = s_.applied;
  s_.sessions[id] = session{id, c.m.id, c.ttl_ms, c.ttl_ms};
  s_.members[c.m.id] = std::move(m);
  return ok(id);
}

outcome registry::on(const report_usage& c, std::uint64_t, std::vector<lock_grant>&) {
  for (const auto& [id, usage] : c.reports) {
    auto it = s_.members.find(id);
    if (it == s_.members.end()) continue;
    it->second.usage = usage;
    it->second.changed = s_.applied;
  }
  return ok(s_.rev);
}

outcome registry::on(const set_member_status& c, std::uint64_t, std::vector<lock_grant>& grants) {
  auto it = s_.members.find(c.id);
  if (it == s_.members.end()) return fail(code::not_found, "no member '" + c.id + "'");
  // Only a member with a session can be alive: a dead one must register again.
  if (is_live(c.status) && !s_.sessions.count(it->second.session)) {
    return fail(code::no_session, "member '" + c.id + "' has no session; it must register again");
  }
  if (!is_live(c.status)) {
    // Dead or gone: its registration session ends with it.
    if (s_.sessions.count(it->second.session)) end_session(it->second.session, c.status == member_status::dead, grants);
  }
  it = s_.members.find(c.id);
  it->second.status = c.status;
  it->second.changed = s_.applied;
  if (!is_live(c.status)) drop_recipient(c.id);
  return ok(s_.rev);
}

// --- sessions ---------------------------------------------------------------------

outcome registry::on(const open_session& c, std::uint64_t index, std::vector<lock_grant>&) {
  if (c.ttl_ms == 0) return fail(code::invalid, "session TTL is 0");
  // A chosen id may not name a live session, nor a member's (its record
  // keeps the id after the session ends: the id must not come back to it).
  if (c.id != 0 && (s_.sessions.count(c.id) || std::any_of(s_.members.begin(), s_.members.end(), [&](const auto& m) {
                      return m.second.session == c.id;
                    }))) {
    return fail(code::exists, "session " + std::to_string(c.id) + " exists");
  }
  auto id = c.id != 0 ? c.id : fresh_session_id(index);
  s_.sessions[id] = session{id, c.owner, c.ttl_ms, c.ttl_ms};
  return ok(id);
}

session_id registry::fresh_session_id(std::uint64_t index) {
  auto id = std::max<std::uint64_t>(index, s_.last_session + 1);
  while (s_.sessions.count(id)) ++id;
  s_.last_session = id;
  return id;
}

outcome registry::on(const close_session& c, std::uint64_t, std::vector<lock_grant>& grants) {
  if (!s_.sessions.count(c.id)) return fail(code::no_session, "no session " + std::to_string(c.id));
  end_session(c.id, c.expired, grants);
  return ok(s_.rev);
}

outcome registry::on(const checkpoint_sessions& c, std::uint64_t, std::vector<lock_grant>&) {
  for (const auto& [id, remaining] : c.remaining_ms) {
    auto it = s_.sessions.find(id);
    if (it != s_.sessions.end()) it->second.remaining_ms = std::min(remaining, it->second.ttl_ms);
  }
  return ok();
}

void registry::end_session(session_id id, bool expired, std::vector<lock_grant>& grants) {
  auto sit = s_.sessions.find(id);
  assert(sit != s_.sessions.end());
  auto owner = sit->second.owner;
  s_.sessions.erase(sit);
  // Ephemeral keys vanish with their session, all at one revision.
  std::vector<std::string> doomed;
  for (const auto& [key, kv] : s_.keys) {
    if (kv.session == id) doomed.push_back(key);
  }
  if (!doomed.empty()) ++s_.rev;
  for (const auto& key : doomed) delete_key(key, s_.rev);
  // Its locks pass on; its waits end.
  std::vector<std::string> empty;
  for (auto& [name, l] : s_.locks) {
    l.waiters.erase(std::remove(l.waiters.begin(), l.waiters.end(), id), l.waiters.end());
    if (l.holder == id) {
      l.holder = 0;
      grant_next(name, l, grants);
    }
    if (l.holder == 0 && l.waiters.empty()) empty.push_back(name);
  }
  for (const auto& name : empty) s_.locks.erase(name);
  // A member whose registration session ended is dead (expired) or left (closed).
  auto mit = s_.members.find(owner);
  if (mit != s_.members.end() && mit->second.session == id && is_live(mit->second.status)) {
    mit->second.status = expired ? member_status::dead : member_status::left;
    mit->second.changed = s_.applied;
    drop_recipient(owner);
  }
}

// --- keys -----------------------------------------------------------------------------

void registry::record(change c) {
  s_.history.push_back(std::move(c));
  while (s_.history.size() > limits_.history) {
    s_.history_floor = s_.history.front().rev;
    s_.history.pop_front();
  }
}

void registry::set_key(const std::string& key, std::string value, session_id session, revision rev) {
  auto it = s_.keys.find(key);
  std::optional<key_value> prev;
  if (it != s_.keys.end()) prev = it->second;
  auto& kv = s_.keys[key];
  if (!prev) kv.created = rev;
  kv.value = std::move(value);
  kv.modified = rev;
  kv.version = prev ? prev->version + 1 : 1;
  kv.session = session;
  record(change{rev, false, key, kv.value, kv.created, kv.version, kv.session, std::move(prev)});
}

void registry::delete_key(const std::string& key, revision rev) {
  auto it = s_.keys.find(key);
  if (it == s_.keys.end()) return;
  change c{rev, true, key, {}, 0, 0, 0, std::move(it->second)};
  s_.keys.erase(it);
  record(std::move(c));
}

outcome registry::on(const put& c, std::uint64_t, std::vector<lock_grant>&) {
  if (c.key.empty()) return fail(code::invalid, "key is empty");
  if (c.session != 0 && !s_.sessions.count(c.session)) {
    return fail(code::no_session, "no session " + std::to_string(c.session) + " for ephemeral key '" + c.key + "'");
  }
  auto it = s_.keys.find(c.key);
  std::uint64_t current = it == s_.keys.end() ? 0 : it->second.version;
  if (c.if_version && *c.if_version != current) {
    return fail(code::version_mismatch, "key '" + c.key + "' is at version " + std::to_string(current) +
                                            ", expected " + std::to_string(*c.if_version));
  }
  auto rev = ++s_.rev;
  set_key(c.key, c.value, c.session, rev);
  return ok(rev);
}

outcome registry::on(const remove_key& c, std::uint64_t, std::vector<lock_grant>&) {
  auto it = s_.keys.find(c.key);
  if (it == s_.keys.end()) return fail(code::not_found, "no key '" + c.key + "'");
  if (c.if_version && *c.if_version != it->second.version) {
    return fail(code::version_mismatch, "key '" + c.key + "' is at version " + std::to_string(it->second.version) +
                                            ", expected " + std::to_string(*c.if_version));
  }
  auto rev = ++s_.rev;
  delete_key(c.key, rev);
  return ok(rev);
}

// --- transactions ------------------------------------------------------------------

std::vector<std::pair<std::string, key_value>> registry::keys_in(const key_range& r) const {
  std::vector<std::pair<std::string, key_value>> out;
  if (r.single()) {
    if (auto it = s_.keys.find(r.key); it != s_.keys.end()) out.emplace_back(*it);
    return out;
  }
  for (auto it = s_.keys.lower_bound(r.key); it != s_.keys.end() && r.contains(it->first); ++it) out.emplace_back(*it);
  return out;
}

bool registry::holds(const compare& c) const {
  auto judge = [&c](int order) {
    switch (c.op) {
      case compare_op::equal: return order == 0;
      case compare_op::greater: return order > 0;
      case compare_op::less: return order < 0;
      case compare_op::not_equal: return order != 0;
    }
    return false;
  };
  auto order_of = [](std::uint64_t a, std::uint64_t b) { return a < b ? -1 : a > b ? 1 : 0; };
  auto one = [&](const key_value& kv) {
    switch (c.target) {
      case compare_target::value: return judge(kv.value.compare(c.value));
      case compare_target::version: return judge(order_of(kv.version, c.number));
      case compare_target::created: return judge(order_of(kv.created, c.number));
      case compare_target::modified: return judge(order_of(kv.modified, c.number));
      case compare_target::session: return judge(order_of(kv.session, c.number));
    }
    return false;
  };
  auto keys = keys_in(c.range);
  // As etcd: no key compares as all zeros, except that no value equals anything.
  if (keys.empty()) return c.target != compare_target::value && one(key_value{});
  return std::all_of(keys.begin(), keys.end(), [&](const auto& kv) { return one(kv.second); });
}

namespace {

// etcd's rule: a transaction changes each key at most once (a key put twice,
// or put and inside a removed range, is refused).
std::optional<std::string> changes_twice(const std::vector<txn_op>& ops) {
  std::set<std::string> put;
  for (const auto& op : ops) {
    if (op.kind == op_kind::put && !put.insert(op.range.key).second) return "key '" + op.range.key + "' is put twice";
  }
  for (const auto& op : ops) {
    if (op.kind != op_kind::remove) continue;
    for (const auto& k : put) {
      if (op.range.contains(k)) return "key '" + k + "' is put and removed";
    }
  }
  return std::nullopt;
}

}  // namespace

outcome registry::on(const txn& c, std::uint64_t, std::vector<lock_grant>&) {
  for (const auto* ops : {&c.success, &c.failure}) {
    if (auto why = changes_twice(*ops)) return fail(code::invalid, *why);
    for (const auto& op : *ops) {
      if (op.range.key.empty()) return fail(code::invalid, "key is empty");
    }
  }
  for (const auto& cmp : c.compares) {
    if (cmp.range.key.empty()) return fail(code::invalid, "key is empty");
  }
  bool succeeded = std::all_of(c.compares.begin(), c.compares.end(), [this](const compare& x) { return holds(x); });
  const auto& ops = succeeded ? c.success : c.failure;
  // Checked before anything changes: a refused transaction changes nothing.
  bool changes = false;
  for (const auto& op : ops) {
    if (op.kind == op_kind::put) {
      changes = true;
      if (op.session != 0 && !s_.sessions.count(op.session)) {
        return fail(code::no_session, "no session " + std::to_string(op.session) + " for key '" + op.range.key + "'");
      }
      if ((op.ignore_value || op.ignore_session) && !s_.keys.count(op.range.key)) {
        return fail(code::not_found, "no key '" + op.range.key + "' to keep the value or session of");
      }
    } else if (op.kind == op_kind::remove && !changes) {
      auto it = op.range.single() ? s_.keys.find(op.range.key) : s_.keys.lower_bound(op.range.key);
      changes = it != s_.keys.end() && op.range.contains(it->first);
    }
  }
  // Every key it changes gets the same new revision.
  if (changes) ++s_.rev;
  outcome out = ok(s_.rev);
  out.succeeded = succeeded;
  for (const auto& op : ops) {
    op_result r;
    switch (op.kind) {
      case op_kind::range: r.keys = keys_in(op.range); break;
      case op_kind::put: {
        const auto* prev = get(op.range.key);
        if (prev) r.keys.emplace_back(op.range.key, *prev);
        set_key(op.range.key, op.ignore_value ? prev->value : op.value, op.ignore_session ? prev->session : op.session,
                s_.rev);
        break;
      }
      case op_kind::remove:
        r.keys = keys_in(op.range);
        for (const auto& kv : r.keys) delete_key(kv.first, s_.rev);
        break;
    }
    out.ops.push_back(std::move(r));
  }
  return out;
}

outcome registry::on(const compact& c, std::uint64_t, std::vector<lock_grant>&) {
  if (c.rev > s_.rev) {
    return fail(code::future_revision, "revision " + std::to_string(c.rev) + " is after " + std::to_string(s_.rev));
  }
  if (c.rev <= s_.compacted) {
    return fail(code::compacted, "already compacted at revision " + std::to_string(s_.compacted));
  }
  // The changes at `rev` stay: a watch may start there.
  while (!s_.history.empty() && s_.history.front().rev < c.rev) s_.history.pop_front();
  s_.history_floor = std::max(s_.history_floor, c.rev - 1);
  s_.compacted = c.rev;
  return ok(s_.rev);
}

// --- locks ---------------------------------------------------------------------------

void registry::grant_next(const std::string& name, lock& l, std::vector<lock_grant>& grants) {
  // First come, first served; every grant gets a fresh revision as its
  // fencing token, larger than any token granted before.
  while (l.holder == 0 && !l.waiters.empty()) {
    auto next = l.waiters.front();
    l.waiters.erase(l.waiters.begin());
    if (!s_.sessions.count(next)) continue;
    l.holder = next;
    l.token = ++s_.rev;
    grants.push_back(lock_grant{name, next, l.token});
  }
}

outcome registry::on(const acquire_lock& c, std::uint64_t, std::vector<lock_grant>&) {
  if (c.name.empty()) return fail(code::invalid, "lock name is empty");
  if (!s_.sessions.count(c.session)) return fail(code::no_session, "no session " + std::to_string(c.session));
  auto& l = s_.locks[c.name];
  if (l.holder == 0) {
    l.holder = c.session;
    l.token = ++s_.rev;
    return ok(l.token);
  }
  if (l.holder == c.session) return ok(l.token);  // already ours: the same grant
  if (!c.wait) return fail(code::held, "lock '" + c.name + "' is held by session " + std::to_string(l.holder));
  if (std::find(l.waiters.begin(), l.waiters.end(), c.session) == l.waiters.end()) {
    l.waiters.push_back(c.session);
  }
  // The log index as of which it waits: a lock subscription (push) from
  // there on is judged by a master that has applied this far.
  outcome o = ok(s_.applied);
  o.code = code::queued;
  return o;
}

outcome registry::on(const release_lock& c, std::uint64_t, std::vector<lock_grant>& grants) {
  auto it = s_.locks.find(c.name);
  if (it == s_.locks.end() || it->second.holder != c.session) {
    return fail(code::not_holder, "session " + std::to_string(c.session) + " does not hold lock '" + c.name + "'");
  }
  auto& l = it->second;
  l.holder = 0;
  grant_next(c.name, l, grants);
  if (l.holder == 0 && l.waiters.empty()) s_.locks.erase(it);
  return ok(s_.rev);
}

outcome registry::on(const cancel_lock_wait& c, std::uint64_t, std::vector<lock_grant>&) {
  auto it = s_.locks.find(c.name);
  if (it == s_.locks.end()) return fail(code::not_found, "no lock '" + c.name + "'");
  auto& w = it->second.waiters;
  auto pos = std::find(w.begin(), w.end(), c.session);
  if (pos == w.end()) return fail(code::not_found, "session " + std::to_string(c.session) + " is not waiting");
  w.erase(pos);
  return ok(s_.rev);
}

// --- events ----------------------------------------------------------------------------

outcome registry::on(const publish_event& c, std::uint64_t, std::vector<lock_grant>&) {
  event e;
  e.from = c.from;
  e.to = c.to;
  e.payload = c.payload;
  // Delivered (at least once, in order) to the members alive when published.
  for (const auto& [id, m] : s_.members) {
    if (is_live(m.status) && (c.to.empty() || c.to == id)) e.recipients.insert(id);
  }
  // At the cap a publish is refused, changing nothing, rather than dropping
  // an undelivered event: delivery stays at least once (#12).
  if (!e.recipients.empty() && s_.events.size() >= limits_.events) {
    return fail(code::full, std::to_string(s_.events.size()) + " undelivered events; members must acknowledge");
  }
  e.seq = ++s_.event_seq;
  if (e.recipients.empty()) {
    return c.to.empty() ? ok(e.seq) : fail(code::not_found, "no live member '" + c.to + "'");
  }
  s_.events.push_back(std::move(e));
  return ok(s_.event_seq);
}

outcome registry::on(const ack_events& c, std::uint64_t, std::vector<lock_grant>&) {
  auto& acked = s_.events_acked[c.member];
  acked = std::max(acked, c.upto);
  for (auto& e : s_.events) {
    if (e.seq <= acked) e.recipients.erase(c.member);
  }
  s_.events.erase(std::remove_if(s_.events.begin(), s_.events.end(), [](const event& e) { return e.recipients.empty(); }),
                  s_.events.end());
  return ok(acked);
}

void registry::drop_recipient(const std::string& member) {
  for (auto& e : s_.events) e.recipients.erase(member);
  s_.events.erase(std::remove_if(s_.events.begin(), s_.events.end(), [](const event& e) { return e.recipients.empty(); }),
                  s_.events.end());
}

// --- queries -----------------------------------------------------------------------------

const key_value* registry::get(const std::string& key) const {
  auto it = s_.keys.find(key);
  return it == s_.keys.end() ? nullptr : &it->second;
}

std::vector<std::pair<std::string, key_value>> registry::list(const std::string& prefix) const {
  std::vector<std::pair<std::string, key_value>> out;
  for (auto it = s_.keys.lower_bound(prefix); it != s_.keys.end() && it->first.compare(0, prefix.size(), prefix) == 0;
       ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

const member* registry::find_member(const std::string& id) const {
  auto it = s_.members.find(id);
  return it == s_.members.end() ? nullptr : &it->second;
}

std::vector<member> registry::members(std::optional<member_status> only) const {
  std::vector<member> out;
  for (const auto& [id, m] : s_.members) {
    if (!only || m.status == *only) out.push_back(m);
  }
  return out;
}

const session* registry::find_session(session_id id) const {
  auto it = s_.sessions.find(id);
  return it == s_.sessions.end() ? nullptr : &it->second;
}

const lock* registry::find_lock(const std::string& name) const {
  auto it = s_.locks.find(name);
  return it == s_.locks.end() ? nullptr : &it->second;
}

range_result registry::range(const key_range& r, revision at) const {
  range_result out;
  out.rev = s_.rev;
  out.floor = std::max(s_.history_floor, s_.compacted);
  if (at == 0 || at == s_.rev) {
    out.keys = keys_in(r);
    return out;
  }
  if (at > s_.rev) {
    out.status = code::future_revision;
    return out;
  }
  if (at < out.floor) {
    out.status = code::compacted;
    return out;
  }
  // Every change after `at` is in the history: undo them, newest first.
  auto now = keys_in(r);
  std::map<std::string, key_value> view(now.begin(), now.end());
  for (auto it = s_.history.rbegin(); it != s_.history.rend() && it->rev > at; ++it) {
    if (!r.contains(it->key)) continue;
    if (it->prev) {
      view[it->key] = *it->prev;
    } else {
      view.erase(it->key);
    }
  }
  out.keys.assign(view.begin(), view.end());
  return out;
}

std::optional<std::vector<change>> registry::changes_since(revision after, const std::string& prefix) const {
  if (after < s_.history_floor) return std::nullopt;  // compacted: history no longer reaches back that far
  // The history is in revision order: a lookup finds the first change after
  // `after`, and only the changes after it are read.
  std::vector<change> out;
  auto first = std::upper_bound(s_.history.begin(), s_.history.end(), after,
                                [](revision r, const change& c) { return r < c.rev; });
  for (auto it = first; it != s_.history.end(); ++it) {
    if (it->key.compare(0, prefix.size(), prefix) == 0) out.push_back(*it);
  }
  return out;
}

std::vector<event> registry::pending_events(const std::string& member) const {
  std::vector<event> out;
  for (const auto& e : s_.events) {
    if (e.recipients.count(member)) out.push_back(e);
  }
  return out;
}

namespace {

struct hasher {
  std::uint64_t h = 0xcbf29ce484222325ull;
  void bytes(const void* p, std::size_t n) {
    auto* c = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 0x100000001b3ull;
  }
  void u64(std::uint64_t v) { bytes(&v, sizeof v); }
  void f64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    u64(bits);
  }
  void str(const std::string& s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
};

}  // namespace

std::uint64_t registry::digest() const {
  hasher x;
  x.u64(s_.rev);
  x.u64(s_.event_seq);
  x.u64(s_.last_session);
  x.u64(s_.compacted);
  for (const auto& [id, m] : s_.members) {
    x.str(id);
    x.u64(static_cast<std::uint64_t>(m.role));
    x.str(m.host);
    x.u64(m.port);
    x.u64(m.start_time_ms);
    for (const auto& [k, v] : m.labels) {
      x.str(k);
      x.str(v);
    }
    x.f64(m.usage.cpu_percent);
    x.f64(m.usage.load_average);
    x.u64(m.usage.memory_used_bytes);
    x.u64(m.usage.memory_available_bytes);
    x.u64(m.usage.disk_available_bytes);
    x.u64(static_cast<std::uint64_t>(m.status));
    x.u64(m.session);
    x.u64(m.changed);
    x.u64(m.incarnation);
  }
  for (const auto& [id, s] : s_.sessions) {
    x.u64(id);
    x.str(s.owner);
    x.u64(s.ttl_ms);
    x.u64(s.remaining_ms);
  }
  for (const auto& [k, kv] : s_.keys) {
    x.str(k);
    x.str(kv.value);
    x.u64(kv.created);
    x.u64(kv.modified);
    x.u64(kv.version);
    x.u64(kv.session);
  }
  for (const auto& [name, l] : s_.locks) {
    x.str(name);
    x.u64(l.holder);
    x.u64(l.token);
    for (auto w : l.waiters) x.u64(w);
  }
  for (const auto& e : s_.events) {
    x.u64(e.seq);
    x.str(e.from);
    x.str(e.to);
    x.str(e.payload);
    for (const auto& r : e.recipients) x.str(r);
  }
  for (const auto& [m, seq] : s_.events_acked) {
    x.str(m);
    x.u64(seq);
  }
  // The change history is left out: each master keeps a window of its own
  // length (watch-history), and only watches read it.
  return x.h;
}

void registry::check_invariants() const {
  for (const auto& [name, l] : s_.locks) {
    assert(l.holder != 0 || !l.waiters.empty());  // empty locks are dropped
    assert(l.holder == 0 || s_.sessions.count(l.holder));
    assert(l.token <= s_.rev);
    for (auto w : l.waiters) {
      assert(w != l.holder);
      assert(std::count(l.waiters.begin(), l.waiters.end(), w) == 1);
    }
    (void)name;
  }
  for (const auto& [k, kv] : s_.keys) {
    assert(kv.session == 0 || s_.sessions.count(kv.session));
    assert(kv.created <= kv.modified);
    assert(kv.modified <= s_.rev);
    assert(kv.version >= 1);
    (void)k;
  }
  for (const auto& [id, m] : s_.members) {
    assert(!is_live(m.status) || s_.sessions.count(m.session));
    (void)id;
  }
  revision prev = s_.history_floor;
  for (const auto& c : s_.history) {
    assert(c.rev >= prev);  // one command may change several keys at one revision
    assert(c.rev <= s_.rev);
    prev = c.rev;
  }
  std::uint64_t seq = 0;
  for (const auto& e : s_.events) {
    assert(e.seq > seq);
    assert(!e.recipients.empty());
    seq = e.seq;
  }
}

}  // namespace conclave::registry
