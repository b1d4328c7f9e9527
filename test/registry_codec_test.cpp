// Registry commands, queries, their results and snapshots through Cap'n
// Proto, and the registry as a Raft state machine.
#include <doctest/doctest.h>

#include <random>
#include <set>

#include "actors/registry/queries.hpp"
#include "actors/registry/registry_machine.hpp"
#include "schema/registry_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

using namespace conclave;
using namespace conclave::registry;

namespace {

std::vector<command> one_of_each() {
  member m;
  m.id = "w1";
  m.role = member_role::master_and_worker;
  m.host = "10.0.0.1";
  m.port = 7000;
  m.start_time_ms = 123456;
  m.labels = {{"zone", "a"}, {"gpu", "2"}};
  m.usage = resources{12.5, 0.75, 1 << 20, 2 << 20, 3 << 20};
  m.incarnation = 0x1234567890abcdefull;
  return {register_member{m, 3000},
          report_usage{{{"w1", resources{50, 1.5, 10, 20, 30}}}},
          set_member_status{"w1", member_status::suspect},
          open_session{"client", 2000},
          checkpoint_sessions{{{1, 1500}, {4, 100}}},
          put{"/k", std::string("v\0v", 3), 4, std::nullopt},
          put{"/k", "w", 0, std::uint64_t{1}},
          remove_key{"/k", std::uint64_t{2}},
          acquire_lock{"L", 4, true},
          acquire_lock{"L", 1, false},
          cancel_lock_wait{"L", 1},
          release_lock{"L", 4},
          publish_event{"w1", "", "hello"},
          ack_events{"w1", 1},
          open_session{"lease", 5000, 0x7fffffffffffffffull},
          txn{{compare{key_range{"/k", ""}, compare_target::version, compare_op::equal, {}, 0},
               compare{key_range{"/a", "/b"}, compare_target::value, compare_op::not_equal, std::string("\0\xff", 2), 0},
               compare{key_range{"/", std::string(1, '\0')}, compare_target::session, compare_op::less, {}, 9}},
              {txn_op{op_kind::put, key_range{"/t", ""}, "v", 0x7fffffffffffffffull, false, false},
               txn_op{op_kind::range, key_range{"/", "0"}, {}, 0, false, false}},
              {txn_op{op_kind::remove, key_range{"/k", "/l"}, {}, 0, false, false},
               txn_op{op_kind::put, key_range{"/u", ""}, {}, 0, true, true}}},
          compact{2},
          close_session{4, true}};
}

raft::log_entry entry_of(std::uint64_t index, const command& c) {
  return raft::log_entry{raft::term_t{1}, raft::index_t{index}, raft::entry_kind::command, wire::encode_command(c)};
}

}  // namespace

TEST_CASE("every registry command round-trips: applying the decoded command gives the same state") {
  registry_t direct, decoded;
  std::uint64_t index = 0;
  for (const auto& c : one_of_each()) {
    ++index;
    auto bytes = wire::encode_command(c);
    auto back = wire::decode_command(bytes);
    REQUIRE_MESSAGE(back.has_value(), back.error().message());
    CHECK(back->index() == c.index());
    auto a = direct.apply(c, index);
    auto b = decoded.apply(*back, index);
    CHECK(a.code == b.code);
    CHECK(a.value == b.value);
    CHECK(direct.digest() == decoded.digest());
  }
  CHECK(direct.find_member("w1")->labels.at("gpu") == "2");
  CHECK(direct.find_member("w1")->incarnation == 0x1234567890abcdefull);
}

TEST_CASE("a registry snapshot round-trips to the same state") {
  registry_t reg;
  std::uint64_t index = 0;
  for (const auto& c : one_of_each()) reg.apply(c, ++index);
  reg.apply(put{"/x", "y", 0, std::nullopt}, ++index);
  auto bytes = wire::encode_registry_snapshot(reg.state());
  auto st = wire::decode_registry_snapshot(bytes);
  REQUIRE(st.has_value());
  registry_t restored(std::move(*st));
  CHECK(restored.digest() == reg.digest());
  // And they stay equal as commands continue.
  for (auto* r : {&reg, &restored}) r->apply(open_session{"later", 100}, index + 1);
  CHECK(restored.digest() == reg.digest());
}

