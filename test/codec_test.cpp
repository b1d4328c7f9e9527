// The peer codec: every message round-trips; bytes from another cluster, of
// another version, truncated, random or hostile come back as errors, never
// as a crash or an unbounded allocation.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <doctest/doctest.h>

#include <random>

#include "schema/codec.hpp"
#include "schema/peer.capnp.h"

using namespace conclave;
using namespace conclave::raft;

namespace {

const std::string cluster = "test-cluster";

log_entry make_entry(std::uint64_t index, std::uint64_t term, std::string payload,
                     entry_kind kind = entry_kind::command) {
  return log_entry{term_t{term}, index_t{index}, kind, std::move(payload)};
}

configuration three_servers() {
  return configuration{{{node_id{1}, "127.0.0.1:7001", suffrage::voter},
                        {node_id{2}, "127.0.0.1:7002", suffrage::voter},
                        {node_id{3}, "127.0.0.1:7003", suffrage::learner}}};
}

log_entry config_entry(std::uint64_t index, std::uint64_t term) {
  auto e = make_entry(index, term, "", entry_kind::configuration);
  e.config = three_servers();
  return e;
}

std::vector<message_body> one_of_each() {
  append_entries ae{term_t{7}, index_t{10}, term_t{6},
                    {make_entry(11, 7, "a"), make_entry(12, 7, std::string(1000, '\0')),
                     make_entry(13, 7, "", entry_kind::noop), config_entry(14, 7)},
                    index_t{9}, 42};
  install_snapshot is{term_t{7}, snapshot_meta{index_t{100}, term_t{5}, three_servers()}, 4096,
                      std::string(300, 'x'), true, 4396};
  return {vote_request{term_t{3}, index_t{9}, term_t{2}, true, false},
          vote_request{term_t{4}, index_t{9}, term_t{2}, false, true},
          vote_reply{term_t{3}, true, true},
          ae,
          append_entries_reply{term_t{7}, false, index_t{0}, index_t{5}, term_t{3}, 42},
          append_entries_reply{term_t{7}, true, index_t{13}, index_t{0}, term_t{0}, 43},
          is,
          install_snapshot_reply{term_t{7}, 4396, true, index_t{100}},
          timeout_now{term_t{8}}};
}

std::string valid_bytes() {
  return wire::encode(message{node_id{1}, node_id{2}, one_of_each()[3]}, cluster);
}

// An envelope built by hand, for fields encode() never writes wrong.
std::string envelope_bytes(const std::string& cluster_id, std::uint16_t version, std::uint64_t sender) {
  capnp::MallocMessageBuilder builder;
  auto env = builder.initRoot<schema::Envelope>();
  env.setClusterId(cluster_id);
  env.setProtocolVersion(version);
  env.setSenderId(sender);
  env.setRecipientId(2);
  env.initBody().initTimeoutNow().setTerm(1);
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

}  // namespace

TEST_CASE("every peer message round-trips through the codec") {
  for (const auto& body : one_of_each()) {
    message sent{node_id{1}, node_id{2}, body};
    auto bytes = wire::encode(sent, cluster);
    auto got = wire::decode(bytes, cluster);
    REQUIRE_MESSAGE(got.has_value(), got.error().message());
    CHECK(got->from == node_id{1});
    CHECK(got->to == node_id{2});
    CHECK(got->body.index() == body.index());
    CHECK(got->body == body);
  }
}

TEST_CASE("a message from another cluster id is refused as foreign") {
  auto bytes = wire::encode(message{node_id{1}, node_id{2}, timeout_now{term_t{1}}}, "other-cluster");
  auto got = wire::decode(bytes, cluster);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == errc::foreign_cluster);
  CHECK(got.error().message().find("other-cluster") != std::string::npos);
}

TEST_CASE("a message of an unknown protocol version is refused") {
  auto got = wire::decode(envelope_bytes(cluster, wire::protocol_version + 1, 1), cluster);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == errc::unsupported_version);
  CHECK(wire::decode(envelope_bytes(cluster, wire::protocol_version, 1), cluster).has_value());
}

TEST_CASE("a message without a sender id is malformed") {
  auto got = wire::decode(envelope_bytes(cluster, wire::protocol_version, 0), cluster);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == errc::malformed);
}

TEST_CASE("empty, truncated and misaligned bytes are malformed, not a crash") {
  CHECK(wire::decode("", cluster).error().code == errc::malformed);
  auto bytes = valid_bytes();
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    auto got = wire::decode(std::string_view(bytes.data(), len), cluster);
    CHECK_FALSE(got.has_value());
    if (!got) CHECK(got.error().code == errc::malformed);
  }
  // The same valid message at an odd address still decodes (copied to alignment).
  std::string shifted = "x" + bytes;
  auto got = wire::decode(std::string_view(shifted).substr(1), cluster);
  CHECK(got.has_value());
}

