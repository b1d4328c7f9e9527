#include "schema/registry_codec.hpp"

#include "schema/capnp_util.hpp"
#include "schema/registry.capnp.h"

namespace conclave::wire {
namespace {

using namespace detail;
namespace s = conclave::schema;
namespace r = conclave::registry;

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }
std::string data(capnp::Data::Reader d) { return std::string(view(d)); }

r::member_role role_from(s::MemberRole v) {
  switch (v) {
    case s::MemberRole::MASTER: return r::member_role::master;
    case s::MemberRole::WORKER: return r::member_role::worker;
    case s::MemberRole::MASTER_AND_WORKER: return r::member_role::master_and_worker;
  }
  throw invalid{errc::malformed, "unknown member role"};
}

s::MemberRole role_to(r::member_role v) {
  switch (v) {
    case r::member_role::master: return s::MemberRole::MASTER;
    case r::member_role::worker: return s::MemberRole::WORKER;
    case r::member_role::master_and_worker: return s::MemberRole::MASTER_AND_WORKER;
  }
  return s::MemberRole::WORKER;
}

r::member_status status_from(s::MemberStatus v) {
  switch (v) {
    case s::MemberStatus::ALIVE: return r::member_status::alive;
    case s::MemberStatus::SUSPECT: return r::member_status::suspect;
    case s::MemberStatus::DEAD: return r::member_status::dead;
    case s::MemberStatus::LEFT: return r::member_status::left;
  }
  throw invalid{errc::malformed, "unknown member status"};
}

s::MemberStatus status_to(r::member_status v) {
  switch (v) {
    case r::member_status::alive: return s::MemberStatus::ALIVE;
    case r::member_status::suspect: return s::MemberStatus::SUSPECT;
    case r::member_status::dead: return s::MemberStatus::DEAD;
    case r::member_status::left: return s::MemberStatus::LEFT;
  }
  return s::MemberStatus::ALIVE;
}

void write_resources(s::Resources::Builder out, const r::resources& v) {
  out.setCpuPercent(v.cpu_percent);
  out.setLoadAverage(v.load_average);
  out.setMemoryUsedBytes(v.memory_used_bytes);
  out.setMemoryAvailableBytes(v.memory_available_bytes);
  out.setDiskAvailableBytes(v.disk_available_bytes);
}

r::resources read_resources(s::Resources::Reader in) {
  return r::resources{in.getCpuPercent(), in.getLoadAverage(), in.getMemoryUsedBytes(), in.getMemoryAvailableBytes(),
                      in.getDiskAvailableBytes()};
}

void write_member(s::Member::Builder out, const r::member& m) {
  out.setId(text_of(m.id));
  out.setRole(role_to(m.role));
  out.setHost(text_of(m.host));
  out.setPort(m.port);
  out.setStartTimeMs(m.start_time_ms);
  auto labels = out.initLabels(static_cast<unsigned>(m.labels.size()));
  unsigned i = 0;
  for (const auto& [k, v] : m.labels) {
    labels[i].setKey(text_of(k));
    labels[i].setValue(text_of(v));
    ++i;
  }
  write_resources(out.initUsage(), m.usage);
  out.setStatus(status_to(m.status));
  out.setSession(m.session);
  out.setChanged(m.changed);
  out.setIncarnation(m.incarnation);
}

r::member read_member(s::Member::Reader in) {
  r::member m;
  m.id = text(in.getId());
  m.role = role_from(in.getRole());
  m.host = text(in.getHost());
  m.port = in.getPort();
  m.start_time_ms = in.getStartTimeMs();
  for (auto l : in.getLabels()) m.labels[text(l.getKey())] = text(l.getValue());
  m.usage = read_resources(in.getUsage());
  m.status = status_from(in.getStatus());
  m.session = in.getSession();
  m.changed = in.getChanged();
  m.incarnation = in.getIncarnation();
  return m;
}

void write_key_value(s::KeyValue::Builder out, const std::string& key, const r::key_value& kv) {
  out.setKey(text_of(key));
  out.setValue(data_of(kv.value));
  out.setCreated(kv.created);
  out.setModified(kv.modified);
  out.setVersion(kv.version);
  out.setSession(kv.session);
}

r::key_value read_key_value(s::KeyValue::Reader in) {
  return r::key_value{data(in.getValue()), in.getCreated(), in.getModified(), in.getVersion(), in.getSession()};
}

void write_lock(s::Lock::Builder out, const std::string& name, const r::lock& l) {
  out.setName(text_of(name));
  out.setHolder(l.holder);
  out.setToken(l.token);
  auto w = out.initWaiters(static_cast<unsigned>(l.waiters.size()));
  for (unsigned k = 0; k < l.waiters.size(); ++k) w.set(k, l.waiters[k]);
}

r::lock read_lock(s::Lock::Reader in) {
  r::lock l{in.getHolder(), in.getToken(), {}};
  for (auto w : in.getWaiters()) l.waiters.push_back(w);
  return l;
}

void write_session(s::Session::Builder out, const r::session& x) {
  out.setId(x.id);
  out.setOwner(text_of(x.owner));
  out.setTtlMs(x.ttl_ms);
  out.setRemainingMs(x.remaining_ms);
}

r::session read_session(s::Session::Reader in) {
  return r::session{in.getId(), text(in.getOwner()), in.getTtlMs(), in.getRemainingMs()};
}

void write_event(s::Event::Builder out, const r::event& e) {
  out.setSeq(e.seq);
  out.setFrom(text_of(e.from));
  out.setTo(text_of(e.to));
  out.setPayload(data_of(e.payload));
  auto rec = out.initRecipients(static_cast<unsigned>(e.recipients.size()));
  unsigned k = 0;
  for (const auto& x : e.recipients) rec.set(k++, text_of(x));
}

r::event read_event(s::Event::Reader in) {
  r::event e{in.getSeq(), text(in.getFrom()), text(in.getTo()), data(in.getPayload()), {}};
  for (auto x : in.getRecipients()) e.recipients.insert(text(x));
  return e;
}

void write_change(s::Change::Builder out, const r::change& c) {
  out.setRev(c.rev);
  out.setDeleted(c.deleted);
  out.setKey(text_of(c.key));
  out.setValue(data_of(c.value));
  out.setCreated(c.created);
  out.setVersion(c.version);
  out.setSession(c.session);
  out.setHasPrev(c.prev.has_value());
  if (c.prev) write_key_value(out.initPrev(), std::string(), *c.prev);
}

r::change read_change(s::Change::Reader in) {
  r::change c{in.getRev(), in.getDeleted(), text(in.getKey()), data(in.getValue()),
              in.getCreated(), in.getVersion(), in.getSession(), std::nullopt};
  if (in.getHasPrev()) c.prev = read_key_value(in.getPrev());
  return c;
}

void write_range(s::KeyRange::Builder out, const r::key_range& x) {
  out.setKey(text_of(x.key));
  out.setEnd(text_of(x.end));
}

r::key_range read_range(s::KeyRange::Reader in) { return r::key_range{text(in.getKey()), text(in.getEnd())}; }

void write_ops(capnp::List<s::TxnOp>::Builder out, const std::vector<r::txn_op>& ops) {
  for (unsigned i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    out[i].setKind(static_cast<s::OpKind>(op.kind));
    write_range(out[i].initRange(), op.range);
    out[i].setValue(data_of(op.value));
    out[i].setSession(op.session);
    out[i].setIgnoreValue(op.ignore_value);
    out[i].setIgnoreSession(op.ignore_session);
  }
}

// Enumerators this build does not know are malformed (a newer writer).
template <class E>
E checked(E v, E last, const char* what) {
  if (static_cast<unsigned>(v) > static_cast<unsigned>(last)) throw invalid{errc::malformed, what};
  return v;
}

std::vector<r::txn_op> read_ops(capnp::List<s::TxnOp>::Reader in) {
  std::vector<r::txn_op> ops;
  for (auto x : in) {
    r::txn_op op;
    op.kind = static_cast<r::op_kind>(checked(x.getKind(), s::OpKind::REMOVE, "unknown transaction operation"));
    op.range = read_range(x.getRange());
    op.value = data(x.getValue());
    op.session = x.getSession();
    op.ignore_value = x.getIgnoreValue();
    op.ignore_session = x.getIgnoreSession();
    ops.push_back(std::move(op));
  }
  return ops;
}

struct command_writer {
  s::Command::Builder out;
  void operator()(const r::register_member& c) {
    auto g = out.initRegisterMember();
    write_member(g.initMember(), c.m);
    g.setTtlMs(c.ttl_ms);
  }
  void operator()(const r::report_usage& c) {
    auto list = out.initReportUsage(static_cast<unsigned>(c.reports.size()));
    for (unsigned i = 0; i < c.reports.size(); ++i) {
      list[i].setId(text_of(c.reports[i].first));
      write_resources(list[i].initUsage(), c.reports[i].second);
    }
  }
  void operator()(const r::set_member_status& c) {
    auto g = out.initSetMemberStatus();
    g.setId(text_of(c.id));
    g.setStatus(status_to(c.status));
  }
  void operator()(const r::open_session& c) {
    auto g = out.initOpenSession();
    g.setOwner(text_of(c.owner));
    g.setTtlMs(c.ttl_ms);
    g.setId(c.id);
  }
  void operator()(const r::close_session& c) {
    auto g = out.initCloseSession();
    g.setId(c.id);
    g.setExpired(c.expired);
  }
  void operator()(const r::checkpoint_sessions& c) {
    auto list = out.initCheckpointSessions(static_cast<unsigned>(c.remaining_ms.size()));
    for (unsigned i = 0; i < c.remaining_ms.size(); ++i) {
      list[i].setSession(c.remaining_ms[i].first);
      list[i].setRemainingMs(c.remaining_ms[i].second);
    }
  }
  void operator()(const r::put& c) {
    auto g = out.initPut();
    g.setKey(text_of(c.key));
    g.setValue(data_of(c.value));
    g.setSession(c.session);
    g.setHasIfVersion(c.if_version.has_value());
    g.setIfVersion(c.if_version.value_or(0));
  }
  void operator()(const r::remove_key& c) {
    auto g = out.initRemoveKey();
    g.setKey(text_of(c.key));
    g.setHasIfVersion(c.if_version.has_value());
    g.setIfVersion(c.if_version.value_or(0));
  }
  void operator()(const r::acquire_lock& c) {
    auto g = out.initAcquireLock();
    g.setName(text_of(c.name));
    g.setSession(c.session);
    g.setWait(c.wait);
  }
  void operator()(const r::release_lock& c) {
    auto g = out.initReleaseLock();
    g.setName(text_of(c.name));
    g.setSession(c.session);
  }
  void operator()(const r::cancel_lock_wait& c) {
    auto g = out.initCancelLockWait();
    g.setName(text_of(c.name));
    g.setSession(c.session);
  }
  void operator()(const r::publish_event& c) {
    auto g = out.initPublishEvent();
    g.setFrom(text_of(c.from));
    g.setTo(text_of(c.to));
    g.setPayload(data_of(c.payload));
  }
  void operator()(const r::ack_events& c) {
    auto g = out.initAckEvents();
    g.setMember(text_of(c.member));
    g.setUpto(c.upto);
  }
  void operator()(const r::txn& c) {
    auto g = out.initTxn();
    auto compares = g.initCompares(static_cast<unsigned>(c.compares.size()));
    for (unsigned i = 0; i < c.compares.size(); ++i) {
      const auto& x = c.compares[i];
      write_range(compares[i].initRange(), x.range);
      compares[i].setTarget(static_cast<s::CompareTarget>(x.target));
      compares[i].setOp(static_cast<s::CompareOp>(x.op));
      compares[i].setValue(data_of(x.value));
      compares[i].setNumber(x.number);
    }
    write_ops(g.initSuccess(static_cast<unsigned>(c.success.size())), c.success);
    write_ops(g.initFailure(static_cast<unsigned>(c.failure.size())), c.failure);
  }
  void operator()(const r::compact& c) { out.setCompact(c.rev); }
};

r::command read_command(s::Command::Reader in) {
  switch (in.which()) {
    case s::Command::REGISTER_MEMBER: {
      auto g = in.getRegisterMember();
      return r::register_member{read_member(g.getMember()), g.getTtlMs()};
    }
    case s::Command::REPORT_USAGE: {
      r::report_usage c;
      for (auto u : in.getReportUsage()) c.reports.emplace_back(text(u.getId()), read_resources(u.getUsage()));
      return c;
    }
    case s::Command::SET_MEMBER_STATUS: {
      auto g = in.getSetMemberStatus();
      return r::set_member_status{text(g.getId()), status_from(g.getStatus())};
    }
    case s::Command::OPEN_SESSION: {
      auto g = in.getOpenSession();
      return r::open_session{text(g.getOwner()), g.getTtlMs(), g.getId()};
    }
    case s::Command::CLOSE_SESSION: {
      auto g = in.getCloseSession();
      return r::close_session{g.getId(), g.getExpired()};
    }
    case s::Command::CHECKPOINT_SESSIONS: {
      r::checkpoint_sessions c;
      for (auto x : in.getCheckpointSessions()) c.remaining_ms.emplace_back(x.getSession(), x.getRemainingMs());
      return c;
    }
    case s::Command::PUT: {
      auto g = in.getPut();
      r::put c{text(g.getKey()), data(g.getValue()), g.getSession(), std::nullopt};
      if (g.getHasIfVersion()) c.if_version = g.getIfVersion();
      return c;
    }
    case s::Command::REMOVE_KEY: {
      auto g = in.getRemoveKey();
      r::remove_key c{text(g.getKey()), std::nullopt};
      if (g.getHasIfVersion()) c.if_version = g.getIfVersion();
      return c;
    }
    case s::Command::ACQUIRE_LOCK: {
      auto g = in.getAcquireLock();
      return r::acquire_lock{text(g.getName()), g.getSession(), g.getWait()};
    }
    case s::Command::RELEASE_LOCK: {
      auto g = in.getReleaseLock();
      return r::release_lock{text(g.getName()), g.getSession()};
    }
    case s::Command::CANCEL_LOCK_WAIT: {
      auto g = in.getCancelLockWait();
      return r::cancel_lock_wait{text(g.getName()), g.getSession()};
    }
    case s::Command::PUBLISH_EVENT: {
      auto g = in.getPublishEvent();
      return r::publish_event{text(g.getFrom()), text(g.getTo()), data(g.getPayload())};
    }
    case s::Command::ACK_EVENTS: {
      auto g = in.getAckEvents();
      return r::ack_events{text(g.getMember()), g.getUpto()};
    }
    case s::Command::TXN: {
      auto g = in.getTxn();
      r::txn c;
      for (auto x : g.getCompares()) {
        r::compare cmp;
        cmp.range = read_range(x.getRange());
        cmp.target = static_cast<r::compare_target>(
            checked(x.getTarget(), s::CompareTarget::SESSION, "unknown comparison target"));
        cmp.op = static_cast<r::compare_op>(checked(x.getOp(), s::CompareOp::NOT_EQUAL, "unknown comparison"));
        cmp.value = data(x.getValue());
        cmp.number = x.getNumber();
        c.compares.push_back(std::move(cmp));
      }
      c.success = read_ops(g.getSuccess());
      c.failure = read_ops(g.getFailure());
      return c;
    }
    case s::Command::COMPACT: return r::compact{in.getCompact()};
  }
  throw invalid{errc::malformed, "unknown registry command"};
}

r::code code_from(s::Code c) {
  switch (c) {
    case s::Code::OK: return r::code::ok;
    case s::Code::QUEUED: return r::code::queued;
    case s::Code::NOT_FOUND: return r::code::not_found;
    case s::Code::VERSION_MISMATCH: return r::code::version_mismatch;
    case s::Code::NO_SESSION: return r::code::no_session;
    case s::Code::HELD: return r::code::held;
    case s::Code::NOT_HOLDER: return r::code::not_holder;
    case s::Code::INVALID: return r::code::invalid;
    case s::Code::FULL: return r::code::full;
    case s::Code::EXISTS: return r::code::exists;
    case s::Code::COMPACTED: return r::code::compacted;
    case s::Code::FUTURE_REVISION: return r::code::future_revision;
  }
  throw invalid{errc::malformed, "unknown outcome code"};
}

s::Code code_to(r::code c) {
  switch (c) {
    case r::code::ok: return s::Code::OK;
    case r::code::queued: return s::Code::QUEUED;
    case r::code::not_found: return s::Code::NOT_FOUND;
    case r::code::version_mismatch: return s::Code::VERSION_MISMATCH;
    case r::code::no_session: return s::Code::NO_SESSION;
    case r::code::held: return s::Code::HELD;
    case r::code::not_holder: return s::Code::NOT_HOLDER;
    case r::code::invalid: return s::Code::INVALID;
    case r::code::full: return s::Code::FULL;
    case r::code::exists: return s::Code::EXISTS;
    case r::code::compacted: return s::Code::COMPACTED;
    case r::code::future_revision: return s::Code::FUTURE_REVISION;
  }
  return s::Code::INVALID;
}

void write_snapshot(s::Snapshot::Builder out, const r::registry_state& st) {
  out.setRev(st.rev);
  out.setEventSeq(st.event_seq);
  auto members = out.initMembers(static_cast<unsigned>(st.members.size()));
  unsigned i = 0;
  for (const auto& [id, m] : st.members) write_member(members[i++], m);
  auto sessions = out.initSessions(static_cast<unsigned>(st.sessions.size()));
  i = 0;
  for (const auto& [id, x] : st.sessions) write_session(sessions[i++], x);
  auto keys = out.initKeys(static_cast<unsigned>(st.keys.size()));
  i = 0;
  for (const auto& [k, kv] : st.keys) write_key_value(keys[i++], k, kv);
  auto locks = out.initLocks(static_cast<unsigned>(st.locks.size()));
  i = 0;
  for (const auto& [name, l] : st.locks) write_lock(locks[i++], name, l);
  auto events = out.initEvents(static_cast<unsigned>(st.events.size()));
  i = 0;
  for (const auto& e : st.events) write_event(events[i++], e);
  auto acked = out.initAcked(static_cast<unsigned>(st.events_acked.size()));
  i = 0;
  for (const auto& [m, seq] : st.events_acked) {
    acked[i].setMember(text_of(m));
    acked[i].setSeq(seq);
    ++i;
  }
  auto history = out.initHistory(static_cast<unsigned>(st.history.size()));
  i = 0;
  for (const auto& c : st.history) write_change(history[i++], c);
  out.setHistoryFloor(st.history_floor);
  out.setApplied(st.applied);
  out.setLastSession(st.last_session);
  out.setCompacted(st.compacted);
}

r::registry_state read_snapshot(s::Snapshot::Reader in) {
  r::registry_state st;
  st.rev = in.getRev();
  st.event_seq = in.getEventSeq();
  for (auto m : in.getMembers()) {
    auto member = read_member(m);
    st.members[member.id] = std::move(member);
  }
  for (auto x : in.getSessions()) st.sessions[x.getId()] = read_session(x);
  for (auto k : in.getKeys()) st.keys[text(k.getKey())] = read_key_value(k);
  for (auto l : in.getLocks()) st.locks[text(l.getName())] = read_lock(l);
  for (auto e : in.getEvents()) st.events.push_back(read_event(e));
  for (auto a : in.getAcked()) st.events_acked[text(a.getMember())] = a.getSeq();
  for (auto c : in.getHistory()) st.history.push_back(read_change(c));
  st.history_floor = in.getHistoryFloor();
  st.applied = in.getApplied();
  st.last_session = in.getLastSession();
  st.compacted = in.getCompacted();
  return st;
}

struct query_writer {
  s::Query::Builder out;
  void operator()(const r::get_key& q) { out.setGetKey(text_of(q.key)); }
  void operator()(const r::list_prefix& q) { out.setListPrefix(text_of(q.prefix)); }
  void operator()(const r::members_query& q) {
    auto g = out.initMembers();
    g.setFiltered(q.only.has_value());
    g.setStatus(status_to(q.only.value_or(r::member_status::alive)));
  }
  void operator()(const r::lock_query& q) { out.setLock(text_of(q.name)); }
  void operator()(const r::session_query& q) {
    if (q.with_keys) {
      out.setSessionWithKeys(q.id);
    } else {
      out.setSession(q.id);
    }
  }
  void operator()(const r::sessions_query&) { out.setSessions(); }
  void operator()(const r::state_query& q) {
    if (q.summary) {
      out.setStateSummary();
    } else {
      out.setState();
    }
  }
  void operator()(const r::range_query& q) {
    auto g = out.initRange();
    write_range(g.initRange(), q.range);
    g.setAt(q.at);
  }
  void operator()(const r::events_query& q) { out.setEvents(text_of(q.member)); }
  void operator()(const r::changes_query& q) {
    auto g = out.initChanges();
    g.setAfter(q.after);
    g.setPrefix(text_of(q.prefix));
  }
  void operator()(const r::revision_query&) { out.setRevision(); }
  void operator()(const r::digest_query&) { out.setDigest(); }
};

r::query read_query(s::Query::Reader in) {
  switch (in.which()) {
    case s::Query::GET_KEY: return r::get_key{text(in.getGetKey())};
    case s::Query::LIST_PREFIX: return r::list_prefix{text(in.getListPrefix())};
    case s::Query::MEMBERS: {
      auto g = in.getMembers();
      r::members_query q;
      if (g.getFiltered()) q.only = status_from(g.getStatus());
      return q;
    }
    case s::Query::LOCK: return r::lock_query{text(in.getLock())};
    case s::Query::SESSION: return r::session_query{in.getSession(), false};
    case s::Query::SESSION_WITH_KEYS: return r::session_query{in.getSessionWithKeys(), true};
    case s::Query::SESSIONS: return r::sessions_query{};
    case s::Query::STATE: return r::state_query{};
    case s::Query::STATE_SUMMARY: return r::state_query{true};
    case s::Query::RANGE: {
      auto g = in.getRange();
      return r::range_query{read_range(g.getRange()), g.getAt()};
    }
    case s::Query::EVENTS: return r::events_query{text(in.getEvents())};
    case s::Query::CHANGES: {
      auto g = in.getChanges();
      return r::changes_query{g.getAfter(), text(g.getPrefix())};
    }
    case s::Query::REVISION: return r::revision_query{};
    case s::Query::DIGEST: return r::digest_query{};
  }
  throw invalid{errc::malformed, "unknown registry query"};
}

struct query_result_writer {
  s::QueryResult::Builder out;
  void operator()(const r::key_result& x) {
    auto g = out.initKey();
    g.setFound(x.value.has_value());
    if (x.value) write_key_value(g.initValue(), std::string(), *x.value);
    g.setRev(x.rev);
  }
  void operator()(const r::keys_result& x) {
    auto g = out.initKeys();
    g.setRev(x.rev);
    auto list = g.initKeys(static_cast<unsigned>(x.keys.size()));
    for (unsigned i = 0; i < x.keys.size(); ++i) write_key_value(list[i], x.keys[i].first, x.keys[i].second);
  }
  void operator()(const r::members_result& x) {
    auto list = out.initMembers(static_cast<unsigned>(x.members.size()));
    for (unsigned i = 0; i < x.members.size(); ++i) write_member(list[i], x.members[i]);
  }
  void operator()(const r::lock_result& x) {
    auto g = out.initLock();
    g.setFound(x.value.has_value());
    if (x.value) write_lock(g.initValue(), std::string(), *x.value);
  }
  void operator()(const r::session_result& x) {
    auto g = out.initSession();
    g.setFound(x.value.has_value());
    if (x.value) write_session(g.initValue(), *x.value);
    auto keys = g.initKeys(static_cast<unsigned>(x.keys.size()));
    for (unsigned i = 0; i < x.keys.size(); ++i) keys.set(i, text_of(x.keys[i]));
  }
  void operator()(const r::sessions_result& x) {
    auto list = out.initSessions(static_cast<unsigned>(x.sessions.size()));
    for (unsigned i = 0; i < x.sessions.size(); ++i) write_session(list[i], x.sessions[i]);
  }
  void operator()(const r::state_result& x) { write_snapshot(out.initState(), x.state ? *x.state : r::registry_state{}); }
  void operator()(const r::range_result& x) {
    auto g = out.initRange();
    g.setRev(x.rev);
    g.setFloor(x.floor);
    g.setStatus(code_to(x.status));
    auto list = g.initKeys(static_cast<unsigned>(x.keys.size()));
    for (unsigned i = 0; i < x.keys.size(); ++i) write_key_value(list[i], x.keys[i].first, x.keys[i].second);
  }
  void operator()(const r::events_result& x) {
    auto list = out.initEvents(static_cast<unsigned>(x.events.size()));
    for (unsigned i = 0; i < x.events.size(); ++i) write_event(list[i], x.events[i]);
  }
  void operator()(const r::changes_result& x) {
    auto g = out.initChanges();
    g.setRev(x.rev);
    g.setCompacted(x.compacted);
    auto list = g.initChanges(static_cast<unsigned>(x.changes.size()));
    for (unsigned i = 0; i < x.changes.size(); ++i) write_change(list[i], x.changes[i]);
  }
  void operator()(const r::revision_result& x) { out.setRevision(x.rev); }
  void operator()(const r::digest_result& x) {
    auto g = out.initDigest();
    g.setRev(x.rev);
    g.setDigest(x.digest);
  }
  void operator()(const r::query_error& x) { out.setError(text_of(x.message)); }
};

r::query_result read_query_result(s::QueryResult::Reader in) {
  switch (in.which()) {
    case s::QueryResult::KEY: {
      auto g = in.getKey();
      r::key_result x;
      if (g.getFound()) x.value = read_key_value(g.getValue());
      x.rev = g.getRev();
      return x;
    }
    case s::QueryResult::KEYS: {
      auto g = in.getKeys();
      r::keys_result x{g.getRev(), {}};
      for (auto kv : g.getKeys()) x.keys.emplace_back(text(kv.getKey()), read_key_value(kv));
      return x;
    }
    case s::QueryResult::MEMBERS: {
      r::members_result x;
      for (auto m : in.getMembers()) x.members.push_back(read_member(m));
      return x;
    }
    case s::QueryResult::LOCK: {
      auto g = in.getLock();
      r::lock_result x;
      if (g.getFound()) x.value = read_lock(g.getValue());
      return x;
    }
    case s::QueryResult::SESSION: {
      auto g = in.getSession();
      r::session_result x;
      if (g.getFound()) x.value = read_session(g.getValue());
      for (auto k : g.getKeys()) x.keys.push_back(text(k));
      return x;
    }
    case s::QueryResult::SESSIONS: {
      r::sessions_result x;
      for (auto v : in.getSessions()) x.sessions.push_back(read_session(v));
      return x;
    }
    case s::QueryResult::STATE: return r::state_result{std::make_shared<const r::registry_state>(read_snapshot(in.getState()))};
    case s::QueryResult::RANGE: {
      auto g = in.getRange();
      r::range_result x;
      x.rev = g.getRev();
      x.floor = g.getFloor();
      x.status = code_from(g.getStatus());
      for (auto kv : g.getKeys()) x.keys.emplace_back(text(kv.getKey()), read_key_value(kv));
      return x;
    }
    case s::QueryResult::EVENTS: {
      r::events_result x;
      for (auto e : in.getEvents()) x.events.push_back(read_event(e));
      return x;
    }
    case s::QueryResult::CHANGES: {
      auto g = in.getChanges();
      r::changes_result x{g.getRev(), g.getCompacted(), {}};
      for (auto c : g.getChanges()) x.changes.push_back(read_change(c));
      return x;
    }
    case s::QueryResult::REVISION: return r::revision_result{in.getRevision()};
    case s::QueryResult::DIGEST: {
      auto g = in.getDigest();
      return r::digest_result{g.getRev(), g.getDigest()};
    }
    case s::QueryResult::ERROR: return r::query_error{text(in.getError())};
  }
  throw invalid{errc::malformed, "unknown registry query result"};
}

}  // namespace

