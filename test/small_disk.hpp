// A small file system for disk-full tests: a tmpfs of a given size mounted
// on a fresh directory /tmp/conclave-disk-<pid>-XXXXXX (needs root:
// CAP_SYS_ADMIN), with a filler file that takes all its free space and gives
// it back on demand. Unmounted (lazily, so open files do not block it) when
// it goes out of scope; mounts left by a test process that was killed are
// removed by the next one.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace conclave::test {

class small_disk {
 public:
  explicit small_disk(std::size_t bytes) {
    remove_stale();
    const char* base = std::getenv("TMPDIR");
    auto pattern = std::string(base && *base ? base : "/tmp") + "/" + prefix + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      why_not_ = std::string("cannot create a directory: ") + std::strerror(errno);
      return;
    }
    dir_ = pattern;
    auto options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) == 0) {
      mounted_ = true;
    } else {
      why_not_ = std::string("cannot mount a tmpfs (disk-full tests need root): ") + std::strerror(errno);
    }
  }
  ~small_disk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& why_not() const { return why_not_; }
  const std::string& path() const { return dir_; }
  std::string operator/(const std::string& name) const { return dir_ + "/" + name; }

  std::size_t free_bytes() const {
    struct statvfs s {};
    if (::statvfs(dir_.c_str(), &s) != 0) return 0;
    return static_cast<std::size_t>(s.f_bavail) * s.f_frsize;
  }

  // Writes a filler file until the file system refuses (ENOSPC), leaving
  // `leave` bytes free (rounded to 4 KiB); returns the bytes written.
  std::size_t fill(std::size_t leave = 0) {
    int fd = ::open(filler().c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return 0;
    std::string block(4096, 'x');
    std::size_t written = 0;
    while (free_bytes() > leave) {
      auto n = ::write(fd, block.data(), block.size());
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return written;
  }

  // Gives the filler's space back.
  void free_filler() { ::unlink(filler().c_str()); }

 private:
  static constexpr const char* prefix = "conclave-disk-";

  std::string filler() const { return dir_ + "/filler"; }

  // Unmounts and deletes the disks of test processes that no longer run.
  static void remove_stale() {
    std::ifstream mounts("/proc/mounts");
    std::string line;
    while (std::getline(mounts, line)) {
      std::istringstream fields(line);
      std::string device, mount_point;
      fields >> device >> mount_point;
      auto at = mount_point.find(std::string("/") + prefix);
      if (at == std::string::npos) continue;
      auto owner = std::atoi(mount_point.c_str() + at + 1 + std::strlen(prefix));
      if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
      ::umount2(mount_point.c_str(), MNT_DETACH);
      std::error_code ec;
      std::filesystem::remove_all(mount_point, ec);
    }
  }

  std::string dir_;
  bool mounted_ = false;
  std::string why_not_;
};

// A small disk for each of servers 1..n, or none if this process may not
// mount them (then why_not() says so).
class small_disks {
 public:
  small_disks(int servers, std::size_t bytes) {
    for (int i = 0; i < servers; ++i) {
      auto d = std::make_unique<small_disk>(bytes);
      if (!d->mounted()) {
        why_not_ = d->why_not();
        disks_.clear();
        return;
      }
      disks_.push_back(std::move(d));
    }
  }

  bool mounted() const { return !disks_.empty(); }
  const std::string& why_not() const { return why_not_; }
  small_disk& operator[](std::uint64_t id) { return *disks_.at(id - 1); }

  // Each server's data directory on its own disk, by id.
  std::map<std::uint64_t, std::string> data_dirs() const {
    std::map<std::uint64_t, std::string> dirs;
    for (std::size_t i = 0; i < disks_.size(); ++i) dirs[i + 1] = *disks_[i] / "data";
    return dirs;
  }
  void fill_all() {
    for (auto& d : disks_) d->fill();
  }
  void free_all() {
    for (auto& d : disks_) d->free_filler();
  }

 private:
  std::vector<std::unique_ptr<small_disk>> disks_;
  std::string why_not_;
};

}  // namespace conclave::test
