// The master's push hub (actors/raft/push_hub.*): what it sends to whom,
// and the wire form of a push for several subscriptions.
#include <doctest/doctest.h>

#include <caf/all.hpp>

#include "actors/raft/push_hub.hpp"
#include "schema/push_codec.hpp"

using namespace conclave;
using namespace conclave::raft;

namespace {

// A push service whose next collect() returns what the test scripts.
struct scripted_service : push_service {
  std::vector<out> next;
  expected<std::vector<out>> subscribe(key, const std::string&) override { return std::vector<out>{}; }
  void unsubscribe(key) override {}
  std::vector<out> collect() override { return std::exchange(next, {}); }
  std::pair<std::uint8_t, std::string> progress() const override { return {4, "progress"}; }
};

struct sent_push {
  caf::actor to;
  std::vector<std::uint64_t> ids;
  std::string bytes;
};

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<scripted_service> service = std::make_shared<scripted_service>();
  std::vector<sent_push> sent;
  push_hub hub{push_hub::hooks{[](const caf::actor&) {}, [](const caf::actor&) {},
                               [this](const caf::actor& to, const std::vector<std::uint64_t>& ids, std::uint8_t,
                                      const std::string& bytes) { sent.push_back({to, ids, bytes}); }},
               service};
  caf::actor a = sys.spawn([] { return caf::behavior{[](int) {}}; });
  caf::actor b = sys.spawn([] { return caf::behavior{[](int) {}}; });
  ~fixture() {
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  }
};

}  // namespace

TEST_CASE("a push due to several subscriptions of one client goes to it once, naming them all") {
  fixture f;
  // Client a subscribes 11, 12, 13 (hub keys 1, 2, 3), client b 21 (key 4).
  for (std::uint64_t id : {11, 12, 13}) REQUIRE(f.hub.subscribe(f.a, id, "sub").empty());
  REQUIRE(f.hub.subscribe(f.b, 21, "sub").empty());
  f.sent.clear();  // (the progress each subscription is sent first)
  f.service->next = {{1, 0, "change"}, {2, 0, "change"}, {4, 0, "change"}, {3, 0, "change"}};
  f.hub.after_apply();
  REQUIRE(f.sent.size() == 2);
  CHECK(f.sent[0].to == f.a);
  CHECK(f.sent[0].ids == std::vector<std::uint64_t>{11, 12, 13});
  CHECK(f.sent[1].to == f.b);
  CHECK(f.sent[1].ids == std::vector<std::uint64_t>{21});
}

TEST_CASE("grouping pushes keeps each subscription's pushes in order") {
  fixture f;
  for (std::uint64_t id : {11, 12}) REQUIRE(f.hub.subscribe(f.a, id, "sub").empty());
  f.sent.clear();
  // 12 is due y; 11 is due x, then y: 11's y may not join the y sent before its x.
  f.service->next = {{2, 0, "y"}, {1, 0, "x"}, {1, 0, "y"}};
  f.hub.after_apply();
  REQUIRE(f.sent.size() == 3);
  CHECK(f.sent[0].bytes == "y");
  CHECK(f.sent[0].ids == std::vector<std::uint64_t>{12});
  CHECK(f.sent[1].bytes == "x");
  CHECK(f.sent[2].bytes == "y");
  CHECK(f.sent[2].ids == std::vector<std::uint64_t>{11});
}

TEST_CASE("push ids travel as 8 little-endian bytes each; any other length is refused as malformed") {
  std::vector<std::uint64_t> ids{1, 0x0102030405060708ull, ~0ull};
  auto bytes = wire::encode_push_ids(ids);
  CHECK(bytes.size() == 24);
  CHECK(bytes[8] == 0x08);
  auto back = wire::decode_push_ids(bytes);
  REQUIRE(back.has_value());
  CHECK(*back == ids);
  for (std::string bad : {std::string(), std::string(7, 'x'), std::string(9, 'x')}) {
    auto r = wire::decode_push_ids(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == errc::malformed);
  }
}
