// Fuzz target: client requests (schema/client.capnp ClientRequest) as a
// master receives them from any client over the network:
// wire::decode_request in schema/client_codec.cpp.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// request, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/client_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "client_request";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_request(fuzz::as_view(data, size), fuzz::cluster);
  if (!first) return 0;
  auto bytes = wire::encode_request(*first, fuzz::cluster);
  auto second = wire::decode_request(bytes, fuzz::cluster);
  FUZZ_CHECK(target, second.has_value(), "re-encoded request does not decode: " + second.error().message());
  FUZZ_CHECK(target, fuzz::same(*first, *second), "request changed in a round trip");
  FUZZ_CHECK(target, wire::encode_request(*second, fuzz::cluster) == bytes, "re-encoding is not stable");
  return 0;
}
