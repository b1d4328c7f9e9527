// Fuzz target: registry queries (schema/registry.capnp Query), the payload
// of client read and staleRead requests, from any client over the network:
// wire::decode_query in schema/registry_codec.cpp.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// query, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/registry_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "registry_query";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_query(fuzz::as_view(data, size));
  if (!first) return 0;
  auto bytes = wire::encode_query(*first);
  auto second = wire::decode_query(bytes);
  FUZZ_CHECK(target, second.has_value(), "re-encoded query does not decode: " + second.error().message());
  FUZZ_CHECK(target, fuzz::same(*first, *second), "query changed in a round trip");
  FUZZ_CHECK(target, wire::encode_query(*second) == bytes, "re-encoding is not stable");
  return 0;
}
