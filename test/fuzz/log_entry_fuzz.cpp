// Fuzz target: log entries and configurations as read back from LMDB
// (storage/lmdb_log.cpp decodes every stored value with wire::decode_entry)
// and as carried in AppendEntries: wire::decode_entry and
// wire::decode_configuration in schema/codec.cpp, both on every input, and
// decode_entry once more from an unaligned copy.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// value, and re-encoding that must give the same bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "schema/codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "log_entry";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto input = fuzz::as_view(data, size);

  // LMDB hands values back at any alignment; the decoder then copies them
  // into words first. Both paths must give the same answer.
  auto first = wire::decode_entry(input);
  {
    std::string buffer(size + 1, '\0');
    std::copy(input.begin(), input.end(), buffer.begin() + 1);
    auto unaligned = wire::decode_entry(std::string_view(buffer).substr(1));
    FUZZ_CHECK(target, unaligned.has_value() == first.has_value(), "decoding depends on alignment");
    if (first) {
      FUZZ_CHECK(target, *unaligned == *first, "decoding depends on alignment");
    } else {
      FUZZ_CHECK(target, unaligned.error().code == first.error().code, "decoding depends on alignment");
    }
  }

  if (first) {
    auto bytes = wire::encode_entry(*first);
    auto second = wire::decode_entry(bytes);
    FUZZ_CHECK(target, second.has_value(), "re-encoded entry does not decode: " + second.error().message());
    FUZZ_CHECK(target, *first == *second, "entry changed in a round trip");
    FUZZ_CHECK(target, wire::encode_entry(*second) == bytes, "re-encoding is not stable");
    // The invariant the log relies on: a configuration entry carries one.
    FUZZ_CHECK(target, (first->kind == raft::entry_kind::configuration) == first->config.has_value(),
               "configuration set on a non-configuration entry or missing on a configuration entry");
  }
  if (auto first = wire::decode_configuration(input)) {
    auto bytes = wire::encode_configuration(*first);
    auto second = wire::decode_configuration(bytes);
    FUZZ_CHECK(target, second.has_value(), "re-encoded configuration does not decode: " + second.error().message());
    FUZZ_CHECK(target, *first == *second, "configuration changed in a round trip");
    FUZZ_CHECK(target, wire::encode_configuration(*second) == bytes, "re-encoding is not stable");
  }
  return 0;
}
