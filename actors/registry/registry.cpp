#include "actors/registry/registry.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace conclave::registry {

namespace {

outcome ok(std::uint64_t value = 0) { return outcome{code::ok, value, {}}; }
outcome fail(code c, std::string detail) { return outcome{c, 0, std::move(detail)}; }

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
  m.status = member_status::alive;
  m.session = index;
  m.changed = s_.applied;
  s_.sessions[index] = session{index, c.m.id, c.ttl_ms, c.ttl_ms};
  s_.members[c.m.id] = std::move(m);
  return ok(index);
}

outcome registry::on(const report_usage& c, std::uint64_t, std::vector<lock_grant>&) {
  bool any = false;
  for (const auto& [id, usage] : c.reports) {
    auto it = s_.members.find(id);
    if (it == s_.members.end()) continue;
    any = true;
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
  s_.sessions[index] = session{index, c.owner, c.ttl_ms, c.ttl_ms};
  return ok(index);
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
  for (const auto& key : doomed) {
    erase_key(key);
    record(change{s_.rev, true, key, {}});
  }
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

void registry::erase_key(const std::string& key) { s_.keys.erase(key); }

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
  auto& kv = s_.keys[c.key];
  if (current == 0) kv.created = rev;
  kv.value = c.value;
  kv.modified = rev;
  kv.version = current + 1;
  kv.session = c.session;
  record(change{rev, false, c.key, c.value});
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
  erase_key(c.key);
  record(change{rev, true, c.key, {}});
  return ok(rev);
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
  return outcome{code::queued, s_.applied, {}};
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
