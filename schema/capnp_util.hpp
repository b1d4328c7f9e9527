// Helpers shared by the codecs (internal to schema/): reading Cap'n Proto
// bytes safely and turning every failure into an error value.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "schema/error.hpp"
#include "schema/codec.hpp"

namespace conclave::wire::detail {


// Deepest legitimate nesting is Envelope > InstallSnapshot > Configuration >
// List(Server) > Server; anything much deeper is an attack.
constexpr int nesting_limit = 16;

// Cap'n Proto's traversal limit bounds the words a reader may visit, counting
// every element of a list of empty structs as one word (its amplification
// guard). Twice the message size leaves room for legitimate far pointers and
// bounds decoding work to linear in the input.
inline capnp::ReaderOptions reader_options(std::size_t words) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 2 * words + 64;
  options.nestingLimit = nesting_limit;
  return options;
}

// Holds bytes as an aligned word array for Cap'n Proto. Bytes that are
// already 8-byte aligned (the common case for std::string and LMDB pages) are
// used in place.
class aligned_words {
 public:
  explicit aligned_words(std::string_view bytes) {
    auto count = bytes.size() / sizeof(capnp::word);
    if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(capnp::word) == 0) {
      words_ = kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.data()), count);
    } else {
      copy_ = kj::heapArray<capnp::word>(count);
      std::memcpy(copy_.begin(), bytes.data(), count * sizeof(capnp::word));
      words_ = copy_.asPtr();
    }
  }
  kj::ArrayPtr<const capnp::word> words() const { return words_; }

 private:
  kj::Array<capnp::word> copy_;
  kj::ArrayPtr<const capnp::word> words_;
};

inline std::string to_bytes(capnp::MessageBuilder& builder) {
  auto flat = capnp::messageToFlatArray(builder);
  auto bytes = flat.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Text from a std::string with its full size. Passing the std::string to a
// setter directly goes through kj::StringPtr's c_str() conversion, which cuts
// the text at the first NUL byte, while the decoders keep every byte: a
// decoded value would not survive being encoded again.
inline capnp::Text::Reader text_of(const std::string& v) { return capnp::Text::Reader(v.data(), v.size()); }

inline std::string_view view(capnp::Data::Reader data) {
  return {reinterpret_cast<const char*>(data.begin()), data.size()};
}

inline kj::ArrayPtr<const kj::byte> data_of(const std::string& bytes) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size());
}

// Printable, bounded excerpt of untrusted text for an error message.
inline std::string excerpt(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 64)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > 64) out += "...";
  return out;
}

// Thrown inside this file only, for input that decodes but breaks a rule
// (unknown enum, zero id); converted to an error value at the boundary.
struct invalid {
  errc code;
  std::string detail;
};

// Runs `read` over a Cap'n Proto message in `bytes`, turning every failure
// into an error value.
template <class Root, class F>
auto decode_root(std::string_view bytes, F&& read) -> expected<decltype(read(std::declval<typename Root::Reader>()))> {
  if (bytes.size() > max_message_bytes) {
    return make_error(errc::too_large, std::to_string(bytes.size()) + " bytes, limit " +
                                           std::to_string(max_message_bytes));
  }
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return make_error(errc::malformed, std::to_string(bytes.size()) +
                                          " bytes is not a whole number of 8-byte words");
  }
  try {
    aligned_words words(bytes);
    capnp::FlatArrayMessageReader reader(words.words(), reader_options(words.words().size()));
    return read(reader.getRoot<Root>());
  } catch (const invalid& e) {
    return make_error(e.code, e.detail);
  } catch (const kj::Exception& e) {
    return make_error(errc::malformed, e.getDescription().cStr());
  } catch (const std::exception& e) {
    return make_error(errc::malformed, e.what());
  }
}


}  // namespace conclave::wire::detail