TEST_CASE("outcomes with lock grants round-trip") {
  wire::registry_result r;
  r.outcome.code = code::queued;
  r.outcome.value = 3;
  r.outcome.detail = "detail";
  r.grants = {lock_grant{"L", 7, 99}};
  auto back = wire::decode_result(wire::encode_result(r));
  REQUIRE(back.has_value());
  CHECK(back->outcome.code == code::queued);
  CHECK(back->outcome.value == 3);
  CHECK(back->outcome.detail == "detail");
  REQUIRE(back->grants.size() == 1);
  CHECK(back->grants[0].token == 99);
  r.outcome.succeeded = true;
  r.outcome.ops = {op_result{{{"/a", key_value{"x", 1, 2, 2, 5}}}}, op_result{}};
  auto ops = wire::decode_result(wire::encode_result(r));
  REQUIRE(ops.has_value());
  CHECK(fuzz::same(*ops, r));
  for (auto c : {code::ok, code::queued, code::not_found, code::version_mismatch, code::no_session, code::held,
                 code::not_holder, code::invalid, code::full, code::exists, code::compacted, code::future_revision}) {
    wire::registry_result one;
    one.outcome.code = c;
    auto again = wire::decode_result(wire::encode_result(one));
    REQUIRE(again.has_value());
    CHECK(again->outcome.code == c);
  }
}