std::string encode_command(const registry::command& c) {
  capnp::MallocMessageBuilder builder;
  std::visit(command_writer{builder.initRoot<s::Command>()}, c);
  return to_bytes(builder);
}

expected<registry::command> decode_command(std::string_view bytes) {
  return decode_root<s::Command>(bytes, [](s::Command::Reader in) { return read_command(in); });
}

std::string encode_result(const registry_result& res) {
  capnp::MallocMessageBuilder builder;
  auto out = builder.initRoot<s::Outcome>();
  out.setCode(code_to(res.outcome.code));
  out.setValue(res.outcome.value);
  out.setDetail(text_of(res.outcome.detail));
  auto grants = out.initGrants(static_cast<unsigned>(res.grants.size()));
  for (unsigned i = 0; i < res.grants.size(); ++i) {
    grants[i].setName(text_of(res.grants[i].name));
    grants[i].setSession(res.grants[i].session);
    grants[i].setToken(res.grants[i].token);
  }
  out.setSucceeded(res.outcome.succeeded);
  auto ops = out.initOps(static_cast<unsigned>(res.outcome.ops.size()));
  for (unsigned i = 0; i < res.outcome.ops.size(); ++i) {
    const auto& keys = res.outcome.ops[i].keys;
    auto list = ops[i].initKeys(static_cast<unsigned>(keys.size()));
    for (unsigned k = 0; k < keys.size(); ++k) write_key_value(list[k], keys[k].first, keys[k].second);
  }
  return to_bytes(builder);
}

