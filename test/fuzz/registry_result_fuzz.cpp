// Fuzz target: registry command results (schema/registry.capnp Outcome with
// its lock grants), which clients and member agents read from a committed
// response: wire::decode_result in schema/registry_codec.cpp.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// result, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/registry_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "registry_result";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_result(fuzz::as_view(data, size));
  if (!first) return 0;
  auto bytes = wire::encode_result(*first);
  auto second = wire::decode_result(bytes);
  FUZZ_CHECK(target, second.has_value(), "re-encoded result does not decode: " + second.error().message());
  FUZZ_CHECK(target, fuzz::same(*first, *second), "result changed in a round trip");
  FUZZ_CHECK(target, wire::encode_result(*second) == bytes, "re-encoding is not stable");
  return 0;
}
