// Fuzz target: registry commands (schema/registry.capnp Command), the payload
// of command entries: proposed by clients over the network, then applied by
// every server from its log: wire::decode_command in
// schema/registry_codec.cpp.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// command, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/registry_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "registry_command";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_command(fuzz::as_view(data, size));
  if (!first) return 0;
  auto bytes = wire::encode_command(*first);
  auto second = wire::decode_command(bytes);
  FUZZ_CHECK(target, second.has_value(), "re-encoded command does not decode: " + second.error().message());
  FUZZ_CHECK(target, fuzz::same(*first, *second), "command changed in a round trip");
  FUZZ_CHECK(target, wire::encode_command(*second) == bytes, "re-encoding is not stable");
  return 0;
}