TEST_CASE("random bytes and random corruptions never crash the decoder") {
  std::mt19937_64 rng(20261122);
  auto bytes = valid_bytes();
  int decoded = 0, refused = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string input;
    if (round % 2 == 0) {
      input.resize(8 * (rng() % 64));
      for (auto& c : input) c = static_cast<char>(rng());
    } else {
      input = bytes;
      for (int flips = 1 + rng() % 8; flips > 0; --flips) input[rng() % input.size()] = static_cast<char>(rng());
    }
    auto got = wire::decode(input, cluster);
    (got ? decoded : refused)++;
  }
  CHECK(refused > 0);  // random bytes are refused, not taken for messages
  CHECK(decoded < refused);
}

TEST_CASE("oversized input is refused before it is parsed") {
  std::string huge(wire::max_message_bytes + 8, '\0');
  auto got = wire::decode(huge, cluster);
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == errc::too_large);
}

TEST_CASE("a tiny message claiming a huge list of empty elements is refused") {
  // 24 bytes forged by hand: one segment of two words; the root is a
  // Configuration whose server list claims 2^29 - 1 zero-size elements. Each
  // would decode into a server, so without a traversal limit proportional to
  // the input this would allocate and loop half a billion times.
  std::uint64_t words[3];
  words[0] = std::uint64_t{2} << 32;                     // segment table: 1 segment of 2 words
  words[1] = std::uint64_t{1} << 48;                     // root: struct, 0 data words, 1 pointer
  words[2] = 1 | (((std::uint64_t{1} << 29) - 1) << 35);  // list of VOID, 2^29 - 1 elements
  auto got = wire::decode_configuration(std::string_view(reinterpret_cast<const char*>(words), sizeof words));
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == errc::malformed);
}

TEST_CASE("a large legitimate batch still decodes: the limit scales with the input") {
  append_entries ae;
  ae.term = term_t{1};
  for (std::uint64_t i = 1; i <= 100000; ++i) ae.entries.push_back(make_entry(i, 1, ""));
  auto got = wire::decode(wire::encode(message{node_id{1}, node_id{2}, ae}, cluster), cluster);
  REQUIRE(got.has_value());
  CHECK(std::get<append_entries>(got->body).entries.size() == 100000);
}

TEST_CASE("deeply nested or cyclic pointers are refused") {
  // The root pointer points at itself: a reader without a nesting limit
  // would recurse forever.
  std::uint64_t words[2];
  words[0] = std::uint64_t{1} << 32;                       // 1 segment of 1 word
  words[1] = (std::uint64_t{0xFFFFFFFF} << 2 & 0xFFFFFFFC)  // offset -1: itself
             | (std::uint64_t{1} << 48);                   // struct, 0 data words, 1 pointer
  auto got = wire::decode_configuration(std::string_view(reinterpret_cast<const char*>(words), sizeof words));
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == errc::malformed);
}

TEST_CASE("log entries and configurations round-trip and reject bad enums") {
  auto entry = make_entry(5, 2, "", entry_kind::configuration);
  entry.config = three_servers();
  auto got = wire::decode_entry(wire::encode_entry(entry));
  REQUIRE(got.has_value());
  CHECK(*got == entry);

  auto config = three_servers();
  auto got_config = wire::decode_configuration(wire::encode_configuration(config));
  REQUIRE(got_config.has_value());
  CHECK(*got_config == config);

  capnp::MallocMessageBuilder builder;
  auto bad = builder.initRoot<schema::LogEntry>();
  bad.setTerm(1);
  bad.setIndex(1);
  bad.setKind(static_cast<schema::EntryKind>(99));
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  auto refused = wire::decode_entry(std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == errc::malformed);
}

TEST_CASE("a configuration entry without its configuration is malformed") {
  capnp::MallocMessageBuilder builder;
  auto bad = builder.initRoot<schema::LogEntry>();
  bad.setTerm(1);
  bad.setIndex(1);
  bad.setKind(schema::EntryKind::CONFIGURATION);
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  auto got = wire::decode_entry(std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()));
  REQUIRE_FALSE(got.has_value());
  CHECK(got.error().code == errc::malformed);
}

TEST_CASE("a configuration with a duplicate or zero server id is malformed") {
  configuration dup{{{node_id{1}, "a:1", suffrage::voter}, {node_id{1}, "b:2", suffrage::voter}}};
  CHECK(wire::decode_configuration(wire::encode_configuration(dup)).error().code == errc::malformed);
  configuration zero{{{node_id{0}, "a:1", suffrage::voter}}};
  CHECK(wire::decode_configuration(wire::encode_configuration(zero)).error().code == errc::malformed);
}

// --- client protocol ---------------------------------------------------------

#include "schema/client.capnp.h"
#include "schema/client_codec.hpp"

