// Registry commands and snapshots through Cap'n Proto, and the registry as
// a Raft state machine.
#include <doctest/doctest.h>

#include <random>

#include "actors/registry/registry_machine.hpp"
#include "schema/registry_codec.hpp"

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
  wire::registry_result r{outcome{code::queued, 3, "detail"}, {lock_grant{"L", 7, 99}}};
  auto back = wire::decode_result(wire::encode_result(r));
  REQUIRE(back.has_value());
  CHECK(back->outcome.code == code::queued);
  CHECK(back->outcome.value == 3);
  CHECK(back->outcome.detail == "detail");
  REQUIRE(back->grants.size() == 1);
  CHECK(back->grants[0].token == 99);
  for (auto c : {code::ok, code::queued, code::not_found, code::version_mismatch, code::no_session, code::held,
                 code::not_holder, code::invalid, code::full}) {
    auto again = wire::decode_result(wire::encode_result(wire::registry_result{outcome{c, 0, {}}, {}}));
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
