// Fuzz target: the registry's state as a snapshot (schema/registry.capnp
// Snapshot): restored from a snapshot file or an InstallSnapshot stream:
// wire::decode_registry_snapshot in schema/registry_codec.cpp.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// state, and re-encoding that must give the same bytes. (Duplicate map keys
// in the input collapse on the first decode; after that the state must be a
// fixed point.)
#include <cstddef>
#include <cstdint>

#include "schema/registry_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "registry_snapshot";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_registry_snapshot(fuzz::as_view(data, size));
  if (!first) return 0;
  auto bytes = wire::encode_registry_snapshot(*first);
  auto second = wire::decode_registry_snapshot(bytes);
  FUZZ_CHECK(target, second.has_value(), "re-encoded snapshot does not decode: " + second.error().message());
  FUZZ_CHECK(target, fuzz::same(*first, *second), "registry state changed in a round trip");
  FUZZ_CHECK(target, wire::encode_registry_snapshot(*second) == bytes, "re-encoding is not stable");
  return 0;
}
