// Samples this machine's resource usage from /proc and statvfs and averages
// it over a window (an exponential moving average), so that a short spike
// does not make a scheduler avoid a node.
#pragma once

#include <cstdint>
#include <string>

#include "schema/registry_types.hpp"

namespace conclave {

class resource_sampler {
 public:
  resource_sampler(std::string disk_path, std::uint64_t window_ms) : disk_path_(std::move(disk_path)), window_ms_(window_ms) {}
  // Takes a sample at `now_ms` and returns the averaged usage.
  registry::resources sample(std::uint64_t now_ms);

 private:
  std::string disk_path_;
  std::uint64_t window_ms_;
  std::uint64_t last_ms_ = 0;
  std::uint64_t cpu_busy_ = 0, cpu_total_ = 0;
  registry::resources avg_;
  bool first_ = true;
};

}  // namespace conclave
