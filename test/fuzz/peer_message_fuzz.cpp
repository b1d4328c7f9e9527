// Fuzz target: peer messages (schema/peer.capnp Envelope) as they arrive from
// another master over the network: wire::decode in schema/codec.cpp, with
// every body type, log entries and configurations inside.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// message, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {

constexpr const char* target = "peer_message";

bool same(const conclave::raft::message& a, const conclave::raft::message& b) {
  return a.from == b.from && a.to == b.to && a.body == b.body;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode(fuzz::as_view(data, size), fuzz::cluster);
  if (!first) return 0;
  auto bytes = wire::encode(*first, fuzz::cluster);
  auto second = wire::decode(bytes, fuzz::cluster);
  FUZZ_CHECK(target, second.has_value(), "re-encoded message does not decode: " + second.error().message());
  FUZZ_CHECK(target, same(*first, *second), "message changed in a round trip");
  FUZZ_CHECK(target, wire::encode(*second, fuzz::cluster) == bytes, "re-encoding is not stable");
  return 0;
}
