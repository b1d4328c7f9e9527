#include "roles/resource_sampler.hpp"

#include <sys/statvfs.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace conclave {

registry::resources resource_sampler::sample(std::uint64_t now_ms) {
  registry::resources now;
  std::ifstream stat("/proc/stat");
  std::string cpu;
  std::uint64_t user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal;
  auto busy = user + nice + sys + irq + softirq + steal;
  auto total = busy + idle + iowait;
  if (total > cpu_total_) {
    now.cpu_percent = 100.0 * static_cast<double>(busy - cpu_busy_) / static_cast<double>(total - cpu_total_);
  }
  cpu_busy_ = busy;
  cpu_total_ = total;
  std::ifstream load("/proc/loadavg");
  load >> now.load_average;
  std::ifstream mem("/proc/meminfo");
  std::string line;
  std::uint64_t total_kb = 0, available_kb = 0;
  while (std::getline(mem, line)) {
    std::istringstream in(line);
    std::string key;
    std::uint64_t kb = 0;
    in >> key >> kb;
    if (key == "MemTotal:") total_kb = kb;
    if (key == "MemAvailable:") available_kb = kb;
  }
  now.memory_available_bytes = available_kb * 1024;
  now.memory_used_bytes = (total_kb - std::min(total_kb, available_kb)) * 1024;
  struct statvfs fs{};
  if (::statvfs(disk_path_.c_str(), &fs) == 0) now.disk_available_bytes = fs.f_bavail * fs.f_frsize;

  if (first_) {
    avg_ = now;
    first_ = false;
  } else {
    // Exponential moving average with time constant window_ms.
    double dt = static_cast<double>(now_ms - last_ms_);
    double a = window_ms_ ? 1.0 - std::exp(-dt / static_cast<double>(window_ms_)) : 1.0;
    auto mix = [a](double old, double fresh) { return old + a * (fresh - old); };
    auto mixu = [&](std::uint64_t old, std::uint64_t fresh) {
      return static_cast<std::uint64_t>(mix(static_cast<double>(old), static_cast<double>(fresh)));
    };
    avg_.cpu_percent = mix(avg_.cpu_percent, now.cpu_percent);
    avg_.load_average = mix(avg_.load_average, now.load_average);
    avg_.memory_used_bytes = mixu(avg_.memory_used_bytes, now.memory_used_bytes);
    avg_.memory_available_bytes = mixu(avg_.memory_available_bytes, now.memory_available_bytes);
    avg_.disk_available_bytes = mixu(avg_.disk_available_bytes, now.disk_available_bytes);
  }
  last_ms_ = now_ms;
  return avg_;
}

}  // namespace conclave
