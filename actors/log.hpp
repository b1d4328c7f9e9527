// One line per event on stderr, with a UTC timestamp to the millisecond:
//   2026-11-22T01:23:45.678Z node 2: leader in term 5
#pragma once

#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <ctime>
#include <map>
#include <string>

namespace conclave {

inline std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

template <class... Ts>
void log_line(fmt::format_string<Ts...> format, Ts&&... args) {
  auto line = timestamp() + " " + fmt::format(format, std::forward<Ts>(args)...) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
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
