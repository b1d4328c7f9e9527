// Errors as values. Storage, the codec and the actors return expected<T>:
// either a T or an error with a code (what went wrong, in a word) and a detail
// (which file, which field, what the OS said). No exception crosses a module
// boundary; programmer errors are assertions instead.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace conclave {

enum class errc {
  // storage
  io_error,               // the OS refused a read, write, fsync or rename
  map_full,               // the LMDB map reached its configured cap ("disk/map full")
  disk_full,              // the file system has no space left
  out_of_order,           // an append that does not continue the log
  compacted,              // the entry was compacted into a snapshot
  unavailable,            // not there (yet): an entry past the end of the log, a server that did not answer
  hard_state_regression,  // term, vote or commit index would go backwards
  corrupt,                // stored bytes fail their checksum or do not decode
  not_found,              // nothing stored yet (no snapshot, no such file)
  // codec
  foreign_cluster,        // a message from another cluster id
  unsupported_version,    // a protocol version this build does not speak
  malformed,              // bytes that are not a valid message
  too_large,              // a message over the size limit
  // consensus
  not_leader,             // only the leader takes proposals and reads; the detail names it if known
  busy,                   // flow control: too much uncommitted data, try again
  transferring,           // leadership is being handed over; proposals wait
  config_change_pending,  // one membership change at a time (Raft thesis 4.1)
  not_caught_up,          // a learner must catch up before it is promoted
  outcome_unknown,        // sent, but no answer: it may or may not have taken effect
  unauthenticated,        // no valid credentials for this request (see actors/auth.hpp)
  // general
  invalid_argument,       // a caller broke a documented precondition
  resource_exhausted,     // a limit is reached (e.g. undelivered events); retry once it frees
};

// A short, stable description of each code, for logs and error messages.
constexpr std::string_view to_string(errc code) {
  switch (code) {
    case errc::io_error: return "I/O error";
    case errc::map_full: return "disk/map full: the LMDB map reached its size cap";
    case errc::disk_full: return "disk/map full: no space left on the device";
    case errc::out_of_order: return "append does not continue the log";
    case errc::compacted: return "entry compacted into a snapshot";
    case errc::unavailable: return "unavailable";
    case errc::hard_state_regression: return "hard state would go backwards";
    case errc::corrupt: return "corrupt data";
    case errc::not_found: return "not found";
    case errc::foreign_cluster: return "message from another cluster";
    case errc::unsupported_version: return "unsupported protocol version";
    case errc::malformed: return "malformed message";
    case errc::too_large: return "message too large";
    case errc::not_leader: return "not the leader";
    case errc::busy: return "busy: too much uncommitted data";
    case errc::transferring: return "leadership transfer in progress";
    case errc::config_change_pending: return "a configuration change is already in progress";
    case errc::not_caught_up: return "server has not caught up with the log";
    case errc::outcome_unknown: return "outcome unknown: the request may or may not have taken effect";
    case errc::unauthenticated: return "unauthenticated";
    case errc::invalid_argument: return "invalid argument";
    case errc::resource_exhausted: return "resource exhausted";
  }
  return "unknown error";
}

struct error {
  errc code;
  std::string detail;

  // "<description>: <detail>", or just the description.
  std::string message() const {
    std::string text(to_string(code));
    if (!detail.empty()) {
      text += ": ";
      text += detail;
    }
    return text;
  }
};

// Either a value or an error. A minimal std::expected for C++17.
template <class T>
class [[nodiscard]] expected {
 public:
  expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  expected(::conclave::error err) : state_(std::in_place_index<1>, std::move(err)) {}

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const ::conclave::error& error() const {
    assert(!has_value());
    return std::get<1>(state_);
  }

 private:
  std::variant<T, ::conclave::error> state_;
};

template <>
class [[nodiscard]] expected<void> {
 public:
  expected() = default;
  expected(::conclave::error err) : error_(std::move(err)), ok_(false) {}

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }

  const ::conclave::error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  ::conclave::error error_ {};
  bool ok_ = true;
};

inline error make_error(errc code, std::string detail = {}) {
  return error{code, std::move(detail)};
}

}  // namespace conclave
