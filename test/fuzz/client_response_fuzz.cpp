// Fuzz target: client responses (schema/client.capnp ClientResponse) as a
// client (conclavectl, the embedding API, the benchmarks) receives them from
// a server: wire::decode_response in schema/client_codec.cpp, and
// client::code_from_name on the code name of a failure.
//
// A decode that succeeds must re-encode to bytes that decode to the same
// response, and re-encoding that must give the same bytes.
#include <cstddef>
#include <cstdint>

#include "schema/client_codec.hpp"
#include "test/fuzz/fuzz_common.hpp"

namespace {
constexpr const char* target = "client_response";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace conclave;
  auto first = wire::decode_response(fuzz::as_view(data, size));
  if (!first) return 0;
  auto bytes = wire::encode_response(*first);
  auto second = wire::decode_response(bytes);
  FUZZ_CHECK(target, second.has_value(), "re-encoded response does not decode: " + second.error().message());
  FUZZ_CHECK(target, fuzz::same(*first, *second), "response changed in a round trip");
  FUZZ_CHECK(target, wire::encode_response(*second) == bytes, "re-encoding is not stable");
  // Clients turn a failure's code name back into an errc.
  if (const auto* f = std::get_if<client::failure>(&*first)) {
    auto code = client::code_from_name(f->code);
    FUZZ_CHECK(target, client::code_name(code) == f->code || code == errc::unavailable,
               "code_from_name gives a code of another name");
  }
  return 0;
}
