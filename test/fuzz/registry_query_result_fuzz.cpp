// Fuzz target: registry query results (schema/registry.capnp QueryResult),
// the answer to a read, decoded by conclavectl, the embedding API, the
// benchmarks and the tests: wire::decode_query_result in
// schema/registry_codec.cpp.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// result, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/registry_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "registry_query_result";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_query_result(fuzz::as_view(data, size));
  if (!first) return 0;
  auto bytes = wire::encode_query_result(*first);
  auto second = wire::decode_query_result(bytes);
  FUZZ_CHECK(target, second.has_value(), "re-encoded query result does not decode: " + second.error().message());
  FUZZ_CHECK(target, fuzz::same(*first, *second), "query result changed in a round trip");
  FUZZ_CHECK(target, wire::encode_query_result(*second) == bytes, "re-encoding is not stable");
  return 0;
}
