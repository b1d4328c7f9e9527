// Fuzz target: the header of a snapshot file (schema/snapshot.capnp
// SnapshotHeader) on its own: wire::decode_snapshot_header in
// schema/codec.cpp. (snapshot_file_fuzz reaches it only past the file's
// magic, version, length and CRC.)
//
// A decode that succeeds must re-encode to bytes that decode to the same
// header, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "snapshot_header";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_snapshot_header(fuzz::as_view(data, size));
  if (!first) return 0;
  auto bytes = wire::encode_snapshot_header(first->meta, first->data_size);
  auto second = wire::decode_snapshot_header(bytes);
  FUZZ_CHECK(target, second.has_value(), "re-encoded header does not decode: " + second.error().message());
  FUZZ_CHECK(target, first->meta == second->meta && first->data_size == second->data_size,
             "header changed in a round trip");
  FUZZ_CHECK(target, wire::encode_snapshot_header(second->meta, second->data_size) == bytes,
             "re-encoding is not stable");
  return 0;
}