TEST_CASE("every client request and response round-trips") {
  std::vector<client::request> requests = {client::propose{std::string("cmd\0x", 5)}, client::read{"q"},
                                           client::status_request{}, client::transfer_leadership{3},
                                           client::keepalive{7, "usage"}, client::keepalive{8, {}, true}, client::stale_read{"q"},
                                           client::change_membership{0, 4, "10.0.0.4:7001"}};
  for (const auto& r : requests) {
    auto got = wire::decode_request(wire::encode_request(r, cluster), cluster);
    REQUIRE_MESSAGE(got.has_value(), got.error().message());
    CHECK(got->index() == r.index());
  }
  auto p = wire::decode_request(wire::encode_request(client::propose{std::string("cmd\0x", 5)}, cluster), cluster);
  CHECK(std::get<client::propose>(*p).command == std::string("cmd\0x", 5));

  std::vector<client::response> responses = {
      client::committed{5, 2, "r"}, client::read_result{9, "v"},
      client::status{1, "leader", 3, 1, "127.0.0.1:1", 10, 9, 11, "d", "disk full", {}},
      client::status{1, "leader", 3, 1, "127.0.0.1:1", 10, 9, 11, "d", "", {{1, "127.0.0.1:1", false}, {4, "h:2", true}}},
      client::ok{},
      client::failure{"not_leader", "not the leader", 2, "127.0.0.1:2"}};
  for (const auto& r : responses) {
    auto got = wire::decode_response(wire::encode_response(r));
    REQUIRE(got.has_value());
    CHECK(got->index() == r.index());
  }
  auto s = wire::decode_response(wire::encode_response(responses[2]));
  CHECK(std::get<client::status>(*s).leader_address == "127.0.0.1:1");
  CHECK(std::get<client::status>(*s).storage_error == "disk full");
  auto with_members = wire::decode_response(wire::encode_response(responses[3]));
  CHECK(std::get<client::status>(*with_members).members[1].address == "h:2");
  REQUIRE(std::get<client::status>(*with_members).members.size() == 2);
  CHECK(std::get<client::status>(*with_members).members[1].learner);
  auto e = wire::decode_response(wire::encode_response(responses[5]));
  CHECK(std::get<client::failure>(*e).leader_id == 2);
}

TEST_CASE("the client protocol carries no fault hooks: the retired setFaults and stallStorage are malformed") {
  for (int which : {6, 7}) {
    capnp::MallocMessageBuilder builder;
    auto req = builder.initRoot<schema::ClientRequest>();
    req.setClusterId(cluster.c_str());
    req.setProtocolVersion(wire::protocol_version);
    if (which == 6) req.initBody().setRetired6();
    else req.initBody().setRetired7();
    auto words = capnp::messageToFlatArray(builder);
    auto bytes = words.asBytes();
    auto got = wire::decode_request(std::string_view(reinterpret_cast<const char*>(bytes.begin()), bytes.size()), cluster);
    REQUIRE_FALSE(got.has_value());
    CHECK(got.error().code == errc::malformed);
  }
}

TEST_CASE("a client request for another cluster is refused; truncated ones are malformed") {
  auto bytes = wire::encode_request(client::propose{"x"}, "elsewhere");
  CHECK(wire::decode_request(bytes, cluster).error().code == errc::foreign_cluster);
  auto good = wire::encode_request(client::propose{"x"}, cluster);
  for (std::size_t len = 0; len < good.size(); len += 8) {
    CHECK_FALSE(wire::decode_request(std::string_view(good.data(), len), cluster).has_value());
  }
}

TEST_CASE("the request traits table keeps its rules: what appends changes state, what changes state is not resent") {
  std::vector<client::request> every = {client::propose{},      client::read{},       client::status_request{},
                                        client::transfer_leadership{}, client::keepalive{},    client::stale_read{}, client::change_membership{}};
  REQUIRE(every.size() == std::variant_size_v<client::request>);
  for (const auto& r : every) {
    auto t = client::traits_of(r);
    CAPTURE(r.index());
    // A new log entry changes the replicated state, and a state change sent
    // twice may apply twice.
    if (t.appends_entries) CHECK(t.changes_state);
    if (t.changes_state) CHECK_FALSE(t.idempotent);
  }
  // Reads change nothing; a linearizable one goes to the leader, a stale one stays.
  for (auto t : {client::traits_of(client::read{}), client::traits_of(client::stale_read{})}) {
    CHECK_FALSE(t.changes_state);
    CHECK(t.idempotent);
    CHECK_FALSE(t.needs_secret);
  }
  CHECK(client::traits_of(client::read{}).passed_to_leader);
  CHECK_FALSE(client::traits_of(client::stale_read{}).passed_to_leader);
  // Leadership and membership take the cluster secret; the registry a member key.
  CHECK(client::traits_of(client::transfer_leadership{}).needs_secret);
  CHECK(client::traits_of(client::change_membership{}).needs_secret);
  CHECK_FALSE(client::traits_of(client::propose{}).needs_secret);
  CHECK_FALSE(client::traits_of(client::keepalive{}).needs_secret);
  // A keepalive stays with the master it was sent to: its connection carries the session.
  CHECK_FALSE(client::traits_of(client::keepalive{}).passed_to_leader);
  // Usable at compile time: one constexpr table.
  static_assert(client::traits_of<client::propose>().appends_entries);
}
