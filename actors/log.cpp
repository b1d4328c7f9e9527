#include "actors/log.hpp"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "schema/json.hpp"

namespace conclave {

namespace {

std::atomic<log_format> format_{log_format::text};

struct source {
  std::mutex mutex;
  bool set = false;
  std::uint64_t server_id = 0;
  std::string member;
  std::string json_fields;  // ,"server":N,"member":"..." or empty
};

source& the_source() {
  static source s;
  return s;
}

const char* name(log_level level) {
  switch (level) {
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
  }
  return "info";
}

}  // namespace

void set_log_format(log_format format) { format_ = format; }

void set_log_source(std::uint64_t server_id, const std::string& member) {
  auto& s = the_source();
  std::lock_guard<std::mutex> guard(s.mutex);
  if (s.set) {
    if (s.server_id != server_id || s.member != member) s.json_fields.clear();
    return;
  }
  s.set = true;
  s.server_id = server_id;
  s.member = member;
  if (server_id != 0) s.json_fields += ",\"server\":" + std::to_string(server_id);
  if (!member.empty()) s.json_fields += ",\"member\":" + json_string(member);
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

void write_log(log_level level, const std::string& message) {
  std::string line;
  if (format_ == log_format::json) {
    std::string fields;
    {
      auto& s = the_source();
      std::lock_guard<std::mutex> guard(s.mutex);
      fields = s.json_fields;
    }
    line = "{\"time\":\"" + timestamp() + "\",\"level\":\"" + name(level) + "\",\"message\":" + json_string(message) +
           fields + "}\n";
  } else {
    line = timestamp() + " " + message + "\n";
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace conclave
