// One line per event on stderr. The log-format setting picks the form:
//   text: 2026-11-22T01:23:45.678Z node 2: leader in term 5
//   json: {"time":"2026-11-22T01:23:45.678Z","level":"info","message":"node 2: leader in term 5","server":2,"member":"master-2"}
// (time in RFC 3339, UTC, to the millisecond; level info, warning or error;
// server and member when the process runs exactly one node, roles/node.hpp).
#pragma once

#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "actors/log_level.hpp"

namespace conclave {

enum class log_format { text, json };

// Process-wide: every log line of the process takes this form (default text).
void set_log_format(log_format format);
// The node this process runs, added to JSON lines. A second, different
// node in the same process makes it ambiguous: the fields are left out.
void set_log_source(std::uint64_t server_id, const std::string& member);

// Writes one line (a single write, so lines from threads never interleave).
void write_log(log_level level, const std::string& message);

// 2026-11-22T01:23:45.678Z
std::string timestamp();

template <class... Ts>
void log_line(fmt::format_string<Ts...> format, Ts&&... args) {
  write_log(log_level::info, fmt::format(format, std::forward<Ts>(args)...));
}
// Something an operator should look at; the process carries on.
template <class... Ts>
void log_warning(fmt::format_string<Ts...> format, Ts&&... args) {
  write_log(log_level::warning, fmt::format(format, std::forward<Ts>(args)...));
}
// A failure: the process (or the part named) stops.
template <class... Ts>
void log_error(fmt::format_string<Ts...> format, Ts&&... args) {
  write_log(log_level::error, fmt::format(format, std::forward<Ts>(args)...));
}

// Rate-limits a log line per key to once a minute, counting what it skipped:
//   limiter(key, [&](std::uint64_t suppressed) { log_line(...); });
class log_limiter {
 public:
  template <class F>
  void operator()(const std::string& key, F&& emit) {
    auto& e = entries_[key];
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
                   .count();
    if (now - e.last_ms < 60000) {
      ++e.suppressed;
      return;
    }
    emit(e.suppressed);
    e.last_ms = now;
    e.suppressed = 0;
  }

 private:
  struct entry {
    std::int64_t last_ms = -60000;
    std::uint64_t suppressed = 0;
  };
  std::map<std::string, entry> entries_;
};

}  // namespace conclave