expected<registry_result> decode_result(std::string_view bytes) {
  return decode_root<s::Outcome>(bytes, [](s::Outcome::Reader in) {
    registry_result res;
    res.outcome = r::outcome{code_from(in.getCode()), in.getValue(), text(in.getDetail()), in.getSucceeded(), {}};
    for (auto op : in.getOps()) {
      r::op_result x;
      for (auto kv : op.getKeys()) x.keys.emplace_back(text(kv.getKey()), read_key_value(kv));
      res.outcome.ops.push_back(std::move(x));
    }
    for (auto g : in.getGrants()) res.grants.push_back(r::lock_grant{text(g.getName()), g.getSession(), g.getToken()});
    return res;
  });
}

std::string encode_query(const registry::query& q) {
  capnp::MallocMessageBuilder builder;
  std::visit(query_writer{builder.initRoot<s::Query>()}, q);
  return to_bytes(builder);
}

expected<registry::query> decode_query(std::string_view bytes) {
  return decode_root<s::Query>(bytes, [](s::Query::Reader in) { return read_query(in); });
}

std::string encode_query_result(const registry::query_result& res) {
  capnp::MallocMessageBuilder builder;
  std::visit(query_result_writer{builder.initRoot<s::QueryResult>()}, res);
  return to_bytes(builder);
}

expected<registry::query_result> decode_query_result(std::string_view bytes) {
  return decode_root<s::QueryResult>(bytes, [](s::QueryResult::Reader in) { return read_query_result(in); });
}

std::string encode_registry_snapshot(const registry::registry_state& st) {
  capnp::MallocMessageBuilder builder;
  write_snapshot(builder.initRoot<s::Snapshot>(), st);
  return to_bytes(builder);
}

expected<registry::registry_state> decode_registry_snapshot(std::string_view bytes) {
  return decode_root<s::Snapshot>(bytes, [](s::Snapshot::Reader in) { return read_snapshot(in); });
}

}  // namespace conclave::wire