TEST_CASE("truncated or random bytes never decode into a command or a snapshot") {
  auto bytes = wire::encode_command(one_of_each()[0]);
  for (std::size_t len = 0; len < bytes.size(); len += 8) {
    CHECK_FALSE(wire::decode_command(std::string_view(bytes.data(), len)).has_value());
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(8 * (rng() % 32), '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    (void)wire::decode_command(junk);
    (void)wire::decode_registry_snapshot(junk);
  }
}

TEST_CASE("the registry as a Raft state machine: same commands, same state; snapshots restore it") {
  registry_machine a, b;
  std::uint64_t index = 0;
  for (const auto& c : one_of_each()) {
    ++index;
    auto ra = a.apply(entry_of(index, c));
    auto rb = b.apply(entry_of(index, c));
    CHECK(ra == rb);
  }
  CHECK(a.digest() == b.digest());
  // An undecodable command is refused the same way everywhere.
  raft::log_entry garbage{raft::term_t{1}, raft::index_t{++index}, raft::entry_kind::command, "not a command"};
  auto ra = wire::decode_result(a.apply(garbage));
  REQUIRE(ra.has_value());
  CHECK(ra->outcome.code == code::invalid);
  b.apply(garbage);
  registry_machine c;
  c.restore(a.snapshot());
  CHECK(c.digest() == a.digest());
  auto next = entry_of(++index, put{"/after", "snapshot", 0, std::nullopt});
  a.apply(next);
  c.apply(next);
  CHECK(c.digest() == a.digest());
  CHECK(c.registry().get("/after") != nullptr);
}

// --- queries and their results ---------------------------------------------------

namespace {

std::vector<query> every_query() {
  return {get_key{"/k"},
          get_key{std::string("nul\0key", 7)},
          list_prefix{""},
          list_prefix{"/"},
          members_query{},
          members_query{member_status::alive},
          members_query{member_status::suspect},
          members_query{member_status::dead},
          members_query{member_status::left},
          lock_query{"L"},
          session_query{4},
          events_query{"w1"},
          changes_query{0, "/"},
          changes_query{~0ull, ""},
          revision_query{},
          digest_query{},
          session_query{4, true},
          sessions_query{},
          range_query{key_range{"/", "0"}, 0},
          range_query{key_range{"/k", ""}, 3},
          range_query{key_range{"/", "0"}, 1},
          range_query{key_range{"/", "0"}, 999},
          state_query{},
          state_query{true}};
}

// A registry holding some of everything: members, sessions, keys, locks, events, history.
registry_t filled(limits l = {}) {
  registry_t reg(l);
  std::uint64_t index = 0;
  for (const auto& c : one_of_each()) reg.apply(c, ++index);
  reg.apply(register_member{member{"w2", member_role::worker, "10.0.0.2", 7001, 1, {{"a", "b"}}, {}, {}, 0, 0, 0}, 3000},
            ++index);
  reg.apply(open_session{"holder", 5000}, ++index);
  auto holder = index;
  reg.apply(open_session{"waiter", 5000}, ++index);
  auto waiter = index;
  reg.apply(acquire_lock{"L", holder, true}, ++index);
  reg.apply(acquire_lock{"L", waiter, true}, ++index);
  reg.apply(publish_event{"w2", "", "to all"}, ++index);
  reg.apply(put{"/k", "again", 0, std::nullopt}, ++index);
  return reg;
}

}  // namespace

TEST_CASE("every registry query round-trips through its encoding") {
  for (const auto& q : every_query()) {
    auto bytes = wire::encode_query(q);
    auto back = wire::decode_query(bytes);
    REQUIRE_MESSAGE(back.has_value(), back.error().message());
    CHECK(back->index() == q.index());
    CHECK(fuzz::same(*back, q));
    CHECK(wire::encode_query(*back) == bytes);
  }
}

TEST_CASE("every kind of query result round-trips, found and not found") {
  auto reg = filled();
  std::vector<query_result> results;
  for (const auto& q : every_query()) results.push_back(answer(reg, q));
  results.push_back(answer(reg, session_query{999}));
  results.push_back(answer(reg, lock_query{"none"}));
  results.push_back(answer(reg, get_key{"/none"}));
  results.push_back(query_error{"undecodable registry query: malformed message"});
  std::set<std::size_t> kinds;
  for (const auto& r : results) {
    kinds.insert(r.index());
    auto bytes = wire::encode_query_result(r);
    auto back = wire::decode_query_result(bytes);
    REQUIRE_MESSAGE(back.has_value(), back.error().message());
    CHECK(fuzz::same(*back, r));
    CHECK(wire::encode_query_result(*back) == bytes);
  }
  CHECK(kinds.size() == std::variant_size_v<query_result>);
}

TEST_CASE("a state summary holds the revision, members, sessions and locks, and none of the keys, events or history") {
  auto reg = filled();
  const auto& st = reg.state();
  REQUIRE_FALSE(st.keys.empty());
  REQUIRE_FALSE(st.history.empty());
  REQUIRE_FALSE(st.locks.empty());
  auto whole = std::get<state_result>(answer(reg, state_query{}));
  auto summary = std::get<state_result>(answer(reg, state_query{true}));
  CHECK(whole.state->keys.size() == st.keys.size());
  CHECK(summary.state->rev == st.rev);
  CHECK(summary.state->applied == st.applied);
  CHECK(summary.state->members.size() == st.members.size());
  CHECK(summary.state->sessions.size() == st.sessions.size());
  CHECK(summary.state->locks.size() == st.locks.size());
  CHECK(summary.state->keys.empty());
  CHECK(summary.state->history.empty());
  CHECK(summary.state->events.empty());
}

TEST_CASE("the registry machine answers an encoded query with what the registry answers") {
  registry_machine machine;
  std::uint64_t index = 0;
  for (const auto& c : one_of_each()) machine.apply(entry_of(++index, c));
  machine.apply(entry_of(++index, put{"/k", "v", 0, std::nullopt}));
  for (const auto& q : every_query()) {
    auto bytes = machine.query(wire::encode_query(q));
    auto back = wire::decode_query_result(bytes);
    REQUIRE_MESSAGE(back.has_value(), back.error().message());
    CHECK(fuzz::same(*back, answer(machine.registry(), q)));
  }
  // Typed: the result the query asks for.
  auto kv = wire::decode_answer<get_key>(machine.query(wire::encode_query(get_key{"/k"})));
  REQUIRE(kv.has_value());
  REQUIRE(kv->value.has_value());
  CHECK(kv->value->value == "v");
  CHECK(kv->rev == machine.registry().current_revision());  // the revision it reflects
  auto missing = wire::decode_answer<lock_query>(machine.query(wire::encode_query(lock_query{"nobody"})));
  REQUIRE(missing.has_value());
  CHECK_FALSE(missing->value.has_value());
}

TEST_CASE("a malformed query gets an error result, not a crash or a wrong answer") {
  registry_machine machine;
  machine.apply(entry_of(1, put{"/k", "v", 0, std::nullopt}));
  auto refused = [&](std::string_view bytes) {
    auto r = wire::decode_query_result(machine.query(bytes));
    REQUIRE(r.has_value());
    auto* e = std::get_if<query_error>(&*r);
    REQUIRE_MESSAGE(e != nullptr, "answered a malformed query");
    CHECK(e->message.rfind("undecodable registry query: ", 0) == 0);
    // A typed client gets it as an error naming the cause.
    auto typed = wire::decode_answer<get_key>(machine.query(bytes));
    REQUIRE_FALSE(typed.has_value());
    CHECK(typed.error().code == errc::invalid_argument);
    CHECK(typed.error().detail == e->message);
  };
  refused("");
  refused("get /k");  // the old string form
  refused(std::string(7, '\0'));
  for (const auto& q : every_query()) {
    auto bytes = wire::encode_query(q);
    for (std::size_t len = 0; len < bytes.size(); len += 8) refused(std::string_view(bytes.data(), len));
  }
  // A union tag this build does not know (a newer client): the tag is the
  // first 16 bits of the root struct, after the segment table and root pointer.
  auto digest = wire::encode_query(digest_query{});
  REQUIRE(digest.size() > 17);
  REQUIRE(static_cast<unsigned char>(digest[16]) == 8);  // Query.digest: union tag 8
  digest[16] = 99;
  refused(digest);
  // An unknown member status: Query.members.status is bits [32, 48) of the struct.
  auto members = wire::encode_query(members_query{member_status::left});
  REQUIRE(static_cast<unsigned char>(members[20]) == 3);  // MemberStatus.left
  members[20] = 77;
  refused(members);
  // Junk never crashes the machine: it is refused, or (if it happens to be a
  // well-formed query) answered like that query.
  std::mt19937_64 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(8 * (rng() % 16), '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    auto r = wire::decode_query_result(machine.query(junk));
    REQUIRE(r.has_value());
    auto q = wire::decode_query(junk);
    CHECK(std::holds_alternative<query_error>(*r) == !q.has_value());
  }
}

TEST_CASE("a query result that does not decode, or of another kind, is an error for a typed client") {
  CHECK(wire::decode_answer<get_key>("").error().code == errc::malformed);
  auto result = wire::encode_query_result(revision_result{5});
  auto truncated = wire::decode_answer<revision_query>(std::string_view(result.data(), result.size() - 8));
  CHECK_FALSE(truncated.has_value());
  auto other = wire::decode_answer<get_key>(result);
  REQUIRE_FALSE(other.has_value());
  CHECK(other.error().code == errc::malformed);
  auto right = wire::decode_answer<revision_query>(result);
  REQUIRE(right.has_value());
  CHECK(right->rev == 5);
  // An unknown result kind: QueryResult's union tag is bits [16, 32) of the struct.
  REQUIRE(static_cast<unsigned char>(result[18]) == 7);  // QueryResult.revision: union tag 7
  result[18] = 42;
  CHECK(wire::decode_query_result(result).error().code == errc::malformed);
}
